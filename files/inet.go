//go:build linux

package files

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// inetSocketKind is a TCP or UDP socket of IPv4 or IPv6 (dual-stack IPv6
// sockets too): a listening TCP socket, bound again to its address and
// port with its backlog; a TCP socket not connected (bound or not); a TCP
// connection, read and made again in repair mode (tcprepair.go); a UDP
// socket, bound and connected as it was, with the datagrams waiting to be
// read (udp.go). Each keeps the options gocr knows to set (inetopts.go)
// and its status flags. Refused: a listening socket with connections not
// accepted yet, a connection being set up (SYN_SENT, SYN_RECV), a
// connection closed both ways, a connection to a peer outside the dump
// (without --tcp-established), and options gocr cannot set again.
type inetSocketKind struct{}

func init() { register(inetSocketKind{}) }

func (inetSocketKind) Name() string { return "inet_socket" }

// inetProtocols are sockfs' names for the sockets of this kind
// (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c, net/ipv4/udp.c,
// net/ipv6/udp.c: the protos' names).
var inetProtocols = map[string][3]int{
	"TCP":   {unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_TCP},
	"TCPv6": {unix.AF_INET6, unix.SOCK_STREAM, unix.IPPROTO_TCP},
	"UDP":   {unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_UDP},
	"UDPv6": {unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDP},
}

func (inetSocketKind) Match(e *Entry) bool {
	if e.Type() != unix.S_IFSOCK {
		return false
	}
	p, err := proc.SocketProtocol(e.Pid, e.Fd)
	_, ok := inetProtocols[p]
	return err == nil && ok
}

