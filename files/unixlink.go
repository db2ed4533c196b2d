//go:build linux

package files

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// unixAll is the one LinkKey of every unix socket: names and connections
// join any socket of the dump to any other, so Link looks at them all at
// once.
type unixAll struct{}

// LinkKey puts every unix socket in one group for Link.
func (unixSocketKind) LinkKey(*gocrpb.Fd) any { return unixAll{} }

// unixRef is one unix socket of the dump: its fds, the first in dump
// order first, and its state as that fd recorded it.
type unixRef struct {
	refs []Ref
	u    *gocrpb.UnixSocketFd
}

func (x *unixRef) errorf(format string, a ...any) error {
	r := x.refs[0]
	return fmt.Errorf("pid %d fd %d (%s): %w", r.Pid, r.Fd.Fd, r.Fd.Description, fmt.Errorf(format, a...))
}

// set gives every fd of the socket what f sets.
func (x *unixRef) set(f func(u *gocrpb.UnixSocketFd)) {
	for _, r := range x.refs {
		f(r.Fd.GetUnixSocket())
	}
}

func (x *unixRef) typ() int { return socketTypes[x.u.GetType()] }

func (x *unixRef) named() bool { return len(x.u.GetName()) > 0 }

// errOutside is a socket connected to one outside the dump: refused, but
// for stdio, which the restore gives.
var errOutside = errors.New("the other end of this socket is outside the dumped processes")

// Link resolves how each unix socket is connected — to a socket in the
// dump, to one waiting to be accepted by a listener in the dump, to a
// closed one, or outside — and saves what waits to be read at each on
// its first fd in dump order, with each datagram's sender.
func (unixSocketKind) Link(refs []Ref, opts LinkOptions) error {
	socks := map[uint64]*unixRef{}
	var order []*unixRef
	for _, r := range refs {
		u := r.Fd.GetUnixSocket()
		if x := socks[u.GetIno()]; x != nil {
			x.refs = append(x.refs, r)
			continue
		}
		x := &unixRef{refs: []Ref{r}, u: u}
		socks[u.GetIno()] = x
		order = append(order, x)
	}
	// The sockets that connected to a listener in the dump, not yet
	// accepted, by inode: what a listener's connections show (net/unix/
	// diag.c sk_diag_dump_icons names each by its client, the peer of
	// the socket accept(2) would return, which has no inode yet).
	listenerOf := map[uint64]*unixRef{}
	for _, x := range order {
		for _, e := range x.u.GetPending() {
			listenerOf[e] = x
		}
	}
	ext := map[string]bool{}
	for _, n := range opts.ExternalUnix {
		if strings.HasPrefix(n, "@") {
			n = "\x00" + n[1:]
		}
		ext[n] = true
	}
	var kept []*unixRef
	for _, x := range order {
		err := resolveUnixPeer(x, socks, listenerOf, ext)
		if errors.Is(err, errOutside) {
			if r, ok := lockedStdio(x.refs); ok {
				// Its stdio would be given by --inherit-fd, but
				// the lock would not come with it.
				return fmt.Errorf("pid %d fd %d (%s) holds a lock on a socket from outside the dumped processes, which the restore replaces", r.Pid, r.Fd.Fd, r.Fd.Description)
			}
		}
		if errors.Is(err, errOutside) && allStdio(x.refs) {
			// A job's stdio on a logger's or a supervisor's
			// socket: the restore gives the socket --inherit-fd
			// names (inherit.go).
			for _, r := range x.refs {
				setInherit(r.Fd, unix.S_IFSOCK, true)
			}
			delete(socks, x.u.GetIno())
			continue
		}
		if err != nil {
			return err
		}
		kept = append(kept, x)
	}
	for _, x := range kept {
		if err := checkUnixPending(x, socks, ext); err != nil {
			return err
		}
		if err := checkUnixPair(x, socks); err != nil {
			return err
		}
		if err := linkPeerCred(x, opts); err != nil {
			return err
		}
	}
	for _, x := range kept {
		if x.u.GetListening() || (x.typ() != unix.SOCK_DGRAM && x.u.GetConnection() == gocrpb.UnixSocketFd_NOT_CONNECTED) {
			// A listener's queue holds connections, not data; a
			// stream or seqpacket socket never connected holds
			// nothing (and recvmsg(2) fails with EINVAL).
			continue
		}
		r := x.refs[0]
		msgs, label, err := peekUnixQueue(r.Pid, int(r.Fd.Fd), x.typ())
		if err != nil {
			return x.errorf("%v", err)
		}
		received, err := unixSenders(x, socks, msgs)
		if err != nil {
			return x.errorf("%v", err)
		}
		r.Fd.GetUnixSocket().Received = received
		r.Fd.GetUnixSocket().ReceivedLabel = label
	}
	return nil
}

