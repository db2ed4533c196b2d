//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// unixSocketKind is one end of a unix socketpair(2) — stream, datagram or
// seqpacket — whose other end is in the dump too, in the same process or
// another. The pair is made again once, in gocr, with what was queued in it
// both ways (each datagram and record on its own); each end gets its
// socket options, its shutdown state and its status flags. Refused: a unix
// socket that has a name, listens, is not connected or is connected to a
// socket outside the dump, and one with fds or credentials in flight to it.
// Sockets of other families match no kind, and Collect refuses them.
type unixSocketKind struct{}

func init() { register(unixSocketKind{}) }

func (unixSocketKind) Name() string { return "unix_socket" }

// Match asks sockfs which protocol the socket is: "UNIX-STREAM" for a
// stream socket, "UNIX" for the others (net/unix/af_unix.c, the protos'
// names).
func (unixSocketKind) Match(e *Entry) bool {
	if e.Type() != unix.S_IFSOCK {
		return false
	}
	p, err := proc.SocketProtocol(e.Pid, e.Fd)
	return err == nil && (p == "UNIX" || p == "UNIX-STREAM")
}

func (unixSocketKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	err := dumpUnixSocket(e, fd)
	if err != nil && e.Fd <= unix.Stderr && len(fd.Locks) == 0 {
		// Stdio on a socket gocr would not restore (a logger's
		// stream, a connection accepted from a named socket) is
		// stdio joined to something outside the dump: the restore
		// gives its own, as to any other.
		setInherit(fd)
		return nil
	}
	return err
}

// unixTypes maps socket(2)'s types to the image's; socketTypes back.
var unixTypes = map[int]gocrpb.UnixSocketFd_Type{
	unix.SOCK_STREAM:    gocrpb.UnixSocketFd_STREAM,
	unix.SOCK_DGRAM:     gocrpb.UnixSocketFd_DGRAM,
	unix.SOCK_SEQPACKET: gocrpb.UnixSocketFd_SEQPACKET,
}