func (inetSocketKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	p, err := proc.SocketProtocol(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	fam := inetProtocols[p]
	family, typ, protocol := fam[0], fam[1], fam[2]
	if fd.Flags&unix.O_ASYNC != 0 {
		return errors.New("signal-driven I/O (O_ASYNC) is on: its owner and signal are not restored")
	}
	h, err := takeFd(e.Pid, e.Fd)
	if err != nil {
		return fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	d, err := proc.ReadInetSocket(family, protocol, e.Stat.Ino)
	if errors.Is(err, unix.ENOENT) {
		d, err = unhashedInetSocket(h, family, protocol, e.Stat.Ino)
	}
	if err != nil {
		return err
	}
	for _, a := range []netip.Addr{d.Local.Addr(), d.Peer.Addr()} {
		if a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
			// sock_diag gives no zone with the address.
			return fmt.Errorf("an IPv6 link-local address %s (its interface is not restored)", a)
		}
	}
	u := &gocrpb.InetSocketFd{Family: int32(family), Type: int32(typ), Protocol: int32(protocol), Ino: e.Stat.Ino, State: uint32(d.State)}
	fd.Description = fmt.Sprintf("%s %s %s", e.Target, p, describeInet(d))
	if d.Local.Port() != 0 || !d.Local.Addr().IsUnspecified() {
		u.LocalAddr, u.LocalPort = d.Local.Addr().AsSlice(), uint32(d.Local.Port())
	}
	if protocol == unix.IPPROTO_TCP {
		err = dumpTCP(d, u)
	} else {
		err = dumpUDP(h, d, u)
	}
	if err != nil {
		return err
	}
	if err := readInetOptions(h, family, typ, protocol, u); err != nil {
		return err
	}
	if err := readInetState(h, d, u); err != nil {
		return err
	}
	fd.Kind = &gocrpb.Fd_InetSocket{InetSocket: u}
	return nil
}

// describeInet is a socket as ss(8) shows it, for messages.
func describeInet(d proc.InetSocket) string {
	s := proc.InetStateName(d.State) + " " + d.Local.String()
	if d.Peer.Port() != 0 {
		s += " -> " + d.Peer.String()
	}
	return s
}

// dumpTCP records a TCP socket's state, or refuses it. A connection's
// sequence numbers and queues are read later, with every connection of
// the dump in repair mode at once (CaptureConnections).
func dumpTCP(d proc.InetSocket, u *gocrpb.InetSocketFd) error {
	switch d.State {
	case proc.InetListen:
		if d.RecvQueue > 0 {
			// The connections in its accept queue have no fd
			// gocr could repair them through, and nothing puts a
			// connection back in a queue: refused, as CRIU does
			// without --skip-in-flight.
			return fmt.Errorf("a listening socket with %d connection(s) not accepted yet (not restored)", d.RecvQueue)
		}
		u.Backlog = d.SendQueue
		return nil
	case proc.InetClose:
		if d.Shutdown != 0 {
			return errors.New("a connection closed both ways (not restored)")
		}
		return nil
	case proc.InetSynSent, proc.InetSynRecv:
		return fmt.Errorf("a connection being set up (%s, not restored)", proc.InetStateName(d.State))
	case proc.InetEstablished, proc.InetFinWait1, proc.InetFinWait2, proc.InetCloseWait, proc.InetLastAck, proc.InetClosing:
	default:
		return fmt.Errorf("TCP state %s (not restored)", proc.InetStateName(d.State))
	}
	u.PeerAddr, u.PeerPort = d.Peer.Addr().AsSlice(), uint32(d.Peer.Port())
	c := &gocrpb.TcpConnection{}
	// Which FINs went (include/net/tcp_states.h, RFC 793's diagram): the
	// connection is made again without them and they are sent again
	// once repair mode is off (tcprepair.go).
	switch d.State {
	case proc.InetFinWait1, proc.InetFinWait2:
		c.FinSent = true
	case proc.InetCloseWait:
		c.FinReceived = true
	case proc.InetLastAck, proc.InetClosing:
		c.FinSent, c.FinReceived = true, true
	}
	// A FIN received sets RCV_SHUTDOWN too (net/ipv4/tcp_input.c
	// tcp_fin): only without one is that bit the user's shutdown(2).
	if !c.FinReceived {
		u.Shutdown = uint32(d.Shutdown) & proc.ShutdownRead
	}
	u.Tcp = c
	return nil
}

// Open makes the socket again in gocr.
func (inetSocketKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	u := fd.GetInetSocket()
	h, err := unix.Socket(int(u.GetFamily()), int(u.GetType())|unix.SOCK_CLOEXEC, int(u.GetProtocol()))
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	n := s.AddFd(h, fd.Description)
	rel := inetReleaser(s)
	rel.handles = append(rel.handles, n)
	if u.GetTcp() != nil {
		err = openTCPConnection(s, h, u)
	} else {
		err = openInetSocket(h, u)
	}
	if err != nil {
		return 0, err
	}
	if err := setInetState(h, u); err != nil {
		return 0, err
	}
	if err := setSocketStatusFlags(h, fd.Flags); err != nil {
		return 0, err
	}
	return n, nil
}

// openInetSocket gives a socket not connected over TCP its options,
// address, and its peer or backlog.
func openInetSocket(h int, u *gocrpb.InetSocketFd) error {
	if err := setInetOptions(h, u, stepBeforeBind, false); err != nil {
		return err
	}
	local := inetAddrPort(u.GetLocalAddr(), u.GetLocalPort())
	// A TCP socket's port may be held by TIME_WAIT entries of the job's
	// own closed connections (timewait.go).
	retry := func(f func() error) error { return f() }
	if u.GetProtocol() == unix.IPPROTO_TCP {
		retry = func(f func() error) error { return clearedBind(local, int(u.GetFamily()), f) }
	}
	if len(u.GetLocalAddr()) > 0 {
		if err := retry(func() error { return unix.Bind(h, inetSockaddr(u.GetLocalAddr(), u.GetLocalPort())) }); err != nil {
			return fmt.Errorf("bind to %s: %w", local, err)
		}
	}
	if err := setInetOptions(h, u, stepAfterBind, false); err != nil {
		return err
	}
	if u.GetProtocol() == unix.IPPROTO_UDP {
		return openUDP(h, u)
	}
	if u.GetState() == proc.InetListen {
		// listen(2) checks the port once more (inet_csk_listen_start).
		if err := retry(func() error { return unix.Listen(h, int(u.GetBacklog())) }); err != nil {
			return fmt.Errorf("listen on %s: %w", local, err)
		}
	}
	return nil
}

// inetSockaddr is the socket address of an IPv4 or IPv6 address and port.
func inetSockaddr(addr []byte, port uint32) unix.Sockaddr {
	if len(addr) == 4 {
		return &unix.SockaddrInet4{Addr: [4]byte(addr), Port: int(port)}
	}
	return &unix.SockaddrInet6{Addr: [16]byte(addr), Port: int(port)}
}

// inetAddrPort is an address and port for messages and matching.
func inetAddrPort(addr []byte, port uint32) netip.AddrPort {
	a, _ := netip.AddrFromSlice(addr)
	return netip.AddrPortFrom(a, uint16(port))
}

// inetRelease is what the restore does once every socket is made: take
// every connection out of repair mode, and close gocr's own handles of
// the sockets, so that a socket the job closes is closed
// (ReleaseConnections).
type inetRelease struct {
	handles []int32         // every inet socket among the sources
	conns   []*restoredConn // the connections in repair mode
	tables  map[string]bool // nftables tables to remove once the processes run
	watch   *watchdog       // removes tables should gocr die once they run
}

type inetReleaseKey struct{}

func inetReleaser(s *Sources) *inetRelease {
	r, _ := once(s, inetReleaseKey{}, func() (*inetRelease, error) {
		return &inetRelease{tables: map[string]bool{}}, nil
	})
	return r
}
