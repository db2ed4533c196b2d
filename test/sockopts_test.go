//go:build linux

package test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	cTargets["sockopts"] = struct {
		src   string
		flags []string
	}{"sockopts.c", nil}
}

// TestSocketStateRestored: in "restored", a UDP socket's locked classic
// filter, IP options, IP_MULTICAST_ALL, IP_MULTICAST_IF, multicast
// membership and SO_MAX_PACING_RATE, and a unix socket's filter (each
// with a datagram queued before it was attached); a TCP listener's
// filter, TCP_MAXSEG, TCP_SAVE_SYN and IP_MINTTL; an unconnected TCP
// socket's TCP_MAXSEG; TCP and UDP sockets never bound (which sock_diag
// does not list) with their options; a unix stream socket with ECONNRESET
// pending (its peer closed with data unread). In "restored6", an IPv6
// UDP socket's membership, IPV6_MULTICAST_IF and IPV6_MULTICAST_ALL.
// sockopts.c reads each back after the restore, gets its datagrams, the
// ECONNRESET after its data, and the SYN saved on a connection its
// listener accepts.
func TestSocketStateRestored(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	for _, mode := range []string{"restored", "restored6"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "restored6" {
				needsIPv6Loopback(t)
			}
			tg := startTarget(t, "sockopts", mode)
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestSocketStateRefused: socket state nothing can make again is refused
// in one line naming the fd and what it is, and sockopts.c then finds its
// socket as it was: an eBPF filter, a pending error, a multicast
// membership with a source filter, a saved SYN not read, an MD5 key, IP options on a TCP
// connection, an IPv6 extension header, a unix datagram socket's ECONNRESET, a
// TCP connection reset (which sock_diag does not show), SO_TIMESTAMPING,
// an upper layer protocol (TCP_ULP), ECN negotiated, an IPv6 link-local
// address (sock_diag gives no zone).
func TestSocketStateRefused(t *testing.T) {
	needsGocr(t)
	for _, c := range []struct{ mode, want string }{
		{"ebpf", "SO_ATTACH_BPF"},
		{"soerror", "SO_ERROR"},
		{"msfilter", "source filter"},
		{"savedsyn", "TCP_SAVED_SYN"},
		{"md5sig", "TCP_MD5SIG"},
		{"tcpipopts", "IP_OPTIONS"},
		{"ipv6hdr", "IPV6_DSTOPTS"},
		{"unixdgramreset", "SO_ERROR"},
		{"tcpreset", "a connection closed"},
		{"timestamping", "SO_TIMESTAMPING"},
		{"bindtodevice", "SO_BINDTODEVICE"},
		{"urgent", "urgent data (MSG_OOB)"},
		{"tcppeekoff", "SO_PEEK_OFF"},
		{"tcpulp", "TCP_ULP \"tls\""},
		{"ecn", "ECN was negotiated"},
		{"linklocal", "IPv6 link-local address"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			args := []string{c.mode}
			switch c.mode {
			case "ebpf":
				// kernel/bpf/syscall.c makes this file.
				if _, err := os.Stat("/proc/sys/kernel/unprivileged_bpf_disabled"); err != nil {
					t.Skipf("this kernel has no bpf(2) (CONFIG_BPF_SYSCALL): %v", err)
				}
			case "md5sig":
				needsTCPMD5(t)
			case "ipv6hdr":
				needsIPv6Loopback(t)
			case "tcpulp":
				needsULP(t, "tls")
			case "ecn":
				ecnRoute(t, "127.0.0.77") // sockopts.c ECN_ADDR
			case "linklocal":
				args = append(args, linkLocalAddr(t)...)
			}
			tg := startTargetOpts(t, "sockopts", startOpts{args: args})
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 70", c.want}, nil)
			checkIntact(t, tg)
		})
	}
}

// needsTCPMD5 skips where TCP_MD5SIG cannot be set (CONFIG_TCP_MD5SIG).
func needsTCPMD5(t *testing.T) {
	t.Helper()
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	k := unix.TCPMD5Sig{Keylen: 1}
	k.Addr.Family = unix.AF_INET
	err = unix.SetsockoptTCPMD5Sig(s, unix.SOL_TCP, unix.TCP_MD5SIG, &k)
	if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EINVAL) {
		t.Skipf("this kernel has no TCP MD5 signatures (CONFIG_TCP_MD5SIG): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// needsULP skips where the kernel has no TCP upper layer protocol name
// (kTLS is CONFIG_TLS): /proc/sys/net/ipv4/tcp_available_ulp lists those
// registered (net/ipv4/tcp_ulp.c), and setting one not listed fails.
func needsULP(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if err != nil {
		t.Skipf("this kernel lists no TCP upper layer protocols: %v", err)
	}
	if !slices.Contains(strings.Fields(string(b)), name) {
		t.Skipf("this kernel has no TCP upper layer protocol %q (CONFIG_TLS): tcp_available_ulp lists %q", name, strings.TrimSpace(string(b)))
	}
}

// ecnRoute gives the local route to addr the ecn feature until the test
// ends, so that a connection to it negotiates ECN whatever the sysctl
// net.ipv4.tcp_ecn says (net/ipv4/tcp_output.c tcp_ecn_send_syn reads the
// route's RTAX_FEATURE_ECN; ip-route(8) "features ecn"); no other
// connection of the machine goes there.
func ecnRoute(t *testing.T, addr string) {
	t.Helper()
	route := []string{"local", addr, "dev", "lo", "table", "local"}
	if out, err := exec.Command("ip", append(append([]string{"route", "add"}, route...), "features", "ecn")...).CombinedOutput(); err != nil {
		t.Fatalf("ip route add %s features ecn: %v: %s", addr, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", append([]string{"route", "del"}, route...)...).CombinedOutput(); err != nil {
			t.Errorf("ip route del %s: %v: %s", addr, err, out)
		}
	})
}

// linkLocalAddr returns an IPv6 link-local address of an interface of
// the machine and the interface's name, or skips where none has one.
func linkLocalAddr(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsLinkLocalUnicast() {
				return []string{n.IP.String(), ifc.Name}
			}
		}
	}
	t.Skip("no interface of this machine has an IPv6 link-local address")
	return nil
}
