//go:build linux

package restorer

import (
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreatedReceive: created takes a pidfd for a table index once, and
// closes any fd that comes with a message naming no process of the table,
// a process already known, or carrying no index at all, so nothing but
// the restorer's first word about a process is ever acted on.
func TestCreatedReceive(t *testing.T) {
	c, peer, err := newCreated(2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	defer peer.Close()
	send := func(data []byte) int {
		t.Helper()
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			t.Skipf("pidfd_open: %v", err)
		}
		if err := unix.Sendmsg(int(peer.Fd()), data, unix.UnixRights(fd), nil, 0); err != nil {
			t.Fatal(err)
		}
		// What was sent is a copy: the test's own fd goes now.
		unix.Close(fd)
		return fd
	}
	index := func(i uint32) []byte { return binary.LittleEndian.AppendUint32(nil, i) }
	send(index(1))
	send(index(1))  // a second word about process 1
	send(index(7))  // no such process
	send([]byte{0}) // no index
	c.receive()
	if c.pidfds[0] != -1 {
		t.Errorf("process 0 has pidfd %d, but none was sent for it", c.pidfds[0])
	}
	if c.pidfds[1] < 0 {
		t.Fatalf("process 1 has no pidfd after one was sent for it")
	}
	if c.exited(1) {
		t.Errorf("process 1 (this test) reads as exited")
	}
	// Of the four fds received only process 1's is still open.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	pidfds := 0
	for _, e := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:[pidfd]" {
			pidfds++
		}
	}
	if pidfds != 1 {
		t.Errorf("%d pidfds open after receiving four messages, want 1 (the one kept)", pidfds)
	}
}
