//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// inetIntOption is a socket option of one int a TCP or UDP socket may
// carry (man 7 socket, man 7 ip, man 7 ipv6, man 7 tcp, man 7 udp).
type inetIntOption struct {
	name        string
	level, opt  int
	tcp, udp    bool
	v4, v6      bool
	beforeBind  bool // it must be set before bind(2) to act as it did
	afterRepair bool // TCP_REPAIR overrides it: set once repair mode is off
}

// inetOptions are the options gocr restores, each set when it differs
// from a new socket's and read back. TCP_MAXSEG reads the MSS the user set
// (user_mss) on a socket not connected or listening, and the MSS in use
// on a connection (net/ipv4/tcp.c do_tcp_getsockopt): it is read on the
// former only (a connection's MSS comes back in repair mode,
// tcprepair.go). TCP_SAVE_SYN is the flag (tp->save_syn) a listener's
// connections take. SO_REUSEADDR on a connection comes
// back when repair mode is off: TCP_REPAIR sets sk_reuse to force a bind
// and clears it when turned off (net/ipv4/tcp.c do_tcp_setsockopt).
var inetOptions = []inetIntOption{
	{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, true, true, true, true, true, true},
	{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, true, true, true, true, true, false},
	{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, true, true, true, true, false, false},
	{"SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST, true, true, true, true, false, false},
	{"SO_PRIORITY", unix.SOL_SOCKET, unix.SO_PRIORITY, true, true, true, true, false, false},
	{"SO_OOBINLINE", unix.SOL_SOCKET, unix.SO_OOBINLINE, true, true, true, true, false, false},
	{"SO_DONTROUTE", unix.SOL_SOCKET, unix.SO_DONTROUTE, true, true, true, true, false, false},
	{"SO_RCVLOWAT", unix.SOL_SOCKET, unix.SO_RCVLOWAT, true, true, true, true, false, false},
	{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, true, true, true, true, false, false},
	{"SO_TIMESTAMP", unix.SOL_SOCKET, unix.SO_TIMESTAMP, true, true, true, true, false, false},
	{"SO_TIMESTAMPNS", unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, true, true, true, true, false, false},
	{"SO_RXQ_OVFL", unix.SOL_SOCKET, unix.SO_RXQ_OVFL, true, true, true, true, false, false},
	{"SO_ZEROCOPY", unix.SOL_SOCKET, unix.SO_ZEROCOPY, true, true, true, true, false, false},
	{"SO_BUSY_POLL", unix.SOL_SOCKET, unix.SO_BUSY_POLL, true, true, true, true, false, false},
	{"SO_INCOMING_CPU", unix.SOL_SOCKET, unix.SO_INCOMING_CPU, true, true, true, true, false, false},
	{"SO_TXREHASH", unix.SOL_SOCKET, unix.SO_TXREHASH, true, true, true, true, false, false},
	{"SO_RCVMARK", unix.SOL_SOCKET, unix.SO_RCVMARK, true, true, true, true, false, false},
	{"SO_RCVPRIORITY", unix.SOL_SOCKET, unix.SO_RCVPRIORITY, true, true, true, true, false, false},
	{"SO_SELECT_ERR_QUEUE", unix.SOL_SOCKET, unix.SO_SELECT_ERR_QUEUE, true, true, true, true, false, false},
	{"SO_WIFI_STATUS", unix.SOL_SOCKET, unix.SO_WIFI_STATUS, true, true, true, true, false, false},
	{"SO_NOFCS", unix.SOL_SOCKET, unix.SO_NOFCS, true, true, true, true, false, false},
	{"SO_PREFER_BUSY_POLL", unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, true, true, true, true, false, false},
	{"SO_BUSY_POLL_BUDGET", unix.SOL_SOCKET, unix.SO_BUSY_POLL_BUDGET, true, true, true, true, false, false},
	{"IP_TOS", unix.SOL_IP, unix.IP_TOS, true, true, true, true, false, false},
	{"IP_TTL", unix.SOL_IP, unix.IP_TTL, true, true, true, true, false, false},
	{"IP_MTU_DISCOVER", unix.SOL_IP, unix.IP_MTU_DISCOVER, true, true, true, true, false, false},
	{"IP_RECVERR", unix.SOL_IP, unix.IP_RECVERR, true, true, true, true, false, false},
	{"IP_PKTINFO", unix.SOL_IP, unix.IP_PKTINFO, false, true, true, true, false, false},
	{"IP_RECVTOS", unix.SOL_IP, unix.IP_RECVTOS, true, true, true, true, false, false},
	{"IP_RECVTTL", unix.SOL_IP, unix.IP_RECVTTL, false, true, true, true, false, false},
	{"IP_FREEBIND", unix.SOL_IP, unix.IP_FREEBIND, true, true, true, true, true, false},
	{"IP_TRANSPARENT", unix.SOL_IP, unix.IP_TRANSPARENT, true, true, true, true, true, false},
	{"IP_BIND_ADDRESS_NO_PORT", unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, true, true, true, true, true, false},
	{"IP_RECVOPTS", unix.SOL_IP, unix.IP_RECVOPTS, true, true, true, true, false, false},
	{"IP_RETOPTS", unix.SOL_IP, unix.IP_RETOPTS, true, true, true, true, false, false},
	{"IP_PASSSEC", unix.SOL_IP, unix.IP_PASSSEC, true, true, true, true, false, false},
	{"IP_RECVORIGDSTADDR", unix.SOL_IP, unix.IP_RECVORIGDSTADDR, true, true, true, true, false, false},
	{"IP_CHECKSUM", unix.SOL_IP, unix.IP_CHECKSUM, false, true, true, true, false, false},
	{"IP_RECVFRAGSIZE", unix.SOL_IP, unix.IP_RECVFRAGSIZE, false, true, true, true, false, false},
	{"IP_RECVERR_RFC4884", unix.SOL_IP, unix.IP_RECVERR_RFC4884, true, true, true, true, false, false},
	{"IP_MINTTL", unix.SOL_IP, unix.IP_MINTTL, true, true, true, false, false, false},
	{"IP_UNICAST_IF", unix.SOL_IP, unix.IP_UNICAST_IF, true, true, true, false, false, false},
	{"IP_LOCAL_PORT_RANGE", unix.SOL_IP, unix.IP_LOCAL_PORT_RANGE, true, true, true, true, true, false},
	{"IP_MULTICAST_TTL", unix.SOL_IP, unix.IP_MULTICAST_TTL, false, true, true, false, false, false},
	{"IP_MULTICAST_LOOP", unix.SOL_IP, unix.IP_MULTICAST_LOOP, false, true, true, false, false, false},
	{"IP_MULTICAST_ALL", unix.SOL_IP, unix.IP_MULTICAST_ALL, false, true, true, false, false, false},
	{"IPV6_V6ONLY", unix.SOL_IPV6, unix.IPV6_V6ONLY, true, true, false, true, true, false},
	{"IPV6_TCLASS", unix.SOL_IPV6, unix.IPV6_TCLASS, true, true, false, true, false, false},
	{"IPV6_UNICAST_HOPS", unix.SOL_IPV6, unix.IPV6_UNICAST_HOPS, true, true, false, true, false, false},
	{"IPV6_MTU_DISCOVER", unix.SOL_IPV6, unix.IPV6_MTU_DISCOVER, true, true, false, true, false, false},
	{"IPV6_RECVERR", unix.SOL_IPV6, unix.IPV6_RECVERR, true, true, false, true, false, false},
	{"IPV6_RECVPKTINFO", unix.SOL_IPV6, unix.IPV6_RECVPKTINFO, false, true, false, true, false, false},
	{"IPV6_RECVTCLASS", unix.SOL_IPV6, unix.IPV6_RECVTCLASS, true, true, false, true, false, false},
	{"IPV6_RECVHOPLIMIT", unix.SOL_IPV6, unix.IPV6_RECVHOPLIMIT, true, true, false, true, false, false},
	{"IPV6_RECVRTHDR", unix.SOL_IPV6, unix.IPV6_RECVRTHDR, true, true, false, true, false, false},
	{"IPV6_RECVHOPOPTS", unix.SOL_IPV6, unix.IPV6_RECVHOPOPTS, true, true, false, true, false, false},
	{"IPV6_RECVDSTOPTS", unix.SOL_IPV6, unix.IPV6_RECVDSTOPTS, true, true, false, true, false, false},
	{"IPV6_RECVORIGDSTADDR", unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, true, true, false, true, false, false},
	{"IPV6_RECVPATHMTU", unix.SOL_IPV6, unix.IPV6_RECVPATHMTU, true, true, false, true, false, false},
	{"IPV6_RECVERR_RFC4884", unix.SOL_IPV6, unix.IPV6_RECVERR_RFC4884, true, true, false, true, false, false},
	{"IPV6_RECVFRAGSIZE", unix.SOL_IPV6, unix.IPV6_RECVFRAGSIZE, false, true, false, true, false, false},
	{"IPV6_AUTOFLOWLABEL", unix.SOL_IPV6, unix.IPV6_AUTOFLOWLABEL, true, true, false, true, false, false},
	{"IPV6_DONTFRAG", unix.SOL_IPV6, unix.IPV6_DONTFRAG, true, true, false, true, false, false},
	{"IPV6_ADDR_PREFERENCES", unix.SOL_IPV6, unix.IPV6_ADDR_PREFERENCES, true, true, false, true, true, false},
	{"IPV6_MINHOPCOUNT", unix.SOL_IPV6, unix.IPV6_MINHOPCOUNT, true, true, false, true, false, false},
	{"IPV6_UNICAST_IF", unix.SOL_IPV6, unix.IPV6_UNICAST_IF, true, true, false, true, false, false},
	{"IPV6_MULTICAST_HOPS", unix.SOL_IPV6, unix.IPV6_MULTICAST_HOPS, false, true, false, true, false, false},
	{"IPV6_MULTICAST_LOOP", unix.SOL_IPV6, unix.IPV6_MULTICAST_LOOP, false, true, false, true, false, false},
	{"IPV6_MULTICAST_IF", unix.SOL_IPV6, unix.IPV6_MULTICAST_IF, false, true, false, true, false, false},
	{"IPV6_MULTICAST_ALL", unix.SOL_IPV6, unix.IPV6_MULTICAST_ALL, false, true, false, true, false, false},
	{"IPV6_FREEBIND", unix.SOL_IPV6, unix.IPV6_FREEBIND, true, true, false, true, true, false},
	{"IPV6_TRANSPARENT", unix.SOL_IPV6, unix.IPV6_TRANSPARENT, true, true, false, true, true, false},
	{"TCP_NODELAY", unix.SOL_TCP, unix.TCP_NODELAY, true, false, true, true, false, false},
	{"TCP_CORK", unix.SOL_TCP, unix.TCP_CORK, true, false, true, true, false, false},
	{"TCP_KEEPIDLE", unix.SOL_TCP, unix.TCP_KEEPIDLE, true, false, true, true, false, false},
	{"TCP_KEEPINTVL", unix.SOL_TCP, unix.TCP_KEEPINTVL, true, false, true, true, false, false},
	{"TCP_KEEPCNT", unix.SOL_TCP, unix.TCP_KEEPCNT, true, false, true, true, false, false},
	{"TCP_SYNCNT", unix.SOL_TCP, unix.TCP_SYNCNT, true, false, true, true, false, false},
	{"TCP_LINGER2", unix.SOL_TCP, unix.TCP_LINGER2, true, false, true, true, false, false},
	{"TCP_DEFER_ACCEPT", unix.SOL_TCP, unix.TCP_DEFER_ACCEPT, true, false, true, true, false, false},
	{"TCP_WINDOW_CLAMP", unix.SOL_TCP, unix.TCP_WINDOW_CLAMP, true, false, true, true, false, false},
	{"TCP_USER_TIMEOUT", unix.SOL_TCP, unix.TCP_USER_TIMEOUT, true, false, true, true, false, false},
	{"TCP_NOTSENT_LOWAT", unix.SOL_TCP, unix.TCP_NOTSENT_LOWAT, true, false, true, true, false, false},
	{"TCP_THIN_LINEAR_TIMEOUTS", unix.SOL_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS, true, false, true, true, false, false},
	{"TCP_FASTOPEN", unix.SOL_TCP, unix.TCP_FASTOPEN, true, false, true, true, false, false},
	{"TCP_INQ", unix.SOL_TCP, unix.TCP_INQ, true, false, true, true, false, false},
	{"TCP_TX_DELAY", unix.SOL_TCP, unix.TCP_TX_DELAY, true, false, true, true, false, false},
	{"TCP_MAXSEG", unix.SOL_TCP, unix.TCP_MAXSEG, true, false, true, true, false, false},
	{"TCP_SAVE_SYN", unix.SOL_TCP, unix.TCP_SAVE_SYN, true, false, true, true, false, false},
	{"TCP_FASTOPEN_CONNECT", unix.SOL_TCP, unix.TCP_FASTOPEN_CONNECT, true, false, true, true, false, false},
	{"TCP_FASTOPEN_NO_COOKIE", unix.SOL_TCP, unix.TCP_FASTOPEN_NO_COOKIE, true, false, true, true, false, false},
	{"TCP_RTO_MIN_US", unix.SOL_TCP, unix.TCP_RTO_MIN_US, true, false, true, true, false, false},
	{"TCP_DELACK_MAX_US", unix.SOL_TCP, unix.TCP_DELACK_MAX_US, true, false, true, true, false, false},
	{"UDP_NO_CHECK6_TX", unix.SOL_UDP, unix.UDP_NO_CHECK6_TX, false, true, false, true, false, false},
	{"UDP_NO_CHECK6_RX", unix.SOL_UDP, unix.UDP_NO_CHECK6_RX, false, true, false, true, false, false},
	{"UDP_CORK", unix.SOL_UDP, unix.UDP_CORK, false, true, true, true, false, false},
	{"UDP_SEGMENT", unix.SOL_UDP, unix.UDP_SEGMENT, false, true, true, true, false, false},
	{"UDP_GRO", unix.SOL_UDP, unix.UDP_GRO, false, true, true, true, false, false},
}

// inetSocketOptions are the options gocr restores that hold more than one
// int, named for messages.
const (
	optSndbuf   = "SO_SNDBUF"
	optRcvbuf   = "SO_RCVBUF"
	optLinger   = "SO_LINGER"
	optRcvtimeo = "SO_RCVTIMEO"
	optSndtimeo = "SO_SNDTIMEO"
)

// Options of more than one int, or of a string, are kept in InetOption
// too, under their option number at these levels of gocr's own (no
// socket level has them): a linger's on/off and seconds, a timeout in ns.
const (
	levelLingerOn  = -1
	levelLingerSec = -2
	levelTimeoutNs = -3
)

// applies tells whether o is an option of a socket of this family and
// protocol.
func (o inetIntOption) applies(family, protocol int) bool {
	return (family == unix.AF_INET && o.v4 || family == unix.AF_INET6 && o.v6) &&
		(protocol == unix.IPPROTO_TCP && o.tcp || protocol == unix.IPPROTO_UDP && o.udp)
}

// newInetSocket makes a socket of the same family, type and protocol as
// the dumped one: what options are compared with and tried on.
func newInetSocket(family, typ, protocol int) (int, error) {
	h, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, protocol)
	if err != nil {
		return -1, fmt.Errorf("a new socket to compare options with: %w", err)
	}
	return h, nil
}