func dumpUnixSocket(e *Entry, fd *gocrpb.Fd) error {
	// As for pipes: the owner and signal of O_ASYNC are not recorded.
	if fd.Flags&unix.O_ASYNC != 0 {
		return errors.New("signal-driven I/O (O_ASYNC) is on: its owner and signal are not restored")
	}
	d, err := proc.ReadUnixSocket(e.Stat.Ino)
	if errors.Is(err, unix.ENOENT) {
		// sockfs says it is a unix socket: sock_diag cannot see
		// unix sockets at all.
		return fmt.Errorf("%w (gocr needs unix sockets' sock_diag: CONFIG_UNIX_DIAG, or the unix_diag module)", err)
	}
	if err != nil {
		return err
	}
	switch {
	case d.State == proc.UnixListen:
		return errors.New("a listening socket (not supported yet)")
	case d.Bound:
		return fmt.Errorf("a socket bound to %s (named sockets are not supported yet)", unixName(d.Name))
	case !d.HasPeer:
		return errors.New("a socket not connected to any other (not supported yet)")
	case d.Peer == 0:
		return errors.New("its peer socket is closed (not supported yet)")
	}
	typ, ok := unixTypes[d.Type]
	if !ok {
		return fmt.Errorf("socket type %d", d.Type)
	}
	n, err := proc.ReadUnixScmFds(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("fds in flight (SCM_RIGHTS: %d sent to it, not received yet) are not restored", n)
	}
	h, err := takeFd(e.Pid, e.Fd)
	if err != nil {
		return fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	u := &gocrpb.UnixSocketFd{Type: typ, Ino: e.Stat.Ino, Peer: d.Peer, Shutdown: uint32(d.Shutdown)}
	if err := readUnixOptions(h, d.Type, u); err != nil {
		return err
	}
	fd.Kind = &gocrpb.Fd_UnixSocket{UnixSocket: u}
	return nil
}

// unixName is a socket's name as ss(8) shows it: a path, or an abstract
// name with '@' for its leading NUL byte.
func unixName(name string) string {
	if strings.HasPrefix(name, "\x00") {
		return strconv.Quote("@" + name[1:])
	}
	return strconv.Quote(name)
}

// unixIntOption is a socket option of one int (man 7 socket).
type unixIntOption struct {
	name string
	opt  int
}

// unixUnrestored are the options of SOL_SOCKET a user can set on a unix
// socket that gocr does not restore; a socket whose value differs from a
// new socket's is refused. SO_OOBINLINE is one: where in the stream an
// out-of-band byte read inline stood cannot be seen from outside.
var unixUnrestored = []unixIntOption{
	{"SO_KEEPALIVE", unix.SO_KEEPALIVE}, {"SO_OOBINLINE", unix.SO_OOBINLINE},
	{"SO_PRIORITY", unix.SO_PRIORITY}, {"SO_RCVLOWAT", unix.SO_RCVLOWAT},
	{"SO_REUSEADDR", unix.SO_REUSEADDR}, {"SO_REUSEPORT", unix.SO_REUSEPORT},
	{"SO_BROADCAST", unix.SO_BROADCAST}, {"SO_DONTROUTE", unix.SO_DONTROUTE},
	{"SO_MARK", unix.SO_MARK}, {"SO_RCVMARK", unix.SO_RCVMARK}, {"SO_RCVPRIORITY", unix.SO_RCVPRIORITY},
	{"SO_TIMESTAMP", unix.SO_TIMESTAMP}, {"SO_TIMESTAMPNS", unix.SO_TIMESTAMPNS},
	{"SO_TIMESTAMPING", unix.SO_TIMESTAMPING}, {"SO_RXQ_OVFL", unix.SO_RXQ_OVFL},
	{"SO_WIFI_STATUS", unix.SO_WIFI_STATUS}, {"SO_NOFCS", unix.SO_NOFCS},
	{"SO_SELECT_ERR_QUEUE", unix.SO_SELECT_ERR_QUEUE}, {"SO_BUSY_POLL", unix.SO_BUSY_POLL},
	{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL}, {"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET},
	{"SO_INCOMING_CPU", unix.SO_INCOMING_CPU}, {"SO_ZEROCOPY", unix.SO_ZEROCOPY},
	{"SO_TXREHASH", unix.SO_TXREHASH}, {"SO_PASSRIGHTS", unix.SO_PASSRIGHTS},
}

// readUnixOptions records the options gocr restores into u, and refuses
// any other a user set: each is compared with a new socket's.
func readUnixOptions(h, typ int, u *gocrpb.UnixSocketFd) error {
	fresh, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("a socketpair to compare options with: %w", err)
	}
	defer unix.Close(fresh[0])
	defer unix.Close(fresh[1])
	for _, o := range unixUnrestored {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
			continue // not on this kernel, or not on unix sockets: nothing set it
		}
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		if def, err := unix.GetsockoptInt(fresh[0], unix.SOL_SOCKET, o.opt); err != nil || v != def {
			return fmt.Errorf("socket option %s is %d, which gocr does not restore (a new socket has %d)", o.name, v, def)
		}
	}
	l, err := unix.GetsockoptLinger(h, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if l.Onoff != 0 || l.Linger != 0 {
		return fmt.Errorf("socket option SO_LINGER is on (%d s), which gocr does not restore", l.Linger)
	}
	if dev, err := unix.GetsockoptString(h, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil {
		return fmt.Errorf("getsockopt SO_BINDTODEVICE: %w", err)
	} else if dev != "" {
		return fmt.Errorf("socket option SO_BINDTODEVICE is %q, which gocr does not restore", dev)
	}

	ints := []struct {
		name string
		opt  int
		dst  *int32
	}{
		{"SO_SNDBUF", unix.SO_SNDBUF, &u.Sndbuf},
		{"SO_RCVBUF", unix.SO_RCVBUF, &u.Rcvbuf},
		{"SO_PEEK_OFF", unix.SO_PEEK_OFF, &u.PeekOff},
	}
	for _, o := range ints {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = int32(v)
	}
	flags := []struct {
		name string
		opt  int
		dst  *bool
	}{
		{"SO_PASSCRED", unix.SO_PASSCRED, &u.Passcred},
		{"SO_PASSSEC", unix.SO_PASSSEC, &u.Passsec},
		{"SO_PASSPIDFD", unix.SO_PASSPIDFD, &u.Passpidfd},
	}
	for _, o := range flags {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if errors.Is(err, unix.ENOPROTOOPT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = v != 0
	}
	for _, o := range []struct {
		name string
		opt  int
		dst  *int64
	}{
		{"SO_RCVTIMEO", unix.SO_RCVTIMEO, &u.RcvtimeoNs},
		{"SO_SNDTIMEO", unix.SO_SNDTIMEO, &u.SndtimeoNs},
	} {
		tv, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = tv.Nano()
	}
	return nil
}

// unixPairKey names a socketpair by its two ends' inodes, lower first.
type unixPairKey [2]uint64

func pairKey(u *gocrpb.UnixSocketFd) unixPairKey {
	return unixPairKey{min(u.GetIno(), u.GetPeer()), max(u.GetIno(), u.GetPeer())}
}

// LinkKey puts both ends of a socketpair in one group for Link.
func (unixSocketKind) LinkKey(fd *gocrpb.Fd) any { return pairKey(fd.GetUnixSocket()) }

// Link checks that both ends of a socketpair are in the dump, and saves
// what waits to be read at each end on the pair's first fd, which the
// restore opens first. A socket whose other end is outside the dump is
// refused, unless it is only stdio, which the restore gives (a job's
// output to a logger's socket).
func (unixSocketKind) Link(refs []Ref) error {
	var ends []Ref // the first fd of each end, in dump order
	for _, r := range refs {
		if !containsUnixEnd(ends, r) {
			ends = append(ends, r)
		}
	}
	first := ends[0]
	u := first.Fd.GetUnixSocket()
	if len(ends) == 1 {
		allStdio := true
		for _, r := range refs {
			allStdio = allStdio && int(r.Fd.Fd) <= unix.Stderr && len(r.Fd.Locks) == 0
		}
		if !allStdio {
			return fmt.Errorf("pid %d fd %d (%s): the other end of this socket (socket inode %d) is outside the dumped processes", first.Pid, first.Fd.Fd, first.Fd.Description, u.GetPeer())
		}
		for _, r := range refs {
			setInherit(r.Fd)
		}
		return nil
	}
	if len(ends) != 2 {
		return fmt.Errorf("pid %d fd %d (%s): %d sockets linked as one socketpair", first.Pid, first.Fd.Fd, first.Fd.Description, len(ends))
	}
	other := ends[1]
	v := other.Fd.GetUnixSocket()
	if u.GetType() != v.GetType() {
		return fmt.Errorf("pid %d fd %d (%s): a %s socket connected to a %s one (pid %d fd %d)", first.Pid, first.Fd.Fd, first.Fd.Description, u.GetType(), v.GetType(), other.Pid, other.Fd.Fd)
	}
	if u.GetType() != gocrpb.UnixSocketFd_DGRAM && (mirrorShutdown(u.GetShutdown())&^v.GetShutdown() != 0 || mirrorShutdown(v.GetShutdown())&^u.GetShutdown() != 0) {
		// shutdown(2) of a stream or seqpacket end shuts the other
		// direction of its peer too (net/unix/af_unix.c
		// unix_shutdown): any other state has no shutdown calls
		// that make it again.
		return fmt.Errorf("pid %d fd %d (%s): shutdown state %d, its peer's %d, which shutdown(2) cannot make", first.Pid, first.Fd.Fd, first.Fd.Description, u.GetShutdown(), v.GetShutdown())
	}
	q := &gocrpb.UnixSocketQueues{}
	for _, e := range []struct {
		r   Ref
		dst *[][]byte
	}{{first, &q.Here}, {other, &q.Peer}} {
		data, err := peekUnixQueue(e.r.Pid, int(e.r.Fd.Fd), socketTypes[u.GetType()])
		if err != nil {
			return fmt.Errorf("pid %d fd %d (%s): %w", e.r.Pid, e.r.Fd.Fd, e.r.Fd.Description, err)
		}
		*e.dst = data
	}
	u.Queues = q
	return nil
}

func containsUnixEnd(ends []Ref, r Ref) bool {
	for _, e := range ends {
		if e.Fd.GetUnixSocket().GetIno() == r.Fd.GetUnixSocket().GetIno() {
			return true
		}
	}
	return false
}

// mirrorShutdown is what shutdown bits of one end of a stream or seqpacket
// pair make of its peer's: its writing shut is its peer's reading shut.
func mirrorShutdown(bits uint32) uint32 {
	var m uint32
	if bits&proc.ShutdownRead != 0 {
		m |= proc.ShutdownWrite
	}
	if bits&proc.ShutdownWrite != 0 {
		m |= proc.ShutdownRead
	}
	return m
}

// unixPeekBuf is how much one peek asks for: a longer datagram comes in
// several, each flagged MSG_TRUNC but the last.
const unixPeekBuf = 64 << 10

// unixMaxMessages bounds the messages a queue may hold, against a peek
// that never ends: the memory a sender may fill (SO_SNDBUF, at most
// wmem_max times two) holds far fewer.
const unixMaxMessages = 1 << 20

// peekUnixQueue copies what waits to be read at socket fd of pid, as the
// messages it was sent in (a stream's bytes as one), without consuming it
// and through gocr's own handle of it. Each MSG_PEEK reads from the socket's
// peek offset on and moves it on (SO_PEEK_OFF, man 7 socket): from 0 on,
// a datagram longer than the buffer comes in pieces and the next peek
// starts at the next datagram. SO_PASSCRED on makes every message come
// with its sender's credentials (man 7 unix), so an empty datagram or
// record is told from the end of the queue of a socket shut for reading,
// and credentials sent with a message are seen. Both options are the
// socket's own, so they are put back as they were.
func peekUnixQueue(pid, fd, typ int) (msgs [][]byte, err error) {
	h, err := takeFd(pid, fd)
	if err != nil {
		return nil, fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	inq, err := unix.IoctlGetInt(h, unix.SIOCINQ)
	if err != nil {
		return nil, fmt.Errorf("SIOCINQ: %w", err)
	}
	if typ == unix.SOCK_STREAM {
		// MSG_OOB|MSG_PEEK reads the out-of-band byte, if one waits
		// (net/unix/af_unix.c unix_stream_recv_urg), and fails with
		// EINVAL if none does.
		var b [1]byte
		if _, _, err := unix.Recvfrom(h, b[:], unix.MSG_OOB|unix.MSG_PEEK|unix.MSG_DONTWAIT); err == nil {
			return nil, errors.New("an out-of-band byte (MSG_OOB) waits to be read, and its place in the stream is not restored")
		}
	}
	restore, err := setPeekOptions(h)
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	buf := make([]byte, unixPeekBuf)
	oob := make([]byte, 4096)
	var cur []byte
	more := false // cur is a datagram whose rest comes next
	for len(msgs) < unixMaxMessages {
		n, oobn, flags, _, err := unix.Recvmsg(h, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("peek at its queue: %w", err)
		}
		sent, err := checkUnixControl(oob[:oobn], flags)
		if err != nil {
			return nil, err
		}
		if !sent {
			break // the end of the queue of a socket shut for reading
		}
		cur = append(cur, buf[:n]...)
		if typ == unix.SOCK_STREAM {
			if len(cur) >= inq {
				break
			}
			continue
		}
		if more = flags&unix.MSG_TRUNC != 0; !more {
			msgs = append(msgs, cur)
			cur = nil
		}
	}
	if typ == unix.SOCK_STREAM {
		if len(cur) > 0 {
			msgs = [][]byte{cur}
		}
		cur = nil
	}
	if more || len(cur) > 0 || len(msgs) == unixMaxMessages {
		return nil, errors.New("its queue did not come to an end")
	}
	// What SIOCINQ counts (net/unix/af_unix.c unix_inq_len): a
	// datagram socket's first datagram; the others' every byte.
	got := 0
	for _, m := range msgs {
		got += len(m)
	}
	if typ == unix.SOCK_DGRAM && len(msgs) > 0 {
		got = len(msgs[0])
	}
	if got != inq {
		return nil, fmt.Errorf("read %d bytes of its queue, the kernel counts %d", got, inq)
	}
	return msgs, nil
}

// setPeekOptions sets SO_PEEK_OFF to 0 and SO_PASSCRED on, and returns
// what puts them back.
func setPeekOptions(h int) (func() error, error) {
	off, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_PEEK_OFF: %w", err)
	}
	cred, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PASSCRED)
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_PASSCRED: %w", err)
	}
	restore := func() error {
		err1 := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off)
		err2 := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PASSCRED, cred)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("put back its SO_PEEK_OFF %d and SO_PASSCRED %d: %w", off, cred, err)
		}
		return nil
	}
	err1 := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0)
	err2 := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	if err := errors.Join(err1, err2); err != nil {
		return nil, errors.Join(fmt.Errorf("set SO_PEEK_OFF 0 and SO_PASSCRED to peek: %w", err), restore())
	}
	return restore, nil
}

