//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// udpPeekBuf holds the longest UDP datagram (65535 bytes less the
// headers), so a peek never cuts one.
const udpPeekBuf = 64 << 10

// udpMaxDatagrams bounds a queue's datagrams, against a peek that never
// ends: the receive buffer (at most rmem_max times two) holds far fewer.
const udpMaxDatagrams = 1 << 20

// dumpUDP records a UDP socket's peer, shutdown state and the datagrams
// waiting to be read, each with its sender.
func dumpUDP(h int, d proc.InetSocket, u *gocrpb.InetSocketFd) error {
	switch d.State {
	case proc.InetEstablished:
		u.PeerAddr, u.PeerPort = d.Peer.Addr().AsSlice(), uint32(d.Peer.Port())
	case proc.InetClose:
	default:
		return fmt.Errorf("UDP state %s", proc.InetStateName(d.State))
	}
	u.Shutdown = uint32(d.Shutdown)
	if d.RecvQueue == 0 {
		return nil // no memory held by the receive queue: no datagram
	}
	msgs, err := peekDatagrams(h)
	if err != nil {
		return err
	}
	u.Datagrams = msgs
	return nil
}

// peekDatagrams copies the datagrams waiting at socket h, and who sent
// each, without consuming them: each MSG_PEEK reads from the socket's
// peek offset and moves it past the datagram (SO_PEEK_OFF, man 7 socket;
// net/core/datagram.c __skb_try_recv_from_queue), from 0 on. The offset
// is the socket's own and is put back.
func peekDatagrams(h int) (out []*gocrpb.Datagram, err error) {
	off, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("set SO_PEEK_OFF 0 to peek: %w", err)
	}
	defer func() {
		if perr := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off); perr != nil && err == nil {
			err = fmt.Errorf("put back its SO_PEEK_OFF %d: %w", off, perr)
		}
	}()
	buf := make([]byte, udpPeekBuf)
	for len(out) < udpMaxDatagrams {
		n, _, flags, from, err := unix.Recvmsg(h, buf, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peek at its queue: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("a datagram longer than %d bytes in its queue", len(buf))
		}
		g := &gocrpb.Datagram{Data: append([]byte(nil), buf[:n]...)}
		switch a := from.(type) {
		case *unix.SockaddrInet4:
			g.FromAddr, g.FromPort = a.Addr[:], uint32(a.Port)
		case *unix.SockaddrInet6:
			if a.ZoneId != 0 {
				return nil, errors.New("a datagram from a link-local address with a zone in its queue (not restored)")
			}
			g.FromAddr, g.FromPort = a.Addr[:], uint32(a.Port)
		default:
			return nil, fmt.Errorf("a datagram from address %T in its queue", from)
		}
		out = append(out, g)
	}
	return nil, errors.New("its queue did not come to an end")
}

// openUDP connects a restored UDP socket, queues its datagrams and shuts
// it down as it was.
func openUDP(h int, u *gocrpb.InetSocketFd) error {
	if err := fillDatagrams(h, u); err != nil {
		return err
	}
	if len(u.GetPeerAddr()) > 0 {
		if err := unix.Connect(h, inetSockaddr(u.GetPeerAddr(), u.GetPeerPort())); err != nil {
			return fmt.Errorf("connect to %s: %w", inetAddrPort(u.GetPeerAddr(), u.GetPeerPort()), err)
		}
	}
	if sh := u.GetShutdown() & (proc.ShutdownRead | proc.ShutdownWrite); sh != 0 {
		// SHUT_RD, SHUT_WR, SHUT_RDWR are the bits less one. An
		// unconnected datagram socket takes the bits and says
		// ENOTCONN (net/ipv4/af_inet.c inet_shutdown).
		if err := unix.Shutdown(h, int(sh)-1); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("shutdown %d: %w", sh-1, err)
		}
	}
	return nil
}