// readInetOptions records every option of socket h that differs from a
// new socket's, after checking on that new socket that setting it gives
// the same value back: an option gocr could not set exactly is refused
// here, not found at restore.
func readInetOptions(h, family, typ, protocol int, u *gocrpb.InetSocketFd) error {
	fresh, err := newInetSocket(family, typ, protocol)
	if err != nil {
		return err
	}
	defer unix.Close(fresh)
	for _, o := range inetOptions {
		if !o.applies(family, protocol) || u.GetTcp() != nil && unconnectedOnly(o) {
			continue
		}
		v, err := unix.GetsockoptInt(h, o.level, o.opt)
		if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
			continue // not on this kernel: nothing set it
		}
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		def, err := unix.GetsockoptInt(fresh, o.level, o.opt)
		if err != nil || def == v {
			continue
		}
		if err := setInetInt(fresh, o, v); err != nil {
			return fmt.Errorf("socket option %s is %d, which gocr cannot set again: %w", o.name, v, err)
		}
		u.Options = append(u.Options, &gocrpb.InetOption{Level: int32(o.level), Name: int32(o.opt), Value: int64(v)})
	}
	for _, b := range []struct {
		name string
		opt  int
	}{{optSndbuf, unix.SO_SNDBUF}, {optRcvbuf, unix.SO_RCVBUF}} {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, b.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", b.name, err)
		}
		if def, err := unix.GetsockoptInt(fresh, unix.SOL_SOCKET, b.opt); err == nil && def != v {
			u.Options = append(u.Options, &gocrpb.InetOption{Level: unix.SOL_SOCKET, Name: int32(b.opt), Value: int64(v)})
		}
	}
	// SO_MAX_PACING_RATE is a u64 when read with 8 bytes (net/core/
	// sock.c sk_getsockopt); with 4 a rate above 2^32-1 reads as the
	// default (none).
	if rate, err := unix.GetsockoptUint64(h, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE); err != nil {
		return fmt.Errorf("getsockopt SO_MAX_PACING_RATE: %w", err)
	} else if def, err := unix.GetsockoptUint64(fresh, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE); err == nil && def != rate {
		u.Options = append(u.Options, &gocrpb.InetOption{Level: unix.SOL_SOCKET, Name: unix.SO_MAX_PACING_RATE, Value: int64(rate)})
	}
	// SO_TIMESTAMPING is refused: with SOF_TIMESTAMPING_OPT_ID its
	// counter starts again at the send queue's sequence when set
	// (net/core/sock.c sock_set_timestamping), which nothing reads.
	if ts, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_TIMESTAMPING); err != nil {
		return fmt.Errorf("getsockopt SO_TIMESTAMPING: %w", err)
	} else if def, err := unix.GetsockoptInt(fresh, unix.SOL_SOCKET, unix.SO_TIMESTAMPING); err != nil || ts != def {
		return fmt.Errorf("socket option SO_TIMESTAMPING is %#x, which gocr does not restore", ts)
	}
	l, err := unix.GetsockoptLinger(h, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return fmt.Errorf("getsockopt %s: %w", optLinger, err)
	}
	if l.Onoff != 0 || l.Linger != 0 {
		u.Options = append(u.Options, &gocrpb.InetOption{Level: levelLingerOn, Name: unix.SO_LINGER, Value: int64(l.Onoff)},
			&gocrpb.InetOption{Level: levelLingerSec, Name: unix.SO_LINGER, Value: int64(l.Linger)})
	}
	for _, t := range []struct {
		name string
		opt  int
	}{{optRcvtimeo, unix.SO_RCVTIMEO}, {optSndtimeo, unix.SO_SNDTIMEO}} {
		tv, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, t.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", t.name, err)
		}
		if ns := tv.Nano(); ns != 0 {
			u.Options = append(u.Options, &gocrpb.InetOption{Level: levelTimeoutNs, Name: int32(t.opt), Value: ns})
		}
	}
	if family == unix.AF_INET && protocol == unix.IPPROTO_UDP {
		// IP_MULTICAST_IF reads the address set (inet->mc_addr,
		// net/ipv4/ip_sockglue.c do_ip_getsockopt), which gives the
		// interface again when set (ip_setsockopt finds the device
		// by it). An interface chosen by index alone (struct
		// ip_mreqn) reads 0.0.0.0 and is not seen.
		a, err := unix.GetsockoptInet4Addr(h, unix.SOL_IP, unix.IP_MULTICAST_IF)
		if err != nil {
			return fmt.Errorf("getsockopt IP_MULTICAST_IF: %w", err)
		}
		if a != [4]byte{} {
			u.Options = append(u.Options, &gocrpb.InetOption{Level: unix.SOL_IP, Name: unix.IP_MULTICAST_IF, Value: int64(binary.BigEndian.Uint32(a[:]))})
		}
	}
	// Options gocr does not restore, refused when set: a device binding
	// and an upper layer protocol (kTLS).
	if dev, err := unix.GetsockoptString(h, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil {
		return fmt.Errorf("getsockopt SO_BINDTODEVICE: %w", err)
	} else if dev != "" {
		return fmt.Errorf("socket option SO_BINDTODEVICE is %q, which gocr does not restore", dev)
	}
	if protocol == unix.IPPROTO_TCP {
		if ulp, err := unix.GetsockoptString(h, unix.SOL_TCP, unix.TCP_ULP); err == nil && ulp != "" {
			return fmt.Errorf("an upper layer protocol (TCP_ULP %q) is attached, which gocr does not restore", ulp)
		}
		cc, err := unix.GetsockoptString(h, unix.SOL_TCP, unix.TCP_CONGESTION)
		if err != nil {
			return fmt.Errorf("getsockopt TCP_CONGESTION: %w", err)
		}
		if def, err := unix.GetsockoptString(fresh, unix.SOL_TCP, unix.TCP_CONGESTION); err == nil && def != cc {
			u.Congestion = cc
		}
	}
	return nil
}