// checkUnixControl reads the control messages of one peek: whether they
// came with a message (every message has its SCM_CREDENTIALS, as
// SO_PASSCRED is on), and an error for what the restore could not send
// again. Any fd they hold is closed.
func checkUnixControl(oob []byte, flags int) (sent bool, err error) {
	cmsgs, perr := unix.ParseSocketControlMessage(oob)
	for _, m := range cmsgs {
		if m.Header.Level != unix.SOL_SOCKET {
			err = errors.Join(err, fmt.Errorf("control message level %d type %d is in its queue", m.Header.Level, m.Header.Type))
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			sent = true
			// A message sent without credentials reads as pid 0
			// (net/core/scm.c, the pid of none).
			c, cerr := unix.ParseUnixCredentials(&m)
			switch {
			case cerr != nil:
				err = errors.Join(err, cerr)
			case c.Pid != 0:
				err = errors.Join(err, fmt.Errorf("credentials (SCM_CREDENTIALS of pid %d) are in flight to it, and the restore cannot send them again", c.Pid))
			}
		case unix.SCM_RIGHTS:
			fds, _ := unix.ParseUnixRights(&m)
			for _, f := range fds {
				unix.Close(f)
			}
			err = errors.Join(err, fmt.Errorf("fds in flight (SCM_RIGHTS: %d sent to it, not received yet) are not restored", len(fds)))
		case unix.SCM_PIDFD:
			// One int, a pidfd gocr now holds: it comes with
			// SO_PASSPIDFD for a message sent with credentials
			// (include/net/scm.h scm_pidfd_recv), which
			// SCM_CREDENTIALS refuses.
			if len(m.Data) >= 4 {
				unix.Close(int(int32(binary.NativeEndian.Uint32(m.Data))))
			}
		case unix.SCM_SECURITY:
			err = errors.Join(err, errors.New("a security context (SCM_SECURITY) is in flight to it, and the restore cannot send it again"))
		default:
			err = errors.Join(err, fmt.Errorf("control message type %d is in its queue", m.Header.Type))
		}
	}
	if perr != nil {
		err = errors.Join(err, fmt.Errorf("parse control messages: %w", perr))
	}
	if flags&unix.MSG_CTRUNC != 0 {
		err = errors.Join(err, errors.New("control messages in its queue did not fit"))
	}
	return sent, err
}

