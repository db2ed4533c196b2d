//go:build linux

package files

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// State of a TCP or UDP socket beyond its int options (inetopts.go):
// its filter, IP options and multicast memberships, restored; a pending
// error, a saved SYN, source-filtered memberships, IPv6 extension
// headers and MD5 keys, refused.

// ipOptionsMax is the most IP_OPTIONS can hold (man 7 ip: 40 bytes).
const ipOptionsMax = 40

// readInetState records socket h's filter and IP options into u, and
// refuses what gocr cannot make again. d is what sock_diag showed of it.
func readInetState(h int, d proc.InetSocket, u *gocrpb.InetSocketFd) error {
	if err := refusePendingError(h, d); err != nil {
		return err
	}
	f, err := readSocketFilter(h)
	if err != nil {
		return err
	}
	u.Filter = f
	if u.GetFamily() == unix.AF_INET {
		// IP_OPTIONS reads back as set (net/ipv4/ip_sockglue.c
		// do_ip_getsockopt: ip_options_undo turns a source route back
		// into the form the user gave).
		buf := make([]byte, ipOptionsMax)
		n, err := getsockoptLen(h, unix.SOL_IP, unix.IP_OPTIONS, buf, ipOptionsMax)
		if err != nil {
			return fmt.Errorf("getsockopt IP_OPTIONS: %w", err)
		}
		if n > 0 && u.GetTcp() != nil {
			// On a connection they change its MSS (ip_setsockopt
			// calls icsk_sync_mss), which repair mode restored.
			return fmt.Errorf("IP options (IP_OPTIONS, %d bytes) on a TCP connection, which gocr does not restore", n)
		}
		u.IpOptions = buf[:n]
	}
	if u.GetFamily() == unix.AF_INET6 {
		if err := refuseIPv6Headers(h); err != nil {
			return err
		}
	}
	if u.GetProtocol() == unix.IPPROTO_UDP {
		if err := readMemberships(h, u); err != nil {
			return err
		}
	}
	if u.GetTcp() != nil {
		if err := refuseSavedSyn(h); err != nil {
			return err
		}
	}
	if u.GetProtocol() == unix.IPPROTO_TCP {
		if err := refuseTCPAO(h); err != nil {
			return err
		}
	}
	if d.MD5Keys > 0 {
		return fmt.Errorf("%d TCP MD5 signature key(s) (TCP_MD5SIG), which gocr does not restore", d.MD5Keys)
	}
	return nil
}

// refuseIPv6Headers refuses IPv6 extension headers set on the socket
// for what it sends (man 7 ipv6, RFC 3542 section 9). getsockopt gives
// each as set, or nothing (net/ipv6/ipv6_sockglue.c
// ipv6_getsockopt_sticky; a header is at least 8 bytes): gocr does not
// set them again yet.
func refuseIPv6Headers(h int) error {
	for _, o := range []struct {
		name string
		opt  int
	}{{"IPV6_HOPOPTS", unix.IPV6_HOPOPTS}, {"IPV6_RTHDRDSTOPTS", unix.IPV6_RTHDRDSTOPTS},
		{"IPV6_RTHDR", unix.IPV6_RTHDR}, {"IPV6_DSTOPTS", unix.IPV6_DSTOPTS}} {
		buf := make([]byte, 8)
		n, err := getsockoptLen(h, unix.SOL_IPV6, o.opt, buf, uint32(len(buf)))
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		if n > 0 {
			return fmt.Errorf("an IPv6 extension header (%s) is set, which gocr does not restore", o.name)
		}
	}
	return nil
}

// refusePendingError refuses a socket with a pending error or error
// queue (sockerror.go). A listener's poll tells neither
// (net/ipv4/inet_connection_sock.c inet_csk_listen_poll), and nothing
// queues errors on it.
func refusePendingError(h int, d proc.InetSocket) error {
	if d.State == proc.InetListen {
		return nil
	}
	return refuseSocketError(h)
}

// tcpAOInfo is TCP_AO_INFO and the size of struct tcp_ao_info_opt
// (include/uapi/linux/tcp.h, Linux 6.7).
const (
	tcpAOInfo    = 38
	tcpAOInfoLen = 48
)