// unconnectedOnly tells an option read on a TCP socket not connected
// only. TCP_MAXSEG reads the MSS in use on a connection (above), and
// TCP_FASTOPEN_CONNECT can be set in state CLOSE only (net/ipv4/tcp.c
// do_tcp_setsockopt) and acts at connect(2) only.
func unconnectedOnly(o inetIntOption) bool {
	return o.level == unix.SOL_TCP && (o.opt == unix.TCP_MAXSEG || o.opt == unix.TCP_FASTOPEN_CONNECT)
}

// setInetInt sets an int option and reads it back.
func setInetInt(h int, o inetIntOption, v int) error {
	if err := unix.SetsockoptInt(h, o.level, o.opt, v); err != nil {
		return fmt.Errorf("setsockopt %s %d: %w", o.name, v, err)
	}
	if got, err := unix.GetsockoptInt(h, o.level, o.opt); err != nil || got != v {
		return fmt.Errorf("setsockopt %s %d: reads back as %d (%v)", o.name, v, got, err)
	}
	return nil
}

// optionStep says which of the dumped options setInetOptions sets now.
type optionStep int

const (
	stepBeforeBind  optionStep = iota // before bind(2)
	stepAfterBind                     // once bound (and, for a connection, repaired)
	stepAfterRepair                   // once repair mode is off
)

