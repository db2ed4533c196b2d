//go:build linux

package files

import (
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// Every unix socket of the dump is made again at once, in gocr, when the
// first is opened: names and connections join sockets of any process, and
// the steps must come in one order for all of them:
//
//  1. a stale socket file at a path is removed, only if it is the file
//     the dumped socket bound (the same device and inode);
//  2. each socket is made: a socketpair for a pair without names, for a
//     datagram socket connected both ways, and for one whose peer is gone
//     (the other end closed at the end); socket(2) for the rest, except
//     the accepted ends of connections, which accept(2) makes;
//  3. each socket that bound its name binds it again, and a listening
//     one listens, its backlog raised until every connection is in;
//  4. each connection with a name is made by connecting to a listener on
//     the name of its accepted end (the dumped listener, or one made for
//     the moment), and accepting: both ends get their names, as
//     getsockname(2) and getpeername(2) show them; then what was queued
//     at each end is sent by the other;
//  5. each listener's connections not yet accepted are made by
//     connecting its clients, oldest first, and it gets its backlog;
//  6. datagrams are sent again from sockets of their senders' names:
//     those from others before each socket connects again (to its peer
//     by name, or to a named one outside the dump), those from its peer
//     after;
//  7. each path's socket file gets its owner and mode, or is removed if
//     it was at the dump.
//
// Options, status flags and shutdown states are set as each socket is
// opened, after all of this: SO_PASSCRED would put gocr's credentials on
// each message sent, a shutdown would refuse them.
//
// socketpair(2), listen(2) and a stream's connect(2) record peer
// credentials: each is made, where the dump recorded some, in a process
// with the dumped pid and ids (unixpeercred.go), a listener listening
// again with its client's before each connection, which copies them; a
// datagram socket connected without any recorded is connected by name,
// not made by socketpair(2). Every socket's are then read back.

// unixSock is a unix socket being made again.
type unixSock struct {
	u     *gocrpb.UnixSocketFd // its first fd's state
	desc  string
	conn  gocrpb.UnixSocketFd_Connection
	recv  []*gocrpb.UnixMessage // what waits to be read at it
	peer  *unixSock             // PEER_DUMPED
	h     int                   // the socket, -1 until made
	src   int32
	gone  int // PEER_GONE: the peer to close once it sent, or -1
	given bool
}

func (x *unixSock) typ() int     { return socketTypes[x.u.GetType()] }
func (x *unixSock) named() bool  { return len(x.u.GetName()) > 0 }
func (x *unixSock) isPath() bool { return x.named() && x.u.GetName()[0] != 0 }
func (x *unixSock) stream() bool { return x.typ() != unix.SOCK_DGRAM }
func (x *unixSock) name() string { return string(x.u.GetName()) }
func (x *unixSock) mutual() bool {
	return x.peer != nil && x.peer.u.GetPeer() == x.u.GetIno() && !x.byName()
}
func (x *unixSock) addr() *unix.SockaddrUnix { return &unix.SockaddrUnix{Name: x.name()} }

func (x *unixSock) errorf(err error) error {
	return fmt.Errorf("unix socket inode %d (%s): %w", x.u.GetIno(), x.desc, err)
}

// unixSockets are the unix sockets of a restore.
type unixSockets struct {
	s     *Sources
	socks map[uint64]*unixSock
	order []*unixSock
	// temps are sockets made for the moment: closed once every socket
	// is made.
	temps     []int
	listeners map[string]int // a listener by name, for connections to accept
	unnamed   int            // an unnamed datagram socket to send from, or -1
}

// unixSetKey is the key of the one unixSockets of a restore.
type unixSetKey struct{}

func makeUnixSockets(s *Sources) (*unixSockets, error) {
	g := &unixSockets{s: s, socks: map[uint64]*unixSock{}, listeners: map[string]int{}, unnamed: -1}
	defer g.closeTemps()
	if err := g.collect(); err != nil {
		return nil, err
	}
	for _, step := range []func() error{g.clearPaths, g.create, g.bind, g.connectStreams, g.connectPending, g.datagramsGone, g.datagrams, g.checkPeerCreds, g.setFiles} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *unixSockets) closeTemps() {
	for _, h := range g.temps {
		unix.Close(h)
	}
	g.temps = nil
}

// collect finds every unix socket in the tables, with its first fd's
// state. An image written before sockets had names holds socketpairs
// only, each pair's queues on its first fd.
func (g *unixSockets) collect() error {
	for _, t := range g.s.tables {
		for _, fd := range t.Fds {
			u := fd.GetUnixSocket()
			if u == nil || fd.SharedWith >= 0 {
				continue
			}
			if g.socks[u.GetIno()] != nil {
				return fmt.Errorf("unix socket inode %d: two open file descriptions of one socket in the image", u.GetIno())
			}
			if _, ok := socketTypes[u.GetType()]; !ok {
				return fmt.Errorf("unix socket inode %d: socket type %s", u.GetIno(), u.GetType())
			}
			x := &unixSock{u: u, desc: fd.Description, conn: u.GetConnection(), recv: u.GetReceived(), h: -1, gone: -1}
			if err := checkReceivedLabel(u.GetReceivedLabel()); err != nil {
				return x.errorf(err)
			}
			if x.conn == gocrpb.UnixSocketFd_CONNECTION_UNSET {
				x.conn = gocrpb.UnixSocketFd_PEER_DUMPED
			}
			g.socks[u.GetIno()] = x
			g.order = append(g.order, x)
		}
	}
	for _, x := range g.order {
		if x.conn == gocrpb.UnixSocketFd_PEER_DUMPED {
			if x.peer = g.socks[x.u.GetPeer()]; x.peer == nil {
				return x.errorf(fmt.Errorf("its peer, socket inode %d, is not in the image", x.u.GetPeer()))
			}
		}
		if q := x.u.GetQueues(); q != nil && x.peer != nil {
			x.recv = fromPeer(q.GetHere())
			x.peer.recv = fromPeer(q.GetPeer())
		}
	}
	return nil
}

func fromPeer(msgs [][]byte) []*gocrpb.UnixMessage {
	var out []*gocrpb.UnixMessage
	for _, m := range msgs {
		out = append(out, &gocrpb.UnixMessage{Data: m})
	}
	return out
}

// pathFile is the socket file recorded for a path name.
func (g *unixSockets) pathFile(name string) *gocrpb.UnixSocketFile {
	for _, x := range g.order {
		if x.name() == name && x.u.GetFile() != nil {
			return x.u.GetFile()
		}
	}
	return &gocrpb.UnixSocketFile{}
}

func (g *unixSockets) pathNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range g.order {
		if x.isPath() && !seen[x.name()] {
			seen[x.name()] = true
			out = append(out, x.name())
		}
	}
	return out
}