// refuseTCPAO refuses a socket with TCP-AO keys (TCP_AO_ADD_KEY, RFC
// 5925). getsockopt TCP_AO_INFO succeeds only on a socket that has them:
// ENOENT without, ENOPROTOOPT on a kernel without CONFIG_TCP_AO
// (net/ipv4/tcp_ao.c tcp_ao_get_sock_info). Any error is taken for
// none, so that a kernel answering otherwise refuses nothing.
func refuseTCPAO(h int) error {
	buf := make([]byte, tcpAOInfoLen)
	if _, err := getsockoptLen(h, unix.SOL_TCP, tcpAOInfo, buf, tcpAOInfoLen); err == nil {
		return errors.New("TCP-AO keys (TCP_AO_ADD_KEY), which gocr does not restore")
	}
	return nil
}

// refuseSavedSyn refuses a connection whose saved SYN (TCP_SAVE_SYN on
// its listener) was not read yet: reading TCP_SAVED_SYN frees it, and
// nothing sets it. Asked with optlen 0, the kernel gives its length and
// EINVAL without freeing it, or optlen 0 when there is none
// (net/ipv4/tcp.c do_tcp_getsockopt TCP_SAVED_SYN).
func refuseSavedSyn(h int) error {
	n, err := getsockoptLen(h, unix.SOL_TCP, unix.TCP_SAVED_SYN, nil, 0)
	switch {
	case err == nil && n == 0:
		return nil
	case errors.Is(err, unix.EINVAL) && n > 0:
		return fmt.Errorf("a saved SYN (TCP_SAVED_SYN, %d bytes) not read yet, which gocr cannot save again", n)
	case errors.Is(err, unix.ENOPROTOOPT):
		return nil // a kernel without it (before 4.2): none saved
	}
	return fmt.Errorf("getsockopt TCP_SAVED_SYN: %w", err)
}

// setInetState gives a restored socket its IP options, its multicast
// groups and then its filter, after everything the restore queued at it.
func setInetState(h int, u *gocrpb.InetSocketFd) error {
	if opts := u.GetIpOptions(); len(opts) > 0 {
		if err := unix.SetsockoptString(h, unix.SOL_IP, unix.IP_OPTIONS, string(opts)); err != nil {
			return fmt.Errorf("setsockopt IP_OPTIONS: %w", err)
		}
		buf := make([]byte, ipOptionsMax)
		n, err := getsockoptLen(h, unix.SOL_IP, unix.IP_OPTIONS, buf, ipOptionsMax)
		if err != nil || !bytes.Equal(buf[:n], opts) {
			return fmt.Errorf("setsockopt IP_OPTIONS: reads back as %x (%v)", buf[:n], err)
		}
	}
	if err := joinGroups(h, u); err != nil {
		return err
	}
	return setSocketFilter(h, u.GetFilter())
}

// mcastGroup is a multicast group joined on an interface.
type mcastGroup struct {
	ifindex int
	group   netip.Addr
}

// readMemberships records the multicast groups a UDP socket joined
// (IP_ADD_MEMBERSHIP, man 7 ip; IPV6_ADD_MEMBERSHIP, man 7 ipv6), and
// refuses one with a source filter. Nothing lists a socket's groups:
// sock_diag does not, and /proc/net/igmp and /proc/net/igmp6 list each
// interface's groups with the number of members (net/ipv4/igmp.c
// igmp_mc_seq_show, net/ipv6/mcast.c igmp6_mc_seq_show). But getsockopt
// MCAST_MSFILTER of a group on an interface gives the socket's filter
// mode and number of sources there, or EADDRNOTAVAIL when it has not
// joined it (ip_mc_gsfget, ip6_mc_msfget): each group an interface has
// is asked. A plain join is an exclusive filter of no source.
func readMemberships(h int, u *gocrpb.InetSocketFd) error {
	groups, err := interfaceGroups()
	if err != nil {
		return err
	}
	for _, g := range groups {
		level := mcastLevel(g.group)
		if level == unix.SOL_IPV6 && u.GetFamily() != unix.AF_INET6 {
			continue
		}
		joined, fmode, nsrc, err := hasJoined(h, level, g)
		if err != nil {
			return fmt.Errorf("ask for its membership of %s on interface %d: %w", g.group, g.ifindex, err)
		}
		if !joined {
			continue
		}
		if fmode != unix.MCAST_EXCLUDE || nsrc != 0 {
			return fmt.Errorf("a member of multicast group %s on interface %d with a source filter (%d source(s), IP_ADD_SOURCE_MEMBERSHIP or MCAST_MSFILTER), which gocr does not restore", g.group, g.ifindex, nsrc)
		}
		u.Memberships = append(u.Memberships, &gocrpb.McastMembership{Ifindex: int32(g.ifindex), Group: g.group.AsSlice()})
	}
	return nil
}

