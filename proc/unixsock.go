//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Unix sockets as the kernel shows them from outside the process: their
// state and peer through sock_diag (NETLINK_SOCK_DIAG, man 7 sock_diag),
// their protocol by sockfs' name for them, and the fds in flight to them
// from fdinfo.

// include/uapi/linux/unix_diag.h, which golang.org/x/sys/unix lacks.
const (
	udiagShowName    = 0x01 // UDIAG_SHOW_NAME
	udiagShowVfs     = 0x02 // UDIAG_SHOW_VFS
	udiagShowPeer    = 0x04 // UDIAG_SHOW_PEER
	udiagShowIcons   = 0x08 // UDIAG_SHOW_ICONS
	udiagShowRqlen   = 0x10 // UDIAG_SHOW_RQLEN
	unixDiagName     = 0    // UNIX_DIAG_NAME: the bound address, sun_path bytes
	unixDiagVfs      = 1    // UNIX_DIAG_VFS: struct unix_diag_vfs, the bound file
	unixDiagPeer     = 2    // UNIX_DIAG_PEER: u32, the peer's inode
	unixDiagIcons    = 3    // UNIX_DIAG_ICONS: u32s, the clients of connections not yet accepted
	unixDiagRqlen    = 4    // UNIX_DIAG_RQLEN: struct unix_diag_rqlen
	unixDiagShutdown = 6    // UNIX_DIAG_SHUTDOWN: u8, sk_shutdown

	unixDiagReqLen = 24 // struct unix_diag_req
	unixDiagMsgLen = 16 // struct unix_diag_msg
	nlAttrLen      = 4  // struct nlattr
)

// States sock_diag reports for a unix socket (include/net/tcp_states.h,
// net/unix/af_unix.c).
const (
	UnixEstablished = 1  // TCP_ESTABLISHED: connected, or one end of a socketpair
	UnixClose       = 7  // TCP_CLOSE: not connected
	UnixListen      = 10 // TCP_LISTEN: listen(2) was called
)

// Shutdown bits of a socket (include/net/sock.h): what shutdown(2) closed
// on it, or on its peer for a stream or seqpacket socket.
const (
	ShutdownRead  = 1 // RCV_SHUTDOWN
	ShutdownWrite = 2 // SEND_SHUTDOWN
)

// UnixSocket is what sock_diag tells of one unix socket
// (net/unix/diag.c sk_diag_fill).
type UnixSocket struct {
	Ino   uint64
	Type  int // unix.SOCK_STREAM, unix.SOCK_DGRAM or unix.SOCK_SEQPACKET
	State int // UnixEstablished, UnixClose or UnixListen
	// Bound: the socket has a name (bind(2), autobind, or accepted from
	// a listening socket that has one); Name is it as sun_path holds it:
	// a path, or an abstract name starting with a NUL byte.
	Bound bool
	Name  string
	// HasFile: the socket is bound to a path, whose file (as bind(2)
	// made it, wherever it is now) is inode FileIno of the filesystem
	// FileDev (net/unix/diag.c sk_diag_dump_vfs: the superblock's
	// s_dev, the kernel's own dev_t, MAJOR<<20|MINOR, include/linux/kdev_t.h).
	// An accepted socket shares its listener's.
	HasFile          bool
	FileIno, FileDev uint32
	// HasPeer: the socket is connected; Peer is the inode of the socket
	// at the other end, 0 if that socket is closed.
	HasPeer bool
	Peer    uint64
	// Shutdown holds ShutdownRead and ShutdownWrite bits.
	Shutdown uint8
	// RecvQueue is the bytes waiting to be read (of a datagram socket,
	// those of the first datagram only: net/unix/af_unix.c
	// unix_inq_len), or of a listening socket the connections waiting
	// to be accepted; SendQueue is the memory its sent data holds
	// (unix_outq_len), or a listening socket's backlog.
	RecvQueue, SendQueue uint32
	// Pending are a listening socket's connections not accepted yet,
	// oldest first, each by the inode of the socket that connected (0
	// once it is closed): the socket accept(2) would return has none
	// yet (net/unix/diag.c sk_diag_dump_icons).
	Pending []uint64
}

