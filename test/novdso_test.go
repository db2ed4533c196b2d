//go:build linux

package test

import (
	"syscall"
	"testing"
)

// TestNoVdso: a process of two threads that unmapped its vDSO and vvar
// pages (novdso.c "all") is dumped, the parasite's calls running on the
// process's own code, and restored without them, its auxiliary vector as
// it was, the release gate too on its own code; one that unmapped only
// its vvar pages ("vvar") keeps its vDSO where it was. Each checks its
// maps, its AT_SYSINFO_EHDR and its counters itself, and the oracle
// compares the rest.
func TestNoVdso(t *testing.T) {
	for _, mode := range []string{"all", "vvar"} {
		t.Run(mode, func(t *testing.T) {
			tg := startTarget(t, "novdso", mode)
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestNoVdsoStopped: the process without a vDSO (2 threads), stopped by
// SIGSTOP when dumped, goes through the gate made of its own code before
// it stops again: stopped, the oracle finds it as it was (its masks, no
// lifeline fd), and once continued it checks itself.
func TestNoVdsoStopped(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "novdso", "all")
	if err := syscall.Kill(tg.pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP pid %d: %v", tg.pid, err)
	}
	waitStopped(t, tg.pid, "before the dump")
	pid := checkpointRestore(t, tg, cycleOpts{})
	waitStopped(t, pid, "after the restore")
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT pid %d: %v", pid, err)
	}
	checkResult(t, tg, pid)
}

// TestNoVdsoLeaveRunning: the process without a vDSO dumped with
// --leave-running runs on as it was: the oracle's view of it is the same
// after the dump as before, and it checks itself.
func TestNoVdsoLeaveRunning(t *testing.T) {
	tg := startTarget(t, "novdso", "all")
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, t.TempDir(), "--leave-running")
	checkTreeView(t, tg.pid, before, nil)
	checkResult(t, tg, tg.pid)
}

// TestNoVdsoGocrKilledInRelease: gocr SIGKILLs itself while it releases
// the restored process without a vDSO (2 threads) into the gate made of
// its own code: after both threads' detaches, before the commit, both
// read the lifeline's end of file and the process ends, and the same
// images restore again; right after the commit, it runs, and checks
// itself. (A kill with a thread still attached kills the process, with
// or without a vDSO: TestGocrKilledInRelease.)
func TestNoVdsoGocrKilledInRelease(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	const threads = 2
	tg := startTarget(t, "novdso", "all")
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	restoreKilledInRelease(t, dir, threads)
	waitAllGone(t, []int{tg.pid}, "gocr was killed after the last detach, before the commit")
	restoreKilledInRelease(t, dir, threads+1)
	checkTreeView(t, tg.pid, view, nil)
	checkResult(t, tg, tg.pid)
}