// Open gives each end of the socketpair its source: the pair is made
// once, when its first fd in dump order is opened (the one that holds its
// queues), and filled then; each end then gets its options, status flags
// and shutdown state as it is opened, once every queue is in.
func (unixSocketKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	u := fd.GetUnixSocket()
	p, err := once(s, pairKey(u), func() (*unixPair, error) { return makeUnixPair(s, fd) })
	if err != nil {
		return 0, err
	}
	i := slices.Index(p.ino[:], u.GetIno())
	if i < 0 {
		return 0, fmt.Errorf("socket inode %d is no end of the socketpair %d-%d made for it", u.GetIno(), p.ino[0], p.ino[1])
	}
	if p.given[i] {
		return 0, errors.New("two open file descriptions of one socket in the image")
	}
	p.given[i] = true
	h := int(s.File(p.src[i]).Fd())
	if err := setUnixOptions(h, u); err != nil {
		return 0, err
	}
	if err := setSocketStatusFlags(h, fd.Flags); err != nil {
		return 0, err
	}
	if sh := u.GetShutdown() & (proc.ShutdownRead | proc.ShutdownWrite); sh != 0 {
		// SHUT_RD, SHUT_WR, SHUT_RDWR are the bits less one.
		if err := unix.Shutdown(h, int(sh)-1); err != nil {
			return 0, fmt.Errorf("shutdown %d: %w", sh-1, err)
		}
	}
	return p.src[i], nil
}