// ReadUnixSocket asks sock_diag about the unix socket with inode ino in
// gocr's network namespace.
func ReadUnixSocket(ino uint64) (UnixSocket, error) {
	op := "sock_diag of unix socket inode " + strconv.FormatUint(ino, 10)
	if ino == 0 || ino > 1<<32-1 {
		// sock_diag names a socket by a 32-bit inode (struct
		// unix_diag_req udiag_ino); sockfs never gives out more
		// (fs/inode.c get_next_ino).
		return UnixSocket{}, fmt.Errorf("%s: not a socket inode", op)
	}
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return UnixSocket{}, fmt.Errorf("%s: %w", op, err)
	}
	defer unix.Close(s)
	const seq = 1
	if err := unix.Sendto(s, unixDiagRequest(uint32(ino), seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return UnixSocket{}, fmt.Errorf("%s: send: %w", op, err)
	}
	buf := make([]byte, 16<<10)
	for {
		n, _, flags, _, err := unix.Recvmsg(s, buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return UnixSocket{}, fmt.Errorf("%s: receive: %w", op, err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return UnixSocket{}, fmt.Errorf("%s: reply longer than %d bytes", op, len(buf))
		}
		u, err := ParseUnixDiagReply(buf[:n], seq)
		if err != nil {
			return UnixSocket{}, fmt.Errorf("%s: %w", op, err)
		}
		return u, nil
	}
}

// unixDiagRequest is a SOCK_DIAG_BY_FAMILY request for the one unix
// socket with inode ino (net/unix/diag.c unix_diag_get_exact), asking for
// its name, peer, pending connections and queue lengths; its shutdown
// state always comes.
func unixDiagRequest(ino, seq uint32) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[unix.SizeofNlMsghdr:]
	r[0] = unix.AF_UNIX             // sdiag_family; sdiag_protocol and pad stay 0
	ne.PutUint32(r[4:], ^uint32(0)) // udiag_states: any
	ne.PutUint32(r[8:], ino)
	ne.PutUint32(r[12:], udiagShowName|udiagShowVfs|udiagShowPeer|udiagShowIcons|udiagShowRqlen)
	// udiag_cookie: INET_DIAG_NOCOOKIE, no cookie to check.
	ne.PutUint32(r[16:], ^uint32(0))
	ne.PutUint32(r[20:], ^uint32(0))
	return b
}

