//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// A TCP socket restored on a port can find it taken by a TIME_WAIT entry
// of a connection that the job itself closed before the dump: a
// connection accepted from a listener and closed first by the job stays
// in TIME_WAIT on the listener's address and port for 60 s
// (include/net/tcp.h TCP_TIMEWAIT_LEN), and binding that port again
// conflicts with it unless both it and the new socket allow reuse
// (SO_REUSEADDR), which the entry takes from the closed socket's
// (net/ipv4/inet_connection_sock.c inet_bind_conflict). The listener
// coexisted with it before the dump only because it was bound first.
// Open MPI's btl tcp does this at every start: its ranks connect to each
// other at once and each closes one of the two connections, and it binds
// its listeners without SO_REUSEADDR.
//
// Such an entry guards its four-tuple against late segments of the old
// connection. When both its ends are addresses of this host no segment
// can come from elsewhere, and the processes of both ends are gone (they
// closed it), so the restore clears it with SOCK_DESTROY (man 7
// sock_diag; net/ipv4/tcp.c tcp_abort deschedules a TIME_WAIT socket,
// inet_twsk_deschedule_put; CONFIG_INET_DIAG_DESTROY) and binds again.
// An entry with a peer elsewhere is left, and the bind fails as before.

// clearedBind runs bind (or listen) for a TCP socket on local; should it
// fail with EADDRINUSE, the TIME_WAIT entries that may be in its way are
// cleared and it is run once more.
func clearedBind(local netip.AddrPort, family int, bind func() error) error {
	err := bind()
	if !errors.Is(err, unix.EADDRINUSE) {
		return err
	}
	n, cerr := clearLocalTimeWait(local, family)
	if cerr != nil {
		return fmt.Errorf("%w (clearing the TIME_WAIT entries on its port: %v)", err, cerr)
	}
	if n == 0 {
		return err
	}
	return bind()
}

// clearLocalTimeWait removes the TIME_WAIT entries on local (any address
// of the port when local's is unspecified) whose peer is an address of
// this host, and says how many it removed. A socket of family AF_INET6
// also meets IPv4 entries (dual-stack).
func clearLocalTimeWait(local netip.AddrPort, family int) (int, error) {
	own, err := hostAddrs()
	if err != nil {
		return 0, err
	}
	families := []int{family}
	if family == unix.AF_INET6 && (local.Addr().IsUnspecified() || local.Addr().Is4In6()) {
		families = append(families, unix.AF_INET)
	}
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(s)
	cleared := 0
	for _, fam := range families {
		ids, err := timeWaitIDs(s, fam)
		if err != nil {
			return cleared, err
		}
		for _, id := range ids {
			tw, err := parseDiagSockID(fam, id)
			if err != nil {
				return cleared, err
			}
			if tw.Local.Port() != local.Port() || !own(tw.Peer.Addr()) {
				continue
			}
			if a := local.Addr().Unmap(); !a.IsUnspecified() && tw.Local.Addr().Unmap() != a {
				continue
			}
			if err := destroySocket(s, fam, id); err != nil {
				return cleared, fmt.Errorf("remove TIME_WAIT %s -> %s: %w", tw.Local, tw.Peer, err)
			}
			cleared++
		}
	}
	return cleared, nil
}

// hostAddrs tells whether an address is one of this host's, in gocr's
// network namespace: a loopback address, or one of an interface's.
func hostAddrs() (func(netip.Addr) bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses: %w", err)
	}
	set := map[netip.Addr]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				set[ip.Unmap()] = true
			}
		}
	}
	return func(a netip.Addr) bool { a = a.Unmap(); return a.IsLoopback() || set[a] }, nil
}

