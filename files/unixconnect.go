//go:build linux

package files

import (
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// The steps of a restore of unix sockets that connect them and fill
// their queues (4 to 7, unixrestore.go).

// listenOn is a listening socket on name to accept a connection from:
// the dumped one, or one made for the moment (its file, at a path, stays
// as a socket's file stays once it is closed; setFiles deals with it).
func (g *unixSockets) listenOn(name string, typ int) (int, error) {
	if l := g.listener(name, typ); l != nil {
		return l.h, nil
	}
	if h, ok := g.listeners[name]; ok {
		return h, nil
	}
	h, err := g.temp(typ)
	if err != nil {
		return -1, err
	}
	if err := g.bindName(h, name); err != nil {
		return -1, err
	}
	if err := unix.Listen(h, math.MaxInt32); err != nil {
		return -1, fmt.Errorf("listen on %s: %w", unixName(name), err)
	}
	g.listeners[name] = h
	return h, nil
}

// connectStreams makes the stream and seqpacket connections that have a
// name (step 4), and fills every connection's queues.
func (g *unixSockets) connectStreams() error {
	for _, x := range g.order {
		if !x.stream() || x.h >= 0 {
			continue
		}
		// x is an accepted end: its client is its dumped peer, or
		// for a peer that is gone a socket closed once it sent.
		client := -1
		if x.peer != nil {
			client = x.peer.h
		} else {
			h, err := g.temp(x.typ())
			if err != nil {
				return x.errorf(err)
			}
			client, x.gone = h, h
		}
		l, err := g.listenOn(x.name(), x.typ())
		if err != nil {
			return x.errorf(err)
		}
		// The client copies the listener's peer credentials, and the
		// socket accept(2) gives records the connecting process's.
		if x.peer != nil && recorded(x.peer.u.GetPeerCred()) {
			if err := g.listen(x.peer.u.GetPeerCred(), l, math.MaxInt32); err != nil {
				return x.errorf(fmt.Errorf("listen on %s: %w", unixName(x.name()), err))
			}
		}
		if err := g.connect(x.u.GetPeerCred(), client, x.name()); err != nil {
			return x.errorf(fmt.Errorf("connect to %s: %w", unixName(x.name()), err))
		}
		h, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			return x.errorf(fmt.Errorf("accept on %s: %w", unixName(x.name()), err))
		}
		g.add(x, h)
	}
	for _, x := range g.order {
		if !x.stream() {
			continue
		}
		from := x.gone
		if x.peer != nil {
			from = x.peer.h
		}
		if err := g.fill(x, from, nil, x.recv); err != nil {
			return err
		}
		if x.u.GetResetPending() {
			// The gone peer, closed with this byte unread, leaves
			// ECONNRESET at x (net/unix/af_unix.c
			// unix_release_sock).
			if x.gone < 0 {
				return x.errorf(errors.New("a pending ECONNRESET, but no peer to close"))
			}
			if _, err := unix.Write(x.h, []byte{0}); err != nil {
				return x.errorf(fmt.Errorf("send its peer a byte to leave unread: %w", err))
			}
		}
	}
	return nil
}

func (g *unixSockets) fill(x *unixSock, from int, to unix.Sockaddr, msgs []*gocrpb.UnixMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	if from < 0 {
		return x.errorf(errors.New("nothing to send what waits at it from"))
	}
	var data [][]byte
	for _, m := range msgs {
		data = append(data, m.GetData())
	}
	if err := fillUnixQueue(from, x.typ(), to, data...); err != nil {
		return x.errorf(fmt.Errorf("queue what was to be read at it: %w", err))
	}
	return nil
}

