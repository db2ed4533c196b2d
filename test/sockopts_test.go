//go:build linux

package test

import (
	"errors"
	"os"
	"strconv"
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
// TCP connection reset (which sock_diag does not show), SO_TIMESTAMPING.
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
	} {
		t.Run(c.mode, func(t *testing.T) {
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
			}
			tg := startTargetOpts(t, "sockopts", startOpts{args: []string{c.mode}})
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