// clearPaths removes what is left at each path of the dumped sockets
// themselves: a socket file outlives its socket (man 7 unix), and bind(2)
// fails on any file there. Anything else at a path fails the restore
// before any is removed.
func (g *unixSockets) clearPaths() error {
	var stale []string
	for _, name := range g.pathNames() {
		var st unix.Stat_t
		err := unix.Lstat(name, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("unix socket path %s: %w", unixName(name), err)
		}
		f := g.pathFile(name)
		if !f.GetPresent() || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Dev != f.GetDev() || st.Ino != f.GetIno() {
			return fmt.Errorf("unix socket path %s: a file is there that is not the dumped socket's (remove it to restore)", unixName(name))
		}
		if err := checkNoSocketAt(name); err != nil {
			return err
		}
		stale = append(stale, name)
	}
	for _, name := range stale {
		if err := unix.Unlink(name); err != nil {
			return fmt.Errorf("remove the stale socket file %s: %w", unixName(name), err)
		}
	}
	return nil
}

// checkNoSocketAt checks that no socket is bound to the socket file at
// name any more (the dumped process still running, with --leave-running):
// connect(2) then fails with ECONNREFUSED, whatever the type asked; a
// live socket of another type fails it with EPROTOTYPE, one of this type
// lets a datagram socket connect (net/unix/af_unix.c unix_find_bsd).
func checkNoSocketAt(name string) error {
	h, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("a socket to probe %s: %w", unixName(name), err)
	}
	defer unix.Close(h)
	err = unix.Connect(h, &unix.SockaddrUnix{Name: name})
	if errors.Is(err, unix.ECONNREFUSED) {
		return nil
	}
	return fmt.Errorf("unix socket path %s: a live socket is bound to it (connect: %v)", unixName(name), err)
}