// lockedStdio returns a ref holding a lock when every one of refs is
// stdio: joined outside the dump but for its lock.
func lockedStdio(refs []Ref) (Ref, bool) {
	var locked *Ref
	for i, r := range refs {
		if int(r.Fd.Fd) > unix.Stderr {
			return Ref{}, false
		}
		if len(r.Fd.Locks) > 0 && locked == nil {
			locked = &refs[i]
		}
	}
	if locked == nil {
		return Ref{}, false
	}
	return *locked, true
}

func allStdio(refs []Ref) bool {
	for _, r := range refs {
		if int(r.Fd.Fd) > unix.Stderr || len(r.Fd.Locks) > 0 {
			return false
		}
	}
	return true
}

// resolveUnixPeer says how x is connected. sock_diag named its peer by
// inode, 0 once that socket is closed (net/unix/diag.c
// sk_diag_dump_peer: sock_i_ino of an orphaned socket).
func resolveUnixPeer(x *unixRef, socks, listenerOf map[uint64]*unixRef, ext map[string]bool) error {
	u := x.u
	if u.GetConnection() != gocrpb.UnixSocketFd_PEER_DUMPED {
		return nil
	}
	peer := u.GetPeer()
	switch l := listenerOf[u.GetIno()]; {
	case l != nil:
		x.set(func(u *gocrpb.UnixSocketFd) {
			u.Connection, u.Listener = gocrpb.UnixSocketFd_PEER_PENDING, l.u.GetIno()
		})
		return nil
	case peer == 0 && x.typ() != unix.SOCK_DGRAM && u.GetShutdown() != proc.ShutdownRead|proc.ShutdownWrite:
		// A stream whose peer closed is shut both ways by it
		// (net/unix/af_unix.c unix_release_sock); one that is not
		// waits on a listener outside the dump, whose socket to
		// accept has no inode yet.
		return pendingOutside(x, ext)
	case peer == 0:
		x.set(func(u *gocrpb.UnixSocketFd) { u.Connection = gocrpb.UnixSocketFd_PEER_GONE })
		return nil
	case socks[peer] != nil:
		return nil
	}
	d, err := proc.ReadUnixSocket(peer)
	if err != nil {
		return x.errorf("its peer, socket inode %d outside the dumped processes: %v", peer, err)
	}
	if x.typ() == unix.SOCK_DGRAM {
		if !d.Bound {
			return x.errorf("%w (an unnamed socket, inode %d)", errOutside, peer)
		}
		// Connected again by name, as a logger's socket is.
		x.set(func(u *gocrpb.UnixSocketFd) {
			u.Connection, u.PeerName = gocrpb.UnixSocketFd_PEER_NAMED, []byte(d.Name)
		})
		return nil
	}
	if ext[string(u.GetName())] || (d.Bound && ext[d.Name]) {
		x.set(restoredExternal)
		return nil
	}
	what := fmt.Sprintf("socket inode %d", peer)
	hint := ""
	switch {
	case d.Bound:
		what += " " + unixName(d.Name)
		hint = "; --external-unix " + unixFlagName(d.Name) + " dumps it, restored with its peer gone"
	case x.named():
		hint = "; --external-unix " + unixFlagName(string(u.GetName())) + " dumps it, restored with its peer gone"
	}
	return x.errorf("%w (%s)%s", errOutside, what, hint)
}

