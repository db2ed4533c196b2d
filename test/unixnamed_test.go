package test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// TestUnixNamedSockets: unix sockets bound to paths and abstract names,
// listening with connections not yet accepted, connected through a
// listener, sending datagrams to each other, connected to a datagram
// socket outside the job, and one whose peer is gone come back with their
// names, peers' names, senders' names, queues and boundaries, shut
// directions, options and socket file (unixnamed.c), the client ends of
// a connection and of one waiting in a child; the listener keeps its
// backlog and its waiting connections, in order; the stale socket files
// the dump left are replaced.
func TestUnixNamedSockets(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	dir := t.TempDir()
	logSock := boundDgram(t, filepath.Join(dir, "log.sock"))
	tg := startTargetOpts(t, "unixnamed", startOpts{args: []string{dir}})
	trackTree(t, tg.pid)
	pid := checkpointRestore(t, tg, cycleOpts{})
	if !standalone {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/80", pid), &st); err != nil {
			t.Fatal(err)
		}
		d, err := proc.ReadUnixSocket(st.Ino)
		if err != nil {
			t.Fatal(err)
		}
		// A listener's queue lengths are its waiting connections and
		// its backlog (net/unix/diag.c sk_diag_show_rqlen).
		if d.State != proc.UnixListen || d.RecvQueue != 2 || d.SendQueue != 5 {
			t.Errorf("restored fd 80: state %d, %d connections waiting, backlog %d; want listening, 2 and 5", d.State, d.RecvQueue, d.SendQueue)
		}
	}
	checkResult(t, tg, pid)
	// Fd 90 sent to the test's socket before the dump and after the
	// restore, connected again by its path.
	var got []string
	buf := make([]byte, 64)
	for {
		n, _, err := unix.Recvfrom(logSock, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	if d := cmp.Diff([]string{"probe-1", "probe-2"}, got); d != "" {
		t.Errorf("datagrams at %s/log.sock (-want +got):\n%s", dir, d)
	}
}

// TestUnixExternalPeer: a stream connected to a listener outside the job
// is refused in one line that names the fd, the peer and the option that
// takes it; with --external-unix naming the peer it is dumped, and comes
// back with its queue and its peer gone: the end of file, EPIPE.
func TestUnixExternalPeer(t *testing.T) {
	needsGocr(t)
	needsUnixDiag(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ext.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err == nil {
			_, err = c.Write([]byte("from-outside"))
		}
		if err != nil {
			t.Errorf("accept the target's connection: %v", err)
		}
		accepted <- c
	}()
	tg := startTargetOpts(t, "unixnamed", startOpts{args: []string{dir, "external"}})
	if c := <-accepted; c != nil {
		t.Cleanup(func() { c.Close() })
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 80", "--external-unix " + path}, nil)
	assertUntouched(t, tg.pid)
	pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: []string{"--external-unix", path}})
	checkResult(t, tg, pid)
}

// boundDgram is a datagram socket of the test's bound to path.
func boundDgram(t *testing.T, path string) int {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s) })
	if err := unix.Bind(s, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUnixSocketPathTaken: a restore finds a file of its own at a dumped
// socket's path: it fails in one line naming the path, before it removes
// any stale socket file or makes any process; once the file is gone, a
// restore replaces the stale socket files and the target passes.
func TestUnixSocketPathTaken(t *testing.T) {
	needsGocr(t)
	needsUnixDiag(t)
	dir := t.TempDir()
	boundDgram(t, filepath.Join(dir, "log.sock"))
	tg := startTargetOpts(t, "unixnamed", startOpts{args: []string{dir}})
	pids := trackTree(t, tg.pid)
	images := t.TempDir()
	dump(t, tg.pid, images)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	taken := filepath.Join(dir, "dgram.sock")
	if err := os.Remove(taken); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(taken, []byte("someone else's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stale unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "listen.sock"), &stale); err != nil {
		t.Fatal(err)
	}
	r := runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{taken, "not the dumped socket's"}, nil)
	assertNoProcess(t, tg.pid)
	var now unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "listen.sock"), &now); err != nil || now.Ino != stale.Ino {
		t.Errorf("the failed restore touched the stale socket file listen.sock (inode %d, was %d: %v)", now.Ino, stale.Ino, err)
	}
	if err := os.Remove(taken); err != nil {
		t.Fatal(err)
	}
	pid := restoreDetached(t, tg, images, nil)
	checkResult(t, tg, pid)
}