// unixPair is a remade socketpair among the sources: src[0] is the end
// whose fd made it (inode ino[0] in the dump), src[1] its peer; given says
// whether each went to its open file description already.
type unixPair struct {
	src   [2]int32
	ino   [2]uint64
	given [2]bool
}

// socketTypes maps the image's socket types to socket(2)'s.
var socketTypes = map[gocrpb.UnixSocketFd_Type]int{
	gocrpb.UnixSocketFd_STREAM:    unix.SOCK_STREAM,
	gocrpb.UnixSocketFd_DGRAM:     unix.SOCK_DGRAM,
	gocrpb.UnixSocketFd_SEQPACKET: unix.SOCK_SEQPACKET,
}

// makeUnixPair makes the socketpair fd is an end of, with what was queued
// at both ends: each queue is sent by the other end, before any option
// or shutdown is set (SO_PASSCRED would put gocr's credentials on each
// message, a shutdown would refuse them).
func makeUnixPair(s *Sources, fd *gocrpb.Fd) (*unixPair, error) {
	u := fd.GetUnixSocket()
	typ, ok := socketTypes[u.GetType()]
	if !ok {
		return nil, fmt.Errorf("socket type %s", u.GetType())
	}
	q := u.GetQueues()
	if q == nil {
		return nil, errors.New("the socketpair's first fd in the image does not hold its queues")
	}
	sv, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	p := &unixPair{src: [2]int32{s.AddFd(sv[0], fd.Description), s.AddFd(sv[1], "socket")}, ino: [2]uint64{u.GetIno(), u.GetPeer()}}
	if err := fillUnixQueue(sv[1], typ, q.GetHere()); err != nil {
		return nil, fmt.Errorf("queue what was to be read here: %w", err)
	}
	if err := fillUnixQueue(sv[0], typ, q.GetPeer()); err != nil {
		return nil, fmt.Errorf("queue what was to be read at its peer: %w", err)
	}
	return p, nil
}