// mcastLevel is the socket level a group's options are at.
func mcastLevel(group netip.Addr) int {
	if group.Is6() {
		return unix.SOL_IPV6
	}
	return unix.SOL_IP
}

// joinGroups joins the dumped groups again, each checked as readMemberships
// read it.
func joinGroups(h int, u *gocrpb.InetSocketFd) error {
	for _, m := range u.GetMemberships() {
		a, ok := netip.AddrFromSlice(m.GetGroup())
		if !ok {
			return fmt.Errorf("multicast group of %d bytes in the image", len(m.GetGroup()))
		}
		g := mcastGroup{int(m.GetIfindex()), a}
		var err error
		if a.Is4() {
			err = unix.SetsockoptIPMreqn(h, unix.SOL_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{Multiaddr: a.As4(), Ifindex: m.GetIfindex()})
		} else {
			err = unix.SetsockoptIPv6Mreq(h, unix.SOL_IPV6, unix.IPV6_ADD_MEMBERSHIP, &unix.IPv6Mreq{Multiaddr: a.As16(), Interface: uint32(m.GetIfindex())})
		}
		if err != nil {
			return fmt.Errorf("join multicast group %s on interface %d: %w", a, g.ifindex, err)
		}
		joined, fmode, nsrc, err := hasJoined(h, mcastLevel(a), g)
		if err != nil || !joined || fmode != unix.MCAST_EXCLUDE || nsrc != 0 {
			return fmt.Errorf("join multicast group %s on interface %d: reads back as joined %v, mode %d, %d source(s) (%v)", a, g.ifindex, joined, fmode, nsrc, err)
		}
	}
	return nil
}

// groupFilterLen is the size of struct group_filter with no source
// (include/uapi/linux/in.h: u32 gf_interface, its padding, struct
// sockaddr_storage gf_group at 8, u32 gf_fmode, u32 gf_numsrc).
const groupFilterLen = 144

// hasJoined asks whether socket h is a member of group g, and its
// filter mode and number of sources there.
func hasJoined(h, level int, g mcastGroup) (joined bool, fmode, nsrc uint32, err error) {
	buf := make([]byte, groupFilterLen)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], uint32(g.ifindex))
	sa := buf[8:]
	if g.group.Is4() {
		ne.PutUint16(sa[0:], unix.AF_INET) // struct sockaddr_in
		a := g.group.As4()
		copy(sa[4:], a[:])
	} else {
		ne.PutUint16(sa[0:], unix.AF_INET6) // struct sockaddr_in6
		a := g.group.As16()
		copy(sa[8:], a[:])
	}
	_, err = getsockoptLen(h, level, unix.MCAST_MSFILTER, buf, groupFilterLen)
	switch {
	case err == nil:
		// gf_fmode, and in gf_numsrc the number of sources
		// (ip_get_mcast_msfilter copies the header back).
		return true, ne.Uint32(buf[136:]), ne.Uint32(buf[140:]), nil
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return false, 0, 0, nil
	}
	return false, 0, 0, err
}

// interfaceGroups lists every multicast group of every interface of
// gocr's network namespace, the one sock_diag looked in too.
func interfaceGroups() ([]mcastGroup, error) {
	var out []mcastGroup
	// /proc/net/igmp: a line per interface ("1\tlo        :     2
	// V3"), then one per group, led by a tab, its address as %08X of
	// the network-order word (net/ipv4/igmp.c igmp_mc_seq_show).
	b, err := os.ReadFile("/proc/net/igmp")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ifindex := -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "Idx" {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			if ifindex, err = strconv.Atoi(f[0]); err != nil {
				return nil, fmt.Errorf("/proc/net/igmp: %q", line)
			}
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil || ifindex < 0 {
			return nil, fmt.Errorf("/proc/net/igmp: %q", line)
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(v))
		out = append(out, mcastGroup{ifindex, netip.AddrFrom4(a)})
	}
	// /proc/net/igmp6: "1    lo   ff020000000000000000000000000001
	// 1 0000000C 0": index, name, address in hex (net/ipv6/mcast.c
	// igmp6_mc_seq_show).
	b, err = os.ReadFile("/proc/net/igmp6")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	sc = bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		idx, err1 := strconv.Atoi(f[0])
		a, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil || len(a) != 16 {
			return nil, fmt.Errorf("/proc/net/igmp6: %q", sc.Text())
		}
		out = append(out, mcastGroup{idx, netip.AddrFrom16([16]byte(a))})
	}
	return out, nil
}
