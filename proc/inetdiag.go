//go:build linux

package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// TCP and UDP sockets as sock_diag shows them from outside the process
// (NETLINK_SOCK_DIAG with inet_diag, man 7 sock_diag): their state,
// addresses and queues, found by inode.

// include/uapi/linux/inet_diag.h, which golang.org/x/sys/unix lacks.
const (
	inetDiagReqLen   = 56  // struct inet_diag_req_v2
	inetDiagMsgLen   = 72  // struct inet_diag_msg
	inetDiagShutdown = 8   // INET_DIAG_SHUTDOWN: u8, sk_shutdown
	inetDiagInfo     = 2   // INET_DIAG_INFO: the idiag_ext bit asks for it
	inetDiagMD5Sig   = 18  // INET_DIAG_MD5SIG: struct tcp_diag_md5sig per key
	tcpDiagMD5SigLen = 100 // sizeof(struct tcp_diag_md5sig)
	inetDiagAttrLen  = 4   // struct nlattr
)

// TCP states (include/net/tcp_states.h); a UDP socket is InetEstablished
// once connected and InetClose otherwise.
const (
	InetEstablished = 1
	InetSynSent     = 2
	InetSynRecv     = 3
	InetFinWait1    = 4
	InetFinWait2    = 5
	InetTimeWait    = 6
	InetClose       = 7
	InetCloseWait   = 8
	InetLastAck     = 9
	InetListen      = 10
	InetClosing     = 11
)

var inetStateNames = map[int]string{
	InetEstablished: "ESTABLISHED", InetSynSent: "SYN_SENT", InetSynRecv: "SYN_RECV",
	InetFinWait1: "FIN_WAIT1", InetFinWait2: "FIN_WAIT2", InetTimeWait: "TIME_WAIT",
	InetClose: "CLOSE", InetCloseWait: "CLOSE_WAIT", InetLastAck: "LAST_ACK",
	InetListen: "LISTEN", InetClosing: "CLOSING",
}

// InetStateName names a TCP state as ss(8) does.
func InetStateName(s int) string {
	if n, ok := inetStateNames[s]; ok {
		return n
	}
	return "state " + strconv.Itoa(s)
}

// InetSocket is what sock_diag tells of one TCP or UDP socket
// (net/ipv4/inet_diag.c inet_sk_diag_fill).
type InetSocket struct {
	Ino   uint64
	State int
	Local netip.AddrPort
	Peer  netip.AddrPort
	// RecvQueue and SendQueue: of a listening TCP socket, the
	// connections waiting to be accepted and its listen(2) backlog
	// (sk_ack_backlog, sk_max_ack_backlog); of another TCP socket, the
	// bytes not read yet and not acknowledged yet; of a UDP socket, the
	// memory its queues hold (net/ipv4/tcp_diag.c tcp_diag_get_info,
	// net/ipv4/udp_diag.c).
	RecvQueue, SendQueue uint32
	// Shutdown holds ShutdownRead and ShutdownWrite bits.
	Shutdown uint8
	// MD5Keys is the number of TCP MD5 signature keys (TCP_MD5SIG)
	// the socket holds. The kernel shows them only with INET_DIAG_INFO
	// asked and to a caller with CAP_NET_ADMIN in the socket's network
	// namespace (net/ipv4/tcp_diag.c tcp_diag_get_aux,
	// tcp_diag_put_md5sig; net/ipv4/inet_diag.c inet_sk_diag_fill):
	// to another it is always 0.
	MD5Keys int
}

// ReadInetSocket asks sock_diag about the socket of the given family
// (unix.AF_INET or AF_INET6) and protocol (unix.IPPROTO_TCP or
// IPPROTO_UDP) with inode ino, in gocr's network namespace: it lists
// every such socket and picks the one. unix.ENOENT: none has it.
func ReadInetSocket(family, protocol int, ino uint64) (InetSocket, error) {
	op := "sock_diag of socket inode " + strconv.FormatUint(ino, 10)
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return InetSocket{}, fmt.Errorf("%s: %w", op, err)
	}
	defer unix.Close(s)
	const seq = 1
	if err := unix.Sendto(s, inetDiagRequest(family, protocol, seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return InetSocket{}, fmt.Errorf("%s: send: %w", op, err)
	}
	buf := make([]byte, 64<<10)
	var found *InetSocket
	for {
		n, _, _, _, err := unix.Recvmsg(s, buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return InetSocket{}, fmt.Errorf("%s: receive: %w", op, err)
		}
		socks, done, err := ParseInetDiagReply(buf[:n], seq)
		if err != nil {
			return InetSocket{}, fmt.Errorf("%s: %w", op, err)
		}
		for i := range socks {
			if socks[i].Ino == ino && found == nil {
				found = &socks[i]
			}
		}
		if done {
			break
		}
	}
	if found == nil {
		return InetSocket{}, fmt.Errorf("%s: %w", op, unix.ENOENT)
	}
	return *found, nil
}