// timeWaitIDs lists the struct inet_diag_sockid (cookie included) of
// every TCP socket of family in TIME_WAIT.
func timeWaitIDs(s, family int) ([][]byte, error) {
	const seq = 1
	req := diagRequest(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, family, nil)
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: send: %w", err)
	}
	var ids [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, _, _, _, err := unix.Recvmsg(s, buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag: receive: %w", err)
		}
		done := false
		err = eachNetlinkMessage(buf[:n], seq, func(typ uint16, msg []byte) error {
			switch typ {
			case unix.NLMSG_DONE:
				done = true
			case unix.SOCK_DIAG_BY_FAMILY:
				// struct inet_diag_msg: family, state, timer,
				// retrans, then the sockid.
				if len(msg) < 4+inetDiagSockIDLen {
					return fmt.Errorf("inet_diag_msg cut short at %d bytes", len(msg))
				}
				if msg[1] == proc.InetTimeWait {
					ids = append(ids, append([]byte(nil), msg[4:4+inetDiagSockIDLen]...))
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		if done {
			return ids, nil
		}
	}
}

// destroySocket asks sock_diag to destroy the TCP socket whose sockid
// (with its cookie, so that no other socket on the same four-tuple can
// be taken for it) is id.
func destroySocket(s, family int, id []byte) error {
	const seq = 2
	req := diagRequest(unix.SOCK_DESTROY, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, family, id)
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, _, _, err := unix.Recvmsg(s, buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		acked := false
		err = eachNetlinkMessage(buf[:n], seq, func(typ uint16, msg []byte) error {
			if typ == unix.NLMSG_ERROR {
				acked = true
			}
			return nil
		})
		if errors.Is(err, unix.ENOENT) {
			return nil // it ended by itself meanwhile
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("SOCK_DESTROY: %w (a kernel without CONFIG_INET_DIAG_DESTROY)", err)
		}
		if err != nil || acked {
			return err
		}
	}
}

// struct inet_diag_sockid: ports, addresses, interface, cookie
// (include/uapi/linux/inet_diag.h).
const inetDiagSockIDLen = 48

// diagRequest is a netlink message of type typ with a struct
// inet_diag_req_v2 for TCP sockets of family in TIME_WAIT, with sockid id
// (nil: none).
func diagRequest(typ, flags uint16, seq uint32, family int, id []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+4+4+inetDiagSockIDLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	r := b[unix.SizeofNlMsghdr:]
	r[0], r[1] = byte(family), unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<proc.InetTimeWait) // idiag_states
	copy(r[8:], id)
	return b
}

// eachNetlinkMessage calls f with each message of a datagram answering
// request seq; an NLMSG_ERROR with an errno is returned as it.
func eachNetlinkMessage(b []byte, seq uint32, f func(typ uint16, msg []byte) error) error {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < unix.SizeofNlMsghdr {
			return fmt.Errorf("netlink message header cut short at %d bytes", len(b))
		}
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return fmt.Errorf("netlink message length %d, %d bytes left", l, len(b))
		}
		if s := ne.Uint32(b[8:]); s != seq {
			return fmt.Errorf("netlink reply to request %d, want %d", s, seq)
		}
		msg := b[unix.SizeofNlMsghdr:l]
		if typ == unix.NLMSG_ERROR {
			if len(msg) < 4 {
				return errors.New("netlink error message cut short")
			}
			if errno := -int32(ne.Uint32(msg)); errno != 0 {
				return unix.Errno(errno)
			}
		}
		if err := f(typ, msg); err != nil {
			return err
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}

// diagSockID is the two ends a struct inet_diag_sockid names (ports and
// addresses in network byte order).
type diagSockID struct{ Local, Peer netip.AddrPort }

func parseDiagSockID(family int, id []byte) (diagSockID, error) {
	addr := func(a []byte) (netip.Addr, error) {
		switch family {
		case unix.AF_INET:
			return netip.AddrFrom4([4]byte(a[:4])), nil
		case unix.AF_INET6:
			return netip.AddrFrom16([16]byte(a[:16])), nil
		}
		return netip.Addr{}, fmt.Errorf("sockid of family %d", family)
	}
	src, err := addr(id[4:20])
	if err != nil {
		return diagSockID{}, err
	}
	dst, _ := addr(id[20:36])
	return diagSockID{
		Local: netip.AddrPortFrom(src, binary.BigEndian.Uint16(id[0:])),
		Peer:  netip.AddrPortFrom(dst, binary.BigEndian.Uint16(id[2:])),
	}, nil
}
