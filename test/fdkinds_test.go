//go:build linux

package test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gocr/gocr/proc"
)

// File descriptors of each kind survive a dump and restore: regular files
// (with offsets, flags and an offset shared across fork), pipes and FIFOs
// with data in flight, eventfd, epoll, signalfd, timerfd, inotify, memfd
// and unix socketpairs.

// TestFds: fds with distinct numbers, access modes, status flags,
// close-on-exec bits and offsets, and the umask and cwd, come back
// exactly, with no fd added or lost.
func TestFds(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "fds", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestSharedOffsetAcrossFork: two processes writing through one open file
// description (opened before fork) still share its offset after restore.
func TestSharedOffsetAcrossFork(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "sharedoff", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestPipeReader: a process blocked reading its stdin pipe, empty at the
// dump, gets gocr restore's stdin and reads exactly what is written after
// the restore, then end of file.
func TestPipeReader(t *testing.T) {
	needsRoot(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
	// gocr restore connects the restored stdin (a pipe) to its own fd 0.
	pid := checkpointRestore(t, tg, cycleOpts{stdin: r})
	// Only the target may hold the read end, or EOF would never come...
	r.Close()
	if _, err := w.Write([]byte("hello\n")); err != nil {
		t.Fatalf("write to the target's stdin: %v", err)
	}
	// ...and only we the write end.
	w.Close()
	checkResult(t, tg, pid)
}

// TestEventfd: eventfd counts (semaphore, 2^40, the maximum, zero) and
// flags survive; a dup stays the same eventfd.
func TestEventfd(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "eventfd")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestEpoll: an epoll instance keeps its watches under the same fd numbers
// with their event masks and data, level- and edge-triggered readiness,
// and a one-shot watch re-armed after its shot.
func TestEpoll(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "epoll")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

func testFdKind(t *testing.T, mode string, withDir bool) {
	needsRoot(t)
	args := []string{mode}
	if withDir {
		args = append(args, t.TempDir())
	}
	tg := startTargetOpts(t, "fdkinds", startOpts{args: args})
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestSignalfd: a signalfd (fdkinds.c signalfd) keeps its mask and flags;
// a SIGUSR1 pending at the dump is read from it after the restore with its
// siginfo; SIGRTMIN+1 is in the mask, SIGUSR2 is not.
func TestSignalfd(t *testing.T) { testFdKind(t, "signalfd", false) }

// TestTimerfd: a periodic 200 ms timerfd with unread expirations and a
// one-shot 30 s one keep their clock, interval and remaining time (gocr
// rearms a timer with what was left at the dump, so time stops while it
// is dumped) and the expirations are not lost.
func TestTimerfd(t *testing.T) { testFdKind(t, "timerfd", false) }

// TestInotify: watches keep their wd numbers across a gap left by a removed
// watch, their masks, and deliver events after the restore.
func TestInotify(t *testing.T) { testFdKind(t, "inotify", true) }

// TestMemfd: a sealed sparse memfd with a file offset, a shared mapping,
// its own mode and owner; a second memfd reachable only through its shared
// mapping, with a space and a newline in its name; a third made with
// MFD_NOEXEC_SEAL. Names, modes, owners and seals come back exactly.
func TestMemfd(t *testing.T) { testFdKind(t, "memfd", false) }

// TestFifo: a FIFO whose read end is in the target and write end in its
// child, with unread data; after the restore the data and later writes
// arrive, both ends are still that FIFO and have their status flags
// (O_NONBLOCK at open, O_DIRECT|O_APPEND set later with fcntl).
func TestFifo(t *testing.T) { testFdKind(t, "fifo", true) }

// TestPipeStatusFlags: every end of three pipes keeps its F_GETFL exactly:
// O_NONBLOCK from pipe2 or fcntl, set and cleared later, O_APPEND, a
// packet pipe's O_DIRECT, and two more open file descriptions of one pipe
// opened through /proc/self/fd (one O_RDWR), each still its own.
func TestPipeStatusFlags(t *testing.T) { testFdKind(t, "pipes", false) }

// TestPathFds: O_PATH fds of every kind of file come back naming the
// same file, unopened, and fds of /proc files of the job's own processes
// (its own stat, read part way, its /proc directory, its child's status)
// come back open on the same processes, at their offsets: the restored
// process opens those itself, once the processes exist (pathfds.c). So
// does one on /proc/PID/status of a process outside the dump that still
// runs at the restore.
func TestPathFds(t *testing.T) {
	needsRoot(t)
	outside := startTarget(t, "sleeper")
	tg := startTargetOpts(t, "pathfds", startOpts{args: []string{t.TempDir(), strconv.Itoa(outside.pid)}})
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestProcFdOutsideEnded: an fd on /proc/PID/status of a process
// outside the dump, which comes back on that process's file while it
// lives (TestPathFds), is refused by the restore once that process has
// ended, in one line naming the fd, before any process is made: the path
// would open the file of whatever process has the PID by then, or none.
func TestProcFdOutsideEnded(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	outside := startTarget(t, "sleeper")
	tg := startTargetOpts(t, "pathfds", startOpts{args: []string{t.TempDir(), strconv.Itoa(outside.pid)}})
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	outside.killOriginal(t)
	r := runGocr(t, nil, "restore", "-D", dir, "-d")
	// Another process may have taken the PID meanwhile: "has
	// ended since the dump: another process has its PID now".
	assertRefused(t, r, []string{fmt.Sprintf("/proc/%d/status", outside.pid), "outside the dump", "has ended since the dump"}, nil)
	for _, pid := range pids {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "pathfds" {
			t.Errorf("pid %d runs pathfds after the refused restore", pid)
		}
	}
}

// TestEpollShared: an epoll instance shared by dup and by fork gets its
// watches added once, and every fd of it, in both processes, reports the
// event after the restore (epollshared.c).
func TestEpollShared(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "epollshared")
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestEpollMovedWatches: epoll watches whose fd number was closed, or
// reused by another file, since they were added come back keyed by the
// same file and number: a closed number, a reused one (watched under it
// twice), one whose file only a child still holds, and one whose number
// now is the epoll fd itself; each reports its own file, and
// EPOLL_CTL_DEL finds what it found before (epollmoved.c).
func TestEpollMovedWatches(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "epollmoved")
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestUnixSocketpairs: unix socketpairs of each type, within the target
// and between it and its child (unixsock.c), come back connected to the
// same peers, with every message queued both ways and its boundaries
// (empty datagrams and records, one of 5000 bytes), their shut
// directions, options (buffer sizes, SO_PASSCRED, SO_PASSSEC,
// SO_PEEK_OFF, timeouts), O_NONBLOCK and close-on-exec, and a dup still
// the same open file.
func TestUnixSocketpairs(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	tg := startTarget(t, "unixsock")
	trackTree(t, tg.pid)
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// checkpointRestoreTree is checkpointRestore for a target with children:
// it also waits until every process of the tree is gone after the dump
// before it restores. It returns the PID to check; in
// standalone mode the original one.
func checkpointRestoreTree(t *testing.T, tg *target) int {
	t.Helper()
	pids := trackTree(t, tg.pid)
	if standalone {
		return tg.pid
	}
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	return pid
}

// needsUnixDiag skips a test of unix sockets on a kernel without
// CONFIG_UNIX_DIAG: gocr finds a socket's peer through sock_diag (man 7
// sock_diag), and refuses every unix socket without it.
func needsUnixDiag(t *testing.T) {
	t.Helper()
	if err := proc.UnixDiagAvailable(); err != nil {
		t.Skipf("this kernel does not show unix sockets through sock_diag (CONFIG_UNIX_DIAG): %v", err)
	}
}