// inetDiagRequest is a SOCK_DIAG_BY_FAMILY dump request for every socket
// of family and protocol, in any state (struct inet_diag_req_v2).
func inetDiagRequest(family, protocol int, seq uint32) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	r := b[unix.SizeofNlMsghdr:]
	r[0], r[1] = byte(family), byte(protocol) // sdiag_family, sdiag_protocol
	if protocol == unix.IPPROTO_TCP {
		r[2] = 1 << (inetDiagInfo - 1) // idiag_ext: with it, the MD5 keys
	}
	ne.PutUint32(r[4:], ^uint32(0)) // idiag_states: any
	return b
}

// ParseInetDiagReply reads one datagram of the kernel's answer to a dump
// request numbered seq: the sockets it holds, and whether the answer
// ended (NLMSG_DONE). An NLMSG_ERROR is returned as its errno.
func ParseInetDiagReply(b []byte, seq uint32) (socks []InetSocket, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < unix.SizeofNlMsghdr {
			return nil, false, fmt.Errorf("netlink message header cut short at %d bytes", len(b))
		}
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, false, fmt.Errorf("netlink message length %d, %d bytes left", l, len(b))
		}
		msg := b[unix.SizeofNlMsghdr:l]
		if s := ne.Uint32(b[8:]); s != seq {
			return nil, false, fmt.Errorf("netlink reply to request %d, want %d", s, seq)
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return nil, false, errors.New("netlink error message cut short")
			}
			if errno := -int32(ne.Uint32(msg)); errno != 0 {
				return nil, false, unix.Errno(errno)
			}
		case unix.NLMSG_DONE:
			return socks, true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			s, err := parseInetDiagMsg(msg)
			if err != nil {
				return nil, false, err
			}
			socks = append(socks, s)
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return socks, false, nil
}

// parseInetDiagMsg reads a struct inet_diag_msg and its attributes. Ports
// and addresses are in network byte order (struct inet_diag_sockid).
func parseInetDiagMsg(b []byte) (InetSocket, error) {
	ne := binary.NativeEndian
	if len(b) < inetDiagMsgLen {
		return InetSocket{}, fmt.Errorf("inet_diag_msg cut short at %d bytes", len(b))
	}
	family := int(b[0])
	addr := func(a []byte) (netip.Addr, error) {
		switch family {
		case unix.AF_INET:
			return netip.AddrFrom4([4]byte(a[:4])), nil
		case unix.AF_INET6:
			return netip.AddrFrom16([16]byte(a[:16])), nil
		}
		return netip.Addr{}, fmt.Errorf("answer about family %d", family)
	}
	id := b[4:52] // struct inet_diag_sockid
	src, err := addr(id[4:20])
	if err != nil {
		return InetSocket{}, err
	}
	dst, _ := addr(id[20:36])
	s := InetSocket{
		State:     int(b[1]),
		Local:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(id[0:])),
		Peer:      netip.AddrPortFrom(dst, binary.BigEndian.Uint16(id[2:])),
		RecvQueue: ne.Uint32(b[56:]),
		SendQueue: ne.Uint32(b[60:]),
		Ino:       uint64(ne.Uint32(b[68:])),
	}
	for a := b[inetDiagMsgLen:]; len(a) > 0; {
		if len(a) < inetDiagAttrLen {
			return s, fmt.Errorf("attribute header cut short at %d bytes", len(a))
		}
		l, typ := int(ne.Uint16(a[0:])), ne.Uint16(a[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER)
		if l < inetDiagAttrLen || l > len(a) {
			return s, fmt.Errorf("attribute %d length %d, %d bytes left", typ, l, len(a))
		}
		if typ == inetDiagShutdown {
			if l != inetDiagAttrLen+1 {
				return s, fmt.Errorf("shutdown attribute holds %d bytes, want 1", l-inetDiagAttrLen)
			}
			s.Shutdown = a[inetDiagAttrLen]
		}
		if typ == inetDiagMD5Sig {
			s.MD5Keys = (l - inetDiagAttrLen) / tcpDiagMD5SigLen
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return s, nil
}