// fillUnixQueue sends msgs from socket h to its peer, each datagram or
// record on its own. h's send buffer grows as far as the messages need:
// the end's own size is set afterwards, when it is opened.
func fillUnixQueue(h, typ int, msgs [][]byte) error {
	for _, m := range msgs {
		for off := 0; ; {
			n, err := unix.SendmsgN(h, m[off:], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EMSGSIZE):
				if gerr := growSndbuf(h); gerr != nil {
					return fmt.Errorf("send %d bytes: %w (%w)", len(m)-off, err, gerr)
				}
				continue
			case err != nil:
				return fmt.Errorf("send %d bytes: %w", len(m)-off, err)
			}
			off += n
			if typ != unix.SOCK_STREAM || off >= len(m) {
				break
			}
		}
	}
	return nil
}

// unixMaxSndbuf bounds how far fillUnixQueue grows a send buffer.
const unixMaxSndbuf = 1 << 30

// growSndbuf doubles h's send buffer, beyond net.core.wmem_max if gocr
// may (SO_SNDBUFFORCE needs CAP_NET_ADMIN).
func growSndbuf(h int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return err
	}
	if cur >= unixMaxSndbuf {
		return fmt.Errorf("send buffer at %d bytes", cur)
	}
	// The kernel doubles what it is given (man 7 socket).
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cur); err != nil {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF, cur); err != nil {
			return err
		}
	}
	if now, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil || now <= cur {
		return fmt.Errorf("send buffer stays at %d bytes", cur)
	}
	return nil
}