// fillDatagrams queues the dumped datagrams at socket h (bound, not
// connected yet, which would filter senders) from their senders'
// addresses and ports: each is sent whole, UDP header included, through a
// raw socket of IPPROTO_UDP bound to the sender's address (man 7 raw:
// the kernel adds the IP header; for IPv6, IPV6_CHECKSUM makes it fill
// the UDP checksum at offset 6, man 7 ipv6; an IPv4 UDP checksum of 0
// means none, RFC 768). IP_FREEBIND lets a sender's address that is not
// local be bound. The datagrams then wait at h in their order.
func fillDatagrams(h int, u *gocrpb.InetSocketFd) error {
	msgs := u.GetDatagrams()
	if len(msgs) == 0 {
		return nil
	}
	dst := inetAddrPort(u.GetLocalAddr(), u.GetLocalPort())
	raws := map[netip.Addr]int{}
	defer func() {
		for _, r := range raws {
			unix.Close(r)
		}
	}()
	for i, m := range msgs {
		from := inetAddrPort(m.GetFromAddr(), m.GetFromPort())
		src := from.Addr().Unmap()
		to := dst.Addr()
		if src.Is4() {
			to = to.Unmap()
			if !to.Is4() || to.IsUnspecified() {
				to = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
		} else if to.IsUnspecified() || !to.IsValid() {
			to = netip.IPv6Loopback()
		}
		r, ok := raws[src]
		if !ok {
			var err error
			if r, err = rawUDPSender(src); err != nil {
				return fmt.Errorf("a sender from %s for its queued datagrams: %w", src, err)
			}
			raws[src] = r
		}
		pkt := make([]byte, 8+len(m.GetData()))
		binary.BigEndian.PutUint16(pkt[0:], uint16(m.GetFromPort()))
		binary.BigEndian.PutUint16(pkt[2:], dst.Port())
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)))
		copy(pkt[8:], m.GetData())
		var sa unix.Sockaddr
		if to.Is4() {
			sa = &unix.SockaddrInet4{Addr: to.As4()}
		} else {
			sa = &unix.SockaddrInet6{Addr: to.As16()}
		}
		if err := unix.Sendto(r, pkt, 0, sa); err != nil {
			return fmt.Errorf("queue datagram %d of %d (from %s): %w", i+1, len(msgs), from, err)
		}
	}
	return waitDatagrams(h, len(msgs))
}

// rawUDPSender is a raw socket that sends UDP datagrams from address a.
func rawUDPSender(a netip.Addr) (int, error) {
	family, level, freebind := unix.AF_INET, unix.SOL_IP, unix.IP_FREEBIND
	var sa unix.Sockaddr
	if a.Is4() {
		sa = &unix.SockaddrInet4{Addr: a.As4()}
	} else {
		family, level, freebind = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_FREEBIND
		sa = &unix.SockaddrInet6{Addr: a.As16()}
	}
	r, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(r, unix.SOL_IPV6, unix.IPV6_CHECKSUM, 6); err != nil {
			unix.Close(r)
			return -1, fmt.Errorf("IPV6_CHECKSUM: %w", err)
		}
	}
	if err := unix.SetsockoptInt(r, level, freebind, 1); err != nil {
		unix.Close(r)
		return -1, fmt.Errorf("freebind: %w", err)
	}
	if err := unix.Bind(r, sa); err != nil {
		unix.Close(r)
		return -1, fmt.Errorf("bind: %w", err)
	}
	return r, nil
}

// udpQueueWait bounds the wait for datagrams sent over the loopback to be
// queued: the loopback hands them over in its softirq, on the sending CPU
// once the send returns, or soon after.
const udpQueueWait = 5 * time.Second

// waitDatagrams waits until n datagrams wait at h, counted by peeking.
func waitDatagrams(h, n int) error {
	deadline := time.Now().Add(udpQueueWait)
	for {
		got, err := peekDatagrams(h)
		if err != nil {
			return err
		}
		if len(got) == n {
			return nil
		}
		if len(got) > n || time.Now().After(deadline) {
			return fmt.Errorf("%d datagrams queued, %d sent", len(got), n)
		}
		time.Sleep(time.Millisecond)
	}
}