// setInetOptions gives socket h the dumped options of one step.
func setInetOptions(h int, u *gocrpb.InetSocketFd, step optionStep, repaired bool) error {
	var linger unix.Linger
	hasLinger := false
	for _, opt := range u.GetOptions() {
		level, name, v := int(opt.GetLevel()), int(opt.GetName()), opt.GetValue()
		if o, ok := findInetOption(level, name); ok {
			want := stepAfterBind
			switch {
			case o.afterRepair && repaired:
				want = stepAfterRepair
			case o.beforeBind:
				want = stepBeforeBind
			}
			if want != step {
				continue
			}
			if err := setInetInt(h, o, int(v)); err != nil {
				return err
			}
			continue
		}
		if step != stepAfterBind {
			continue
		}
		switch {
		case level == unix.SOL_SOCKET && name == unix.SO_SNDBUF:
			if err := setBufferSize(h, optSndbuf, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, int(v)); err != nil {
				return err
			}
		case level == unix.SOL_SOCKET && name == unix.SO_RCVBUF:
			if err := setBufferSize(h, optRcvbuf, unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, int(v)); err != nil {
				return err
			}
		case level == unix.SOL_SOCKET && name == unix.SO_MAX_PACING_RATE:
			if err := unix.SetsockoptUint64(h, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, uint64(v)); err != nil {
				return fmt.Errorf("setsockopt SO_MAX_PACING_RATE %d: %w", uint64(v), err)
			}
			if got, err := unix.GetsockoptUint64(h, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE); err != nil || got != uint64(v) {
				return fmt.Errorf("setsockopt SO_MAX_PACING_RATE %d: reads back as %d (%v)", uint64(v), got, err)
			}
		case level == unix.SOL_IP && name == unix.IP_MULTICAST_IF:
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], uint32(v))
			if err := unix.SetsockoptInet4Addr(h, unix.SOL_IP, unix.IP_MULTICAST_IF, a); err != nil {
				return fmt.Errorf("setsockopt IP_MULTICAST_IF %v: %w", netip.AddrFrom4(a), err)
			}
		case level == levelLingerOn:
			linger.Onoff, hasLinger = int32(v), true
		case level == levelLingerSec:
			linger.Linger, hasLinger = int32(v), true
		case level == levelTimeoutNs:
			tv := unix.NsecToTimeval(v)
			if err := unix.SetsockoptTimeval(h, unix.SOL_SOCKET, name, &tv); err != nil {
				return fmt.Errorf("setsockopt timeout %d: %w", name, err)
			}
			if got, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, name); err != nil || got.Nano() != v {
				return fmt.Errorf("setsockopt timeout %d to %d ns: reads back as %v (%v)", name, v, got, err)
			}
		default:
			return fmt.Errorf("socket option %d at level %d in the image, which gocr does not know", name, level)
		}
	}
	if hasLinger {
		if err := unix.SetsockoptLinger(h, unix.SOL_SOCKET, unix.SO_LINGER, &linger); err != nil {
			return fmt.Errorf("setsockopt %s: %w", optLinger, err)
		}
	}
	if step == stepAfterBind && u.GetCongestion() != "" {
		if err := unix.SetsockoptString(h, unix.SOL_TCP, unix.TCP_CONGESTION, u.GetCongestion()); err != nil {
			return fmt.Errorf("setsockopt TCP_CONGESTION %q: %w", u.GetCongestion(), err)
		}
	}
	return nil
}

func findInetOption(level, name int) (inetIntOption, bool) {
	for _, o := range inetOptions {
		if o.level == level && o.opt == name {
			return o, true
		}
	}
	return inetIntOption{}, false
}
