//go:build linux

package test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLocks: flock (shared and exclusive), OFD and POSIX record locks come
// back on the same open file descriptions and process, over the same
// bytes, and keep another process out as before (locks.c checks both from
// inside and from a child).
func TestLocks(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "locks", startOpts{args: []string{t.TempDir()}})
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestLocksWaiters: two processes and a thread blocked waiting for a
// POSIX, a flock and an OFD lock the target holds wait again after the
// restore, each for the same lock, and get it once the target lets it go
// (lockwait.c).
func TestLocksWaiters(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "lockwait", startOpts{args: []string{t.TempDir()}})
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestLocksHeldElsewhere: a restore whose locks another process holds
// (here the dumped process itself, left running) fails in one line naming
// the lock. gocr takes the open file descriptions' locks when it opens the
// files, before it claims any PID or creates any process, so the running
// original is untouched.
func TestLocksHeldElsewhere(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTargetOpts(t, "locks", startOpts{args: []string{t.TempDir()}})
	images := t.TempDir()
	if r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", images, "--leave-running"); r.code != 0 {
		t.Fatalf("dump --leave-running failed\n%v", r)
	}
	r := runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{"another process holds a conflicting lock"}, []string{"flock", "OFD"})
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// TestLocksTakenMeanwhile: another process takes a file's flock between the
// dump and the restore. The restore fails in one line naming the lock and
// leaves no process behind; once that process lets go, the same images
// restore and the target finds all its locks.
func TestLocksTakenMeanwhile(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	files := t.TempDir()
	tg := startTargetOpts(t, "locks", startOpts{args: []string{files}})
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	images := t.TempDir()
	dump(t, tg.pid, images)
	tg.waitDead(t, "a dump without --leave-running")

	f, err := os.OpenFile(filepath.Join(files, "a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock a: %v", err)
	}
	r := runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{"exclusive flock", "another process holds a conflicting lock"}, nil)
	if !gone(tg.pid) {
		t.Fatalf("pid %d exists after the failed restore", tg.pid)
	}

	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	// The restore after the one refused holds every lock as dumped.
	pid := restoreDetached(t, tg, images, nil)
	checkTreeView(t, pid, view, nil)
	checkResult(t, tg, pid)
}

// TestFileTruncatedRefused: a file the process had open is shorter at
// restore than at the dump, so resuming at its offset would read or write
// past what the process knew: the restore refuses in one line naming the
// file, creates nothing, and restores once the file has its length again.
func TestFileTruncatedRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	files := t.TempDir()
	tg := startTargetOpts(t, "locks", startOpts{args: []string{files}})
	images := t.TempDir()
	dump(t, tg.pid, images)
	tg.waitDead(t, "a dump without --leave-running")
	path := filepath.Join(files, "d")
	if err := os.Truncate(path, 10); err != nil {
		t.Fatal(err)
	}
	r := runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{path, "shorter"}, nil)
	if !gone(tg.pid) {
		t.Fatalf("pid %d exists after the refused restore", tg.pid)
	}
	if err := os.WriteFile(path, []byte("0123456789012345678901234567890123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := restoreDetached(t, tg, images, nil)
	checkResult(t, tg, pid)
}
