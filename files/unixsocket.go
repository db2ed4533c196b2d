//go:build linux

package files

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// unixSocketKind is a unix socket — stream, datagram or seqpacket — as
// CRIU restores them: unnamed or bound to a path or an abstract name,
// listening (with the connections not yet accepted), connected to a
// socket in the dump (a socketpair, or a connection accepted from a
// listener), to a closed one, or, for a datagram socket, to a named one
// outside the dump; with what waits in its queue, its shut directions,
// options and status flags. Each socket is dumped on its own (Dump), its
// connection and queue once every process is collected (Link,
// unixlink.go), and every unix socket of the dump is made again at once,
// in gocr, in the order names and connections need (unixrestore.go).
// Refused: fds or credentials in flight, an out-of-band byte, a stream
// connected outside the dump unless named external (--external-unix), a
// connection not yet accepted that holds data, options gocr does not
// restore. Sockets of other families match no kind, and Collect refuses
// them naming their family (socket.go).
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
		// gives the socket --inherit-fd names (inherit.go).
		setInherit(fd, e.Type(), true)
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
	u := &gocrpb.UnixSocketFd{Type: typ, Ino: e.Stat.Ino, Peer: d.Peer, Shutdown: uint32(d.Shutdown),
		Connection: gocrpb.UnixSocketFd_NOT_CONNECTED}
	if err := readUnixState(d, u); err != nil {
		return err
	}
	if err := readUnixOptions(h, d.Type, u); err != nil {
		return err
	}
	if err := readUnixError(h, u); err != nil {
		return err
	}
	if u.Filter, err = readSocketFilter(h); err != nil {
		return err
	}
	if u.PeerCred, err = readPeerCred(h); err != nil {
		return err
	}
	fd.Kind = &gocrpb.Fd_UnixSocket{UnixSocket: u}
	return nil
}

// readUnixState records what sock_diag says of the socket's name,
// listening and connection; Link resolves the connection.
func readUnixState(d proc.UnixSocket, u *gocrpb.UnixSocketFd) error {
	if d.Bound {
		u.Name = []byte(d.Name)
		if !strings.HasPrefix(d.Name, "\x00") {
			if !filepath.IsAbs(d.Name) {
				// Relative to the directory it was bound in,
				// which nothing shows any more.
				return fmt.Errorf("a socket bound to the relative path %s (not supported)", unixName(d.Name))
			}
			f, err := readUnixFile(d)
			if err != nil {
				return err
			}
			u.File = f
		}
	}
	switch {
	case d.State == proc.UnixListen:
		u.Listening = true
		// A listening socket's write queue length is its backlog
		// (net/unix/diag.c sk_diag_show_rqlen).
		u.Backlog = int32(d.SendQueue)
		for _, ino := range d.Pending {
			if ino == 0 {
				// The connecting socket is closed already:
				// whether it sent anything cannot be told.
				return errors.New("a connection not yet accepted whose socket is closed (not supported)")
			}
		}
		u.Pending = d.Pending
	case d.HasPeer:
		u.Connection = gocrpb.UnixSocketFd_PEER_DUMPED // for Link to resolve
	case d.State == proc.UnixEstablished && d.Type != unix.SOCK_DGRAM:
		return errors.New("a connected socket without a peer (not supported)")
	}
	return nil
}

// readUnixFile reads the socket file of a socket bound to a path: whether
// the path still names the file bind(2) made (sock_diag's UNIX_DIAG_VFS;
// it may have been removed or replaced since), and its owner and mode.
func readUnixFile(d proc.UnixSocket) (*gocrpb.UnixSocketFile, error) {
	var st unix.Stat_t
	err := unix.Lstat(d.Name, &st)
	if errors.Is(err, unix.ENOENT) {
		return &gocrpb.UnixSocketFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("its socket file %s: %w", unixName(d.Name), err)
	}
	if !d.HasFile || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Ino != uint64(d.FileIno) || !d.FileDevMatches(st.Dev) {
		return nil, fmt.Errorf("bound to %s, which now names another file (not supported)", unixName(d.Name))
	}
	return &gocrpb.UnixSocketFile{Present: true, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Dev: st.Dev, Ino: st.Ino}, nil
}

// unixName is a socket's name as ss(8) shows it: a path, or an abstract
// name with '@' for its leading NUL byte.
func unixName(name string) string {
	if strings.HasPrefix(name, "\x00") {
		return strconv.Quote("@" + name[1:])
	}
	return strconv.Quote(name)
}

// Open gives the socket its source: every unix socket of the dump is made
// when the first is opened (unixrestore.go); each then gets its options,
// status flags and shutdown state as it is opened, once every queue is in.
func (unixSocketKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	u := fd.GetUnixSocket()
	g, err := once(s, unixSetKey{}, func() (*unixSockets, error) { return makeUnixSockets(s) })
	if err != nil {
		return 0, err
	}
	x := g.socks[u.GetIno()]
	if x == nil || x.h < 0 {
		return 0, fmt.Errorf("socket inode %d was not made", u.GetIno())
	}
	if x.given {
		return 0, errors.New("two open file descriptions of one socket in the image")
	}
	x.given = true
	h := x.h
	if err := setUnixOptions(h, u); err != nil {
		return 0, err
	}
	if err := checkUnixError(h, u); err != nil {
		return 0, err
	}
	// After every socket's queue is filled (makeUnixSockets): a
	// datagram sent to the socket again would pass the filter again.
	if err := setSocketFilter(h, u.GetFilter()); err != nil {
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
	return x.src, nil
}

// socketTypes maps the image's socket types to socket(2)'s.
var socketTypes = map[gocrpb.UnixSocketFd_Type]int{
	gocrpb.UnixSocketFd_STREAM:    unix.SOCK_STREAM,
	gocrpb.UnixSocketFd_DGRAM:     unix.SOCK_DGRAM,
	gocrpb.UnixSocketFd_SEQPACKET: unix.SOCK_SEQPACKET,
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