// pendingOutside is a stream connected to a listener outside the dump
// that has not accepted it yet: refused, but named external, restored
// with its peer gone. getpeername(2) names the listener.
func pendingOutside(x *unixRef, ext map[string]bool) error {
	r := x.refs[0]
	h, err := takeFd(r.Pid, int(r.Fd.Fd))
	if err != nil {
		return x.errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	sa, err := unix.Getpeername(h)
	if err != nil {
		return x.errorf("getpeername: %w", err)
	}
	name := sockaddrName(sa)
	if ext[string(x.u.GetName())] || (name != "" && ext[name]) {
		x.set(restoredExternal)
		return nil
	}
	return x.errorf("%w (a listener on %s, which has not accepted it yet); --external-unix %s dumps it, restored with its peer gone",
		errOutside, unixName(name), unixFlagName(name))
}

// restoredExternal marks a socket connected outside the dump and named
// external: restored with its peer gone, and, as its peer credentials
// name a process outside the dump, with those of the restore (no
// credentials in the image).
func restoredExternal(u *gocrpb.UnixSocketFd) {
	u.Connection = gocrpb.UnixSocketFd_PEER_GONE
	u.PeerCred = nil
}

// unixFlagName is a name as --external-unix takes it.
func unixFlagName(name string) string {
	if strings.HasPrefix(name, "\x00") {
		return "@" + name[1:]
	}
	return name
}

// checkUnixPending checks the connections a listening socket has not
// accepted yet: each is made again by connecting its client, so it must
// have sent nothing (the socket accept(2) would return cannot be read
// without accepting it; CRIU refuses it too), and one from outside the
// dump is restored only when named external, with its peer gone.
func checkUnixPending(x *unixRef, socks map[uint64]*unixRef, ext map[string]bool) error {
	for _, c := range x.u.GetPending() {
		d, err := proc.ReadUnixSocket(c)
		if err != nil {
			return x.errorf("a connection not yet accepted (client socket inode %d): %v", c, err)
		}
		// What it sent is memory it holds (net/unix/diag.c
		// sk_diag_show_rqlen: unix_outq_len).
		if d.SendQueue > 0 {
			return x.errorf("a connection not yet accepted holds %d bytes of data, which cannot be read without accepting it", d.SendQueue)
		}
		if socks[c] != nil || ext[string(x.u.GetName())] {
			continue
		}
		return x.errorf("a connection not yet accepted from socket inode %d, outside the dumped processes; --external-unix %s dumps it, restored with its peer gone",
			c, unixFlagName(string(x.u.GetName())))
	}
	return nil
}

// checkUnixPair checks a socket connected to one in the dump: a stream or
// seqpacket one's peer is connected to it, of its type, with shutdown
// bits that shutdown(2) can make on both.
func checkUnixPair(x *unixRef, socks map[uint64]*unixRef) error {
	u := x.u
	if u.GetConnection() != gocrpb.UnixSocketFd_PEER_DUMPED {
		return nil
	}
	p := socks[u.GetPeer()]
	if p == nil {
		return x.errorf("its peer, socket inode %d, is stdio given by the restore", u.GetPeer())
	}
	v := p.u
	if u.GetType() != v.GetType() {
		return x.errorf("a %s socket connected to a %s one (pid %d fd %d)", u.GetType(), v.GetType(), p.refs[0].Pid, p.refs[0].Fd.Fd)
	}
	if x.typ() == unix.SOCK_DGRAM {
		if v.GetPeer() != u.GetIno() && !p.named() {
			return x.errorf("connected to an unnamed socket (pid %d fd %d) connected to another", p.refs[0].Pid, p.refs[0].Fd.Fd)
		}
		return nil
	}
	if v.GetPeer() != u.GetIno() {
		return x.errorf("its peer (pid %d fd %d) is connected to another socket", p.refs[0].Pid, p.refs[0].Fd.Fd)
	}
	if mirrorShutdown(u.GetShutdown())&^v.GetShutdown() != 0 || mirrorShutdown(v.GetShutdown())&^u.GetShutdown() != 0 {
		// shutdown(2) of a stream or seqpacket end shuts the other
		// direction of its peer too (net/unix/af_unix.c
		// unix_shutdown): any other state has no shutdown calls
		// that make it again.
		return x.errorf("shutdown state %d, its peer's %d, which shutdown(2) cannot make", u.GetShutdown(), v.GetShutdown())
	}
	return nil
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

// unixSenders names the sender of each message waiting at x by its inode
// in the dump, and checks the restore can send each again from a socket
// of the same name (recvmsg(2) names the sender, man 7 unix) in its
// place in the queue: a stream's and seqpacket's all come from its peer;
// a datagram socket's from its peer, from an unnamed socket, or from a
// named one in the dump. A socket connected to another takes datagrams
// from that one only (net/unix/af_unix.c unix_may_send), so the others
// were sent before it connected, and the restore sends them before it
// connects it again: they must come first in the queue.
func unixSenders(x *unixRef, socks map[uint64]*unixRef, msgs []unixMessage) ([]*gocrpb.UnixMessage, error) {
	var out []*gocrpb.UnixMessage
	byName := map[string]uint64{}
	for ino, s := range socks {
		if s.named() && s.typ() == unix.SOCK_DGRAM {
			byName[string(s.u.GetName())] = ino
		}
	}
	u := x.u
	var peer *unixRef
	if u.GetConnection() == gocrpb.UnixSocketFd_PEER_DUMPED {
		peer = socks[u.GetPeer()]
	}
	mutual := peer != nil && peer.u.GetPeer() == u.GetIno()
	fromPeer := false
	for i, m := range msgs {
		um := &gocrpb.UnixMessage{Data: m.data}
		out = append(out, um)
		if x.typ() != unix.SOCK_DGRAM {
			continue
		}
		if m.from != "" {
			ino, ok := byName[m.from]
			if !ok {
				return nil, fmt.Errorf("datagram %d of its queue is from %s, a socket outside the dumped processes", i, unixName(m.from))
			}
			um.Sender = ino
		}
		switch {
		case mutual:
			if um.Sender != peer.u.GetIno() && !(um.Sender == 0 && !peer.named()) {
				return nil, fmt.Errorf("datagram %d of its queue is not from its peer", i)
			}
		case u.GetConnection() == gocrpb.UnixSocketFd_PEER_GONE && !x.named():
			if um.Sender != 0 {
				return nil, fmt.Errorf("datagram %d of its queue is from %s, though its peer is gone", i, unixName(m.from))
			}
		case !x.named():
			return nil, fmt.Errorf("datagram %d of its queue came to it unnamed, from no peer of its", i)
		case peer != nil && um.Sender == peer.u.GetIno():
			fromPeer = true
		case fromPeer:
			return nil, fmt.Errorf("datagram %d of its queue, from another socket, follows one from its peer", i)
		}
	}
	return out, nil
}
