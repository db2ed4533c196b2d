//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// A unix socket's peer credentials, as SO_PEERCRED and SO_PEERGROUPS read
// them (man 7 unix), are recorded by the kernel from the process making
// one of three calls: socketpair(2) gives both ends the caller's,
// listen(2) the listener, and a stream connect(2) the new server-side
// socket the connecting process's while the connecting socket copies the
// listener's (net/unix/af_unix.c unix_socketpair, unix_listen,
// unix_stream_connect: init_peercred, copy_peercred). Nothing sets them
// afterwards, and a datagram connect(2) records none (pid 0, uid and gid
// -1, as an unconnected socket: net/core/sock.c cred_to_ucred).
//
// The dump reads them on its own handle of each socket; the restore makes
// those calls through PeerCredMaker, in a process with the dumped pid and
// effective ids, then reads every socket's back: a difference fails the
// restore in one line.

// maxPeerGroups is the most supplementary groups a peer may have: the
// restorer's agent takes that many (restorer/c/abi.h).
const maxPeerGroups = 256

// readPeerCred reads the peer credentials of the socket h: the pid the
// kernel recorded, as a number of gocr's PID namespace, and its effective
// uid, gid and groups.
func readPeerCred(h int) (*gocrpb.UnixPeerCred, error) {
	uc, err := unix.GetsockoptUcred(h, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	c := &gocrpb.UnixPeerCred{Pid: uc.Pid, Uid: uc.Uid, Gid: uc.Gid}
	if c.Pid == 0 {
		return c, nil
	}
	buf := make([]byte, 4*maxPeerGroups)
	n, err := getsockoptBytes(h, unix.SOL_SOCKET, unix.SO_PEERGROUPS, buf)
	if errors.Is(err, unix.ERANGE) {
		return nil, fmt.Errorf("its peer (pid %d) has more than %d supplementary groups (not supported)", c.Pid, maxPeerGroups)
	}
	if err != nil {
		return nil, fmt.Errorf("SO_PEERGROUPS: %w", err)
	}
	for i := 0; i+4 <= n; i += 4 {
		c.Groups = append(c.Groups, binary.NativeEndian.Uint32(buf[i:]))
	}
	return c, nil
}

// checkPeerCredPid refuses peer credentials whose pid the restore could
// not give: that of a live process outside the dump, which would still
// hold it. A process that has ended is fine (SO_PEERCRED goes on naming
// its number; the restore takes it for a moment); SO_PEERPIDFD tells
// which it is (a pidfd of an ended process fails pidfd_send_signal with
// ESRCH, net/core/sock.c sk_getsockopt); a dumped process is one with an
// fd table in the dump, or one gocr traces, as its /proc status says.
func checkPeerCredPid(h int, c *gocrpb.UnixPeerCred) error {
	if c.GetPid() == 0 {
		return nil
	}
	alive := true
	pidfd, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err == nil {
		err = unix.PidfdSendSignal(pidfd, 0, nil, 0)
		unix.Close(pidfd)
		alive = !errors.Is(err, unix.ESRCH)
	} else {
		// A kernel before 6.5 has no SO_PEERPIDFD: a process of
		// that pid may be another than the one that made the call.
		alive = !errors.Is(unix.Kill(int(c.Pid), 0), unix.ESRCH)
	}
	if !alive || tracedByGocr(int(c.Pid)) {
		return nil
	}
	return fmt.Errorf("its peer credentials (SO_PEERCRED) name pid %d, a live process outside the dump, whose pid the restore could not give them", c.Pid)
}

// tracedByGocr tells whether gocr traces pid, as it does every process it
// dumps: /proc/PID/status names the tracing thread (fs/proc/array.c
// task_state).
func tracedByGocr(pid int) bool {
	st, err := proc.ReadStatus(pid)
	if err != nil || st.TracerPid == 0 {
		return false
	}
	_, err = os.Stat("/proc/self/task/" + strconv.Itoa(st.TracerPid))
	return err == nil
}

// holderCred is the credentials of the process holding a socket: a
// connection not yet accepted will report, once accepted, the process
// that called connect(2), which nothing shows before; gocr takes the
// process holding the connecting socket, with its effective ids now.
func holderCred(pid int) (*gocrpb.UnixPeerCred, error) {
	st, err := proc.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	return &gocrpb.UnixPeerCred{Pid: int32(pid), Uid: st.Uid[1], Gid: st.Gid[1], Groups: st.Groups}, nil
}

// PeerCredMaker makes the calls that record a unix socket's peer
// credentials in a process with pid c.Pid and c's effective ids and
// groups (restorer/peercred.go).
type PeerCredMaker interface {
	Socketpair(c *gocrpb.UnixPeerCred, typ int) ([2]int, error)
	Listen(c *gocrpb.UnixPeerCred, h, backlog int) error
	Connect(c *gocrpb.UnixPeerCred, h int, name string) error
	// SamePids is false for a restore in a new PID namespace, where
	// no process of gocr's has a pid: SO_PEERCRED there reads pid 0
	// for every socket, as for any peer outside the reader's namespace.
	SamePids() bool
}

// recorded tells whether c names credentials a call recorded (pid not 0).
func recorded(c *gocrpb.UnixPeerCred) bool { return c.GetPid() != 0 }

func (g *unixSockets) socketpair(c *gocrpb.UnixPeerCred, typ int) ([2]int, error) {
	if g.s.PeerCreds == nil || !recorded(c) {
		return unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	}
	return g.s.PeerCreds.Socketpair(c, typ)
}

func (g *unixSockets) listen(c *gocrpb.UnixPeerCred, h, backlog int) error {
	if g.s.PeerCreds == nil || !recorded(c) {
		return unix.Listen(h, backlog)
	}
	return g.s.PeerCreds.Listen(c, h, backlog)
}

func (g *unixSockets) connect(c *gocrpb.UnixPeerCred, h int, name string) error {
	if g.s.PeerCreds == nil || !recorded(c) {
		return unix.Connect(h, &unix.SockaddrUnix{Name: name})
	}
	return g.s.PeerCreds.Connect(c, h, name)
}

// byName tells whether x, a datagram socket connected both ways, was
// connected by name (no credentials recorded): it is made so again, not
// as a socketpair, which would record some.
func (x *unixSock) byName() bool {
	c, p := x.u.GetPeerCred(), x.peer.u.GetPeerCred()
	return !x.stream() && ((c != nil && !recorded(c)) || (p != nil && !recorded(p)))
}

// checkPeerCreds reads every socket's peer credentials back: each must
// be the dumped one (sockets of an image without them are not checked).
func (g *unixSockets) checkPeerCreds() error {
	if g.s.PeerCreds == nil {
		return nil
	}
	for _, x := range g.order {
		want := x.u.GetPeerCred()
		if want == nil || x.h < 0 {
			continue
		}
		got, err := readPeerCred(x.h)
		if err != nil {
			return x.errorf(err)
		}
		pidOK := got.Pid == want.Pid || (!g.s.PeerCreds.SamePids() && recorded(want) && recorded(got))
		if !pidOK || got.Uid != want.Uid || got.Gid != want.Gid || (recorded(want) && !slices.Equal(got.Groups, want.Groups)) {
			return x.errorf(fmt.Errorf("its peer credentials (SO_PEERCRED) came back as pid %d uid %d gid %d groups %v, not the dumped pid %d uid %d gid %d groups %v",
				got.Pid, int32(got.Uid), int32(got.Gid), got.Groups, want.Pid, int32(want.Uid), int32(want.Gid), want.Groups))
		}
	}
	return nil
}

// linkPeerCred checks that the restore can give x's peer credentials
// (checkPeerCredPid, on a handle of its own), and records those a
// connection not yet accepted will report.
func linkPeerCred(x *unixRef, opts LinkOptions) error {
	r := x.refs[0]
	if x.u.GetConnection() == gocrpb.UnixSocketFd_PEER_PENDING {
		c, err := holderCred(r.Pid)
		if err != nil {
			return x.errorf("the credentials of the process holding it: %w", err)
		}
		x.set(func(u *gocrpb.UnixSocketFd) { u.ConnectorCred = c })
	}
	if !recorded(x.u.GetPeerCred()) {
		return nil
	}
	if opts.PidNamespace || opts.dumped[int(x.u.GetPeerCred().GetPid())] {
		// A job in a PID namespace of its own is restored only in a
		// new one, where the pid reads 0 (restorer/peercred.go).
		return nil
	}
	h, err := takeFd(r.Pid, int(r.Fd.Fd))
	if err != nil {
		return x.errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	if err := checkPeerCredPid(h, x.u.GetPeerCred()); err != nil {
		return x.errorf("%w", err)
	}
	return nil
}

// goneByName tells whether x, a datagram socket whose peer is gone, had
// no peer credentials recorded (it connected by name): it is connected by
// name to a socket closed at the end (datagramsGone), not made by
// socketpair(2).
func (x *unixSock) goneByName() bool {
	c := x.u.GetPeerCred()
	return !x.stream() && x.conn == gocrpb.UnixSocketFd_PEER_GONE && c != nil && !recorded(c)
}

// datagramsGone connects each datagram socket whose peer is gone and that
// had no peer credentials to a socket of gocr's with a name the kernel
// picks (autobind: a bind(2) with the address family alone, man 7 unix),
// closed once every socket is made. What waited at it is sent first, each
// datagram from a socket of its sender's name (as the dump refuses a
// datagram from a named socket outside it, one from the gone peer came
// from an unnamed socket), before it connects and takes datagrams from
// its peer alone.
func (g *unixSockets) datagramsGone() error {
	for _, x := range g.order {
		if !x.goneByName() {
			continue
		}
		t, err := g.temp(unix.SOCK_DGRAM)
		if err != nil {
			return x.errorf(err)
		}
		if err := unix.Bind(t, &unix.SockaddrUnix{}); err != nil {
			return x.errorf(fmt.Errorf("bind a socket for its peer: %w", err))
		}
		sa, err := unix.Getsockname(t)
		if err != nil {
			return x.errorf(fmt.Errorf("getsockname: %w", err))
		}
		for _, m := range x.recv {
			from, err := g.sender(x, m.GetSender())
			if err != nil {
				return err
			}
			if err := g.fill(x, from, x.addr(), []*gocrpb.UnixMessage{m}); err != nil {
				return err
			}
		}
		if err := unix.Connect(x.h, sa); err != nil {
			return x.errorf(fmt.Errorf("connect to its peer's stand-in: %w", err))
		}
		x.gone = t
	}
	return nil
}