// ParseUnixDiagReply reads the kernel's answer to a request numbered seq:
// one SOCK_DIAG_BY_FAMILY message, or an NLMSG_ERROR (errors.Is works on
// its errno, unix.ENOENT for no such socket).
func ParseUnixDiagReply(b []byte, seq uint32) (UnixSocket, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < unix.SizeofNlMsghdr {
			return UnixSocket{}, fmt.Errorf("netlink message header cut short at %d bytes", len(b))
		}
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return UnixSocket{}, fmt.Errorf("netlink message length %d, %d bytes left", l, len(b))
		}
		msg := b[unix.SizeofNlMsghdr:l]
		if s := ne.Uint32(b[8:]); s != seq {
			return UnixSocket{}, fmt.Errorf("netlink reply to request %d, want %d", s, seq)
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return UnixSocket{}, errors.New("netlink error message cut short")
			}
			errno := -int32(ne.Uint32(msg))
			if errno == 0 {
				return UnixSocket{}, errors.New("netlink acknowledged without an answer")
			}
			return UnixSocket{}, unix.Errno(errno)
		case unix.SOCK_DIAG_BY_FAMILY:
			return parseUnixDiagMsg(msg)
		case unix.NLMSG_DONE:
			return UnixSocket{}, errors.New("no answer before NLMSG_DONE")
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return UnixSocket{}, errors.New("no answer in the netlink reply")
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// parseUnixDiagMsg reads a struct unix_diag_msg and its attributes.
func parseUnixDiagMsg(b []byte) (UnixSocket, error) {
	ne := binary.NativeEndian
	if len(b) < unixDiagMsgLen {
		return UnixSocket{}, fmt.Errorf("unix_diag_msg cut short at %d bytes", len(b))
	}
	if b[0] != unix.AF_UNIX {
		return UnixSocket{}, fmt.Errorf("answer about family %d, want AF_UNIX", b[0])
	}
	u := UnixSocket{Type: int(b[1]), State: int(b[2]), Ino: uint64(ne.Uint32(b[4:]))}
	for a := b[unixDiagMsgLen:]; len(a) > 0; {
		if len(a) < nlAttrLen {
			return u, fmt.Errorf("attribute header cut short at %d bytes", len(a))
		}
		l, typ := int(ne.Uint16(a[0:])), ne.Uint16(a[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER)
		if l < nlAttrLen || l > len(a) {
			return u, fmt.Errorf("attribute %d length %d, %d bytes left", typ, l, len(a))
		}
		v := a[nlAttrLen:l]
		short := func(want int) error {
			return fmt.Errorf("attribute %d holds %d bytes, want %d", typ, len(v), want)
		}
		switch typ {
		case unixDiagName:
			// A path's name ends with the NUL bind(2) added
			// (net/unix/af_unix.c unix_mkname_bsd); an
			// abstract name is every byte of it.
			if i := bytes.IndexByte(v, 0); i > 0 {
				v = v[:i]
			}
			u.Bound, u.Name = true, string(v)
		case unixDiagVfs:
			if len(v) != 8 {
				return u, short(8)
			}
			u.HasFile, u.FileIno, u.FileDev = true, ne.Uint32(v), ne.Uint32(v[4:])
		case unixDiagPeer:
			if len(v) != 4 {
				return u, short(4)
			}
			u.HasPeer, u.Peer = true, uint64(ne.Uint32(v))
		case unixDiagIcons:
			if len(v)%4 != 0 {
				return u, short(len(v) &^ 3)
			}
			for i := 0; i < len(v); i += 4 {
				u.Pending = append(u.Pending, uint64(ne.Uint32(v[i:])))
			}
		case unixDiagRqlen:
			if len(v) != 8 {
				return u, short(8)
			}
			u.RecvQueue, u.SendQueue = ne.Uint32(v), ne.Uint32(v[4:])
		case unixDiagShutdown:
			if len(v) != 1 {
				return u, short(1)
			}
			u.Shutdown = v[0]
		}
		a = a[min(nlAlign(l), len(a)):]
	}
	return u, nil
}

// FileDevMatches tells whether st_dev (of stat(2), as glibc's makedev
// encodes it) names the filesystem FileDev names.
func (u UnixSocket) FileDevMatches(stDev uint64) bool {
	return unix.Major(stDev) == u.FileDev>>20 && unix.Minor(stDev) == u.FileDev&(1<<20-1)
}

// SocketProtocol is the protocol of socket fd of pid as sockfs names it
// (the system.sockprotoname attribute, net/socket.c sockfs_xattr_get):
// "UNIX-STREAM" for a unix stream socket, "UNIX" for a unix datagram or
// seqpacket one, "TCP", "UDP", "NETLINK", ...
func SocketProtocol(pid, fd int) (string, error) {
	path := pidPath(pid, "fd/"+strconv.Itoa(fd))
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "system.sockprotoname", buf)
	if err != nil {
		return "", wrapErr(pid, "read the protocol of "+path, err)
	}
	return string(bytes.TrimRight(buf[:n], "\x00")), nil
}

// ParseUnixFdInfo reads the "scm_fds:" line a unix socket adds to its
// fdinfo (net/unix/af_unix.c unix_show_fdinfo): how many fds were sent to
// it with SCM_RIGHTS and are not received yet.
func ParseUnixFdInfo(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok && key == "scm_fds" {
			return strconv.Atoi(strings.TrimSpace(val))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no scm_fds line")
}

// ReadUnixScmFds reads how many fds are in flight to unix socket fd of pid.
func ReadUnixScmFds(pid, fd int) (int, error) { return readFdInfoWith(pid, fd, ParseUnixFdInfo) }

// UnixDiagAvailable returns nil if this kernel shows unix sockets through
// sock_diag (CONFIG_UNIX_DIAG), which ReadUnixSocket needs, and why not
// otherwise: it asks about a socket pair of its own.
func UnixDiagAvailable() error {
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	var st unix.Stat_t
	if err := unix.Fstat(sv[0], &st); err != nil {
		return err
	}
	_, err = ReadUnixSocket(st.Ino)
	return err
}