// setUnixOptions gives a new socket the dumped options, each checked by
// reading it back.
func setUnixOptions(h int, u *gocrpb.UnixSocketFd) error {
	for _, b := range []struct {
		name       string
		opt, force int
		want       int32
	}{
		{"SO_SNDBUF", unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, u.GetSndbuf()},
		{"SO_RCVBUF", unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, u.GetRcvbuf()},
	} {
		if err := setBufferSize(h, b.name, b.opt, b.force, int(b.want)); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		name string
		opt  int
		ns   int64
	}{
		{"SO_RCVTIMEO", unix.SO_RCVTIMEO, u.GetRcvtimeoNs()},
		{"SO_SNDTIMEO", unix.SO_SNDTIMEO, u.GetSndtimeoNs()},
	} {
		tv := unix.NsecToTimeval(t.ns)
		if err := unix.SetsockoptTimeval(h, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("setsockopt %s %d ns: %w", t.name, t.ns, err)
		}
		// The kernel keeps it in jiffies: what it gave at the dump
		// comes back the same.
		if got, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, t.opt); err != nil || got.Nano() != t.ns {
			return fmt.Errorf("setsockopt %s %d ns: reads back as %v (%v)", t.name, t.ns, got, err)
		}
	}
	for _, o := range []struct {
		name string
		opt  int
		v    int
	}{
		{"SO_PASSCRED", unix.SO_PASSCRED, boolInt(u.GetPasscred())},
		{"SO_PASSSEC", unix.SO_PASSSEC, boolInt(u.GetPasssec())},
		{"SO_PASSPIDFD", unix.SO_PASSPIDFD, boolInt(u.GetPasspidfd())},
		{"SO_PEEK_OFF", unix.SO_PEEK_OFF, int(u.GetPeekOff())},
	} {
		if err := setIntOption(h, o.name, o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setIntOption sets an int option unless it has the value already.
func setIntOption(h int, name string, opt, v int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err == nil && cur == v {
		return nil
	}
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, opt, v); err != nil {
		return fmt.Errorf("setsockopt %s %d: %w", name, v, err)
	}
	if got, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt); err != nil || got != v {
		return fmt.Errorf("setsockopt %s %d: reads back as %d (%v)", name, v, got, err)
	}
	return nil
}

// setBufferSize sets SO_SNDBUF or SO_RCVBUF so that getsockopt gives want:
// the kernel keeps twice what it is given (man 7 socket), and at most
// twice net.core.wmem_max or rmem_max, unless set with the FORCE option
// (CAP_NET_ADMIN).
func setBufferSize(h int, name string, opt, force, want int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err == nil && cur == want {
		return nil
	}
	var got int
	for _, o := range []int{opt, force} {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, o, want/2); err != nil {
			continue
		}
		if got, err = unix.GetsockoptInt(h, unix.SOL_SOCKET, opt); err == nil && got == want {
			return nil
		}
	}
	return fmt.Errorf("setsockopt %s: %d bytes, want %d", name, got, want)
}

// socketStatusFlags are the status flags F_SETFL sets on a socket (fs/fcntl.c
// SETFL_MASK: O_DIRECT needs direct I/O sockets lack, O_ASYNC is refused at
// dump).
const socketStatusFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_NOATIME

// setSocketStatusFlags gives the socket's open file description exactly
// the dumped status flags.
func setSocketStatusFlags(h int, flags uint32) error {
	want := int(flags) & socketStatusFlags
	if _, err := unix.FcntlInt(uintptr(h), unix.F_SETFL, want); err != nil {
		return fmt.Errorf("set status flags %#o: %w", want, err)
	}
	got, err := unix.FcntlInt(uintptr(h), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("read status flags back: %w", err)
	}
	if uint32(got) != flags {
		return fmt.Errorf("status flags %#o, want %#o", got, flags)
	}
	return nil
}