// add makes h a source of x.
func (g *unixSockets) add(x *unixSock, h int) {
	x.h = h
	x.src = g.s.AddFd(h, x.desc)
}

func (g *unixSockets) temp(typ int) (int, error) {
	h, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	g.temps = append(g.temps, h)
	return h, nil
}

// acceptedEnd is the end of a connection with a name that accept(2)
// gives: the one named as a dumped listener is, else the named one, else
// (both named: a client that bound before it connected) the first.
func (g *unixSockets) acceptedEnd(x *unixSock) *unixSock {
	p := x.peer
	switch {
	case p == nil || !p.named():
		return x
	case !x.named():
		return p
	case g.listener(x.name(), x.typ()) != nil:
		return x
	case g.listener(p.name(), p.typ()) != nil:
		return p
	}
	for _, y := range g.order {
		if y == x || y == p {
			return y
		}
	}
	return x
}

// listener is the dumped listening socket bound to name, or nil.
func (g *unixSockets) listener(name string, typ int) *unixSock {
	for _, y := range g.order {
		if y.u.GetListening() && y.name() == name && y.typ() == typ {
			return y
		}
	}
	return nil
}

// accepted tells whether accept(2) makes x (step 4), which then has its
// listener's name rather than binding it.
func (g *unixSockets) accepted(x *unixSock) bool {
	if !x.stream() || !x.named() {
		return false
	}
	switch x.conn {
	case gocrpb.UnixSocketFd_PEER_GONE:
		return true
	case gocrpb.UnixSocketFd_PEER_DUMPED:
		return g.acceptedEnd(x) == x
	}
	return false
}

func (g *unixSockets) create() error {
	for _, x := range g.order {
		if x.h >= 0 || g.accepted(x) {
			continue
		}
		pair := false
		switch x.conn {
		case gocrpb.UnixSocketFd_PEER_DUMPED:
			pair = x.mutual() && !(x.stream() && (x.named() || x.peer.named()))
		case gocrpb.UnixSocketFd_PEER_GONE:
			// A stream's has no name: accepted ones were skipped.
			pair = !x.goneByName()
		}
		if !pair {
			h, err := unix.Socket(unix.AF_UNIX, x.typ()|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return x.errorf(fmt.Errorf("socket: %w", err))
			}
			g.add(x, h)
			continue
		}
		sv, err := g.socketpair(x.u.GetPeerCred(), x.typ())
		if err != nil {
			return x.errorf(fmt.Errorf("socketpair: %w", err))
		}
		g.add(x, sv[0])
		if x.conn == gocrpb.UnixSocketFd_PEER_GONE {
			x.gone = sv[1]
			g.temps = append(g.temps, sv[1])
		} else {
			g.add(x.peer, sv[1])
		}
	}
	return nil
}

// bindName binds h to name, and has a failed restore remove the file it
// makes at a path.
func (g *unixSockets) bindName(h int, name string) error {
	if err := unix.Bind(h, &unix.SockaddrUnix{Name: name}); err != nil {
		return fmt.Errorf("bind to %s: %w", unixName(name), err)
	}
	if name[0] == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(name, &st); err != nil {
		return fmt.Errorf("bind to %s: %w", unixName(name), err)
	}
	g.s.OnUndo(func() {
		var now unix.Stat_t
		if unix.Lstat(name, &now) == nil && now.Dev == st.Dev && now.Ino == st.Ino {
			unix.Unlink(name)
		}
	})
	return nil
}

// bind binds each socket that bound its own name, and has each listening
// one listen with the most backlog the kernel takes (net/socket.c
// __sys_listen caps it at net.core.somaxconn) until its connections are
// in.
func (g *unixSockets) bind() error {
	for _, x := range g.order {
		if !x.named() || g.accepted(x) {
			continue
		}
		if err := g.bindName(x.h, x.name()); err != nil {
			return x.errorf(err)
		}
		if x.u.GetListening() {
			if err := g.listen(x.u.GetPeerCred(), x.h, math.MaxInt32); err != nil {
				return x.errorf(fmt.Errorf("listen: %w", err))
			}
		}
	}
	return nil
}
