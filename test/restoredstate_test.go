//go:build linux

package test

import (
	"testing"
	"time"
)

// TestTimerfdAbsolute: timerfds set with TFD_TIMER_ABSTIME (one also with
// TFD_TIMER_CANCEL_ON_SET, one disarmed since) keep their settime flags
// (fdinfo, which the oracle compares too) and their absolute expirations:
// the target checks them against the ones it set, with less slack than
// the time it spends dumped, which a timer restored as relative would be
// late by.
func TestTimerfdAbsolute(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "restoredstate", "timerfd-abs")
	before, err := readKernelView(tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	// Dumped for a second: not a wait for something to happen, the
	// time an absolute timer must not be shifted by.
	time.Sleep(time.Second)
	pid := restoreDetached(t, tg, dir, nil)
	checkKernelView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestExitSignal: a child made with clone(2) and SIGUSR1 as its exit
// signal keeps it (stat field 38): after the restore its parent gets
// SIGUSR1, not SIGCHLD, when it exits, and waits for it with __WALL.
func TestExitSignal(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "restoredstate", "exit-signal")
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}