// connectPending connects each listener's clients, oldest first (step
// 5): a unix stream connect(2) queues the new connection at once on the
// listener (net/unix/af_unix.c unix_stream_connect), where accept(2)
// takes it. A client outside the dump is a socket closed at once.
func (g *unixSockets) connectPending() error {
	for _, l := range g.order {
		if !l.u.GetListening() {
			continue
		}
		for _, ino := range l.u.GetPending() {
			client := -1
			var cred *gocrpb.UnixPeerCred
			if c := g.socks[ino]; c != nil && c.conn == gocrpb.UnixSocketFd_PEER_PENDING {
				client, cred = c.h, c.u.GetConnectorCred()
				if recorded(c.u.GetPeerCred()) {
					if err := g.listen(c.u.GetPeerCred(), l.h, math.MaxInt32); err != nil {
						return l.errorf(fmt.Errorf("listen: %w", err))
					}
				}
			}
			if client < 0 {
				h, err := g.temp(l.typ())
				if err != nil {
					return l.errorf(err)
				}
				client = h
			}
			// Without waiting: a full queue fails with EAGAIN
			// (net/unix/af_unix.c unix_wait_for_peer) rather
			// than hang the restore. The client's own status
			// flags are set when it is opened.
			if err := unix.SetNonblock(client, true); err != nil {
				return l.errorf(err)
			}
			if err := g.connect(cred, client, l.name()); err != nil {
				return l.errorf(fmt.Errorf("connect a client not yet accepted: %w", err))
			}
		}
		if err := g.listen(l.u.GetPeerCred(), l.h, int(l.u.GetBacklog())); err != nil {
			return l.errorf(fmt.Errorf("listen with backlog %d: %w", l.u.GetBacklog(), err))
		}
	}
	return nil
}

// datagrams sends each datagram socket's queue again and connects it
// (step 6).
func (g *unixSockets) datagrams() error {
	later := map[*unixSock][]*gocrpb.UnixMessage{}
	for _, x := range g.order {
		if x.stream() || len(x.recv) == 0 {
			continue
		}
		switch {
		case x.mutual():
			if err := g.fill(x, x.peer.h, nil, x.recv); err != nil {
				return err
			}
			continue
		case x.conn == gocrpb.UnixSocketFd_PEER_GONE && x.goneByName():
			continue // datagramsGone
		case x.conn == gocrpb.UnixSocketFd_PEER_GONE:
			if err := g.fill(x, x.gone, nil, x.recv); err != nil {
				return err
			}
			continue
		}
		for i, m := range x.recv {
			if x.peer != nil && m.GetSender() == x.peer.u.GetIno() {
				later[x] = x.recv[i:]
				break
			}
			from, err := g.sender(x, m.GetSender())
			if err != nil {
				return err
			}
			if err := g.fill(x, from, x.addr(), []*gocrpb.UnixMessage{m}); err != nil {
				return err
			}
		}
	}
	for _, x := range g.order {
		if x.stream() {
			continue
		}
		var to string
		switch {
		case x.conn == gocrpb.UnixSocketFd_PEER_DUMPED && !x.mutual():
			to = x.peer.name()
		case x.conn == gocrpb.UnixSocketFd_PEER_NAMED:
			to = string(x.u.GetPeerName())
		default:
			continue
		}
		if err := unix.Connect(x.h, &unix.SockaddrUnix{Name: to}); err != nil {
			return x.errorf(fmt.Errorf("connect again to %s: %w", unixName(to), err))
		}
	}
	for _, x := range g.order {
		if msgs := later[x]; len(msgs) > 0 {
			if err := g.fill(x, x.peer.h, x.addr(), msgs); err != nil {
				return err
			}
		}
	}
	return nil
}

// sender is the socket to send a datagram to x from: its dumped sender,
// or for an unnamed one a socket of gocr's with no name either.
func (g *unixSockets) sender(x *unixSock, ino uint64) (int, error) {
	if ino != 0 {
		s := g.socks[ino]
		if s == nil || s.h < 0 {
			return -1, x.errorf(fmt.Errorf("the sender of a datagram, socket inode %d, is not in the image", ino))
		}
		return s.h, nil
	}
	if g.unnamed < 0 {
		h, err := g.temp(unix.SOCK_DGRAM)
		if err != nil {
			return -1, x.errorf(err)
		}
		g.unnamed = h
	}
	return g.unnamed, nil
}

// setFiles gives each path's socket file the owner and mode it had, or
// removes it if the path no longer named it at the dump (step 7).
func (g *unixSockets) setFiles() error {
	for _, name := range g.pathNames() {
		f := g.pathFile(name)
		if !f.GetPresent() {
			if err := unix.Unlink(name); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %s, which was removed before the dump: %w", unixName(name), err)
			}
			continue
		}
		if err := unix.Lchown(name, int(f.GetUid()), int(f.GetGid())); err != nil {
			return fmt.Errorf("chown socket file %s: %w", unixName(name), err)
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, name, f.GetMode()&07777, 0); err != nil {
			return fmt.Errorf("chmod socket file %s: %w", unixName(name), err)
		}
	}
	return nil
}
