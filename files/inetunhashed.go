//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// tcpInfoLen covers struct tcp_info up to tcpi_segs_in
// (include/uapi/linux/tcp.h: tcpi_segs_out at 136, tcpi_segs_in at 140).
const tcpInfoLen = 144

// unhashedInetSocket tells what sock_diag cannot: a TCP or UDP socket in
// no hash table, which it does not list (net/ipv4/inet_diag.c walks the
// listening, established and bind tables, net/ipv4/udp_diag.c the UDP
// table). That is a socket never bound to a port nor connected, read
// through gocr's handle h: its address (getsockname: a port of 0, an
// address only with IP_BIND_ADDRESS_NO_PORT), no peer, and shut for
// reading if poll says POLLRDHUP (net/core/datagram.c datagram_poll,
// net/ipv4/tcp.c tcp_poll). A TCP socket closed after a connection (a
// reset, a timeout) is out of the tables too, but has counted segments
// (tcp_info tcpi_segs_out, tcpi_segs_in, which only tcp_disconnect sets
// back to 0): refused, as a socket closed that way is when sock_diag
// shows it.
func unhashedInetSocket(h, family, protocol int, ino uint64) (proc.InetSocket, error) {
	d := proc.InetSocket{Ino: ino, State: proc.InetClose}
	if protocol == unix.IPPROTO_TCP {
		buf := make([]byte, tcpInfoLen)
		n, err := getsockoptLen(h, unix.SOL_TCP, unix.TCP_INFO, buf, tcpInfoLen)
		if err != nil || n < tcpInfoLen {
			return d, fmt.Errorf("getsockopt TCP_INFO: %d bytes (%v)", n, err)
		}
		ne := binary.NativeEndian
		if buf[0] != proc.InetClose || ne.Uint32(buf[136:]) != 0 || ne.Uint32(buf[140:]) != 0 {
			return d, errors.New("a connection closed (reset or timed out, not restored)")
		}
	}
	sa, err := unix.Getsockname(h)
	if err != nil {
		return d, fmt.Errorf("getsockname: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		d.Local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		d.Local = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	default:
		return d, fmt.Errorf("getsockname gives family %T", sa)
	}
	if d.Local.Port() != 0 {
		return d, fmt.Errorf("sock_diag does not show socket inode %d, bound to %s", ino, d.Local)
	}
	if _, err := unix.Getpeername(h); !errors.Is(err, unix.ENOTCONN) {
		return d, fmt.Errorf("sock_diag does not show socket inode %d, which has a peer (getpeername: %v)", ino, err)
	}
	p := []unix.PollFd{{Fd: int32(h), Events: unix.POLLRDHUP}}
	for {
		_, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return d, fmt.Errorf("poll: %w", err)
		}
		break
	}
	if p[0].Revents&unix.POLLRDHUP != 0 {
		d.Shutdown = proc.ShutdownRead
	}
	return d, nil
}
