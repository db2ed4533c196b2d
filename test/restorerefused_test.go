//go:build linux

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Refusals that take a restore: what the dump could not know, found taken
// at the restore (each fails in one line before any process of the job
// exists, and leaves nothing of its own behind), and state only a
// restored job has (a PID namespace of its own).

// TestPtyIndexTakenRefused: a pty whose index (/dev/pts/N) another
// process holds by restore time cannot come back at it (devpts gives
// only the lowest free index, fs/devpts/inode.c devpts_new_index): the
// restore refuses in one line naming it, and no process of the job is
// left.
func TestPtyIndexTakenRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "pty")
	pids := trackTree(t, tg.pid)
	index := ptyIndexOf(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	takePtyIndex(t, index)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r := runGocr(t, nil, "restore", "-D", dir, "-d")
	assertRefused(t, r, []string{fmt.Sprintf("/dev/pts/%d is taken by another process", index)}, nil)
	assertNoProcess(t, tg.pid)
	for _, pid := range pids {
		assertNoProcess(t, pid)
	}
}

// ptyIndexOf returns the index of the pty master pid holds: its fdinfo
// says "tty-index" (drivers/tty/pty.c pty_show_fdinfo).
func ptyIndexOf(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		if link, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", e.Name())); link != "/dev/ptmx" && link != "/dev/pts/ptmx" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "fdinfo", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "tty-index:"); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					t.Fatalf("fdinfo of pid %d fd %s: %q", pid, e.Name(), line)
				}
				return n
			}
		}
	}
	t.Fatalf("pid %d holds no pty master", pid)
	return -1
}

// takePtyIndex opens pty masters until /dev/pts/index exists, and keeps
// it open until the test ends (closing the others): devpts gives the
// lowest free index, so it is this test's or another process's by then.
func takePtyIndex(t *testing.T, index int) {
	t.Helper()
	var extra []int
	defer func() {
		for _, fd := range extra {
			unix.Close(fd)
		}
	}()
	for i := 0; i <= index+64; i++ {
		if _, err := os.Stat(fmt.Sprintf("/dev/pts/%d", index)); err == nil {
			return
		}
		fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open /dev/ptmx: %v", err)
		}
		n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		if err != nil {
			t.Fatalf("TIOCGPTN: %v", err)
		}
		if int(n) == index {
			t.Cleanup(func() { unix.Close(fd) })
			continue
		}
		extra = append(extra, fd)
	}
	t.Fatalf("/dev/pts/%d is still free after %d ptys opened", index, index+64)
}

// TestUnixPeerCredPidTakenRefused: a socketpair whose peer credentials
// (SO_PEERCRED) name a process that had ended by the dump (unixpeercred.c
// fds 85 and 86) is made again at restore by a process with that pid; if
// another process holds the pid by then, the restore refuses in one line
// naming it, before any process of the job exists, and leaves the holder
// alone.
func TestUnixPeerCredPidTakenRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsUnixDiag(t)
	tg := startTarget(t, "unixpeercred")
	pids := trackTree(t, tg.pid)
	ended := peerCredPid(t, tg.pid, 85)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", ended)); err != nil {
		takePid(t, ended)
	} // else another process has taken it already, as the test wants
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r := runGocr(t, nil, "restore", "-D", dir, "-d")
	assertRefused(t, r, []string{fmt.Sprintf("its peer credentials (SO_PEERCRED) name pid %d, which another process holds now", ended)}, nil)
	assertNoProcess(t, tg.pid)
	for _, pid := range pids {
		assertNoProcess(t, pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", ended)); err != nil {
		t.Errorf("the process holding pid %d is gone after the refused restore: %v", ended, err)
	}
}

// peerCredPid returns the pid SO_PEERCRED names for fd of pid, read on a
// copy of the fd (pidfd_getfd(2)).
func peerCredPid(t *testing.T, pid, fd int) int {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(pfd)
	h, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd %d fd %d: %v", pid, fd, err)
	}
	defer unix.Close(h)
	cred, err := unix.GetsockoptUcred(h, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		t.Fatalf("SO_PEERCRED of pid %d fd %d: %v", pid, fd, err)
	}
	return int(cred.Pid)
}

// TestPtyPidnsRefused: a session with a pty as its controlling terminal,
// in a PID namespace of its own (a job restored with --pidns, dumped
// again), is refused at dump in one line: gocr would read its foreground
// group under another number than the processes know it by. The job runs
// on and checks its pty.
func TestPtyPidnsRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	hole := ptyHole(t)
	tg := startTarget(t, "pty")
	hole()
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	restore(t, nil, dir, "-d", "--pidns=always")
	host, reaper := nsJob(t, tg, tg.pid)
	// The namespace ends with its init, the reaper (man 7 pid_namespaces).
	t.Cleanup(func() { unix.Kill(reaper, unix.SIGKILL) })
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(host), "-D", t.TempDir())
	assertRefused(t, r, []string{"/dev/pts/", "is the controlling terminal of session", "in a PID namespace of its own"}, nil)
	assertUntouched(t, host)
	checkResult(t, tg, host)
}
