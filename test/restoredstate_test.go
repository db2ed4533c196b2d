//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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
	before, err := readTreeView(t, tg.pid)
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
	checkTreeView(t, pid, before, nil)
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

// TestOutsideGroupNoted: a root whose process group and session were led
// from outside the dump (the test's own) comes back in those of gocr
// restore, here a session of its own (setsid): the restore says so in
// one line naming both, and the job runs on.
func TestOutsideGroupNoted(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	setsid, err := exec.LookPath("setsid")
	if err != nil {
		t.Skipf("needs setsid(1) to run gocr restore in a session of its own: %v", err)
	}
	image, tg := dumpedCounter(t)
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r := runGocrVia(t, []string{setsid}, "restore", "-D", image, "-d")
	if r.code != 0 {
		t.Fatalf("restore failed: %v", r)
	}
	pgid, sid := syscall.Getpgrp(), 0
	if f := strings.Fields(string(self[strings.LastIndexByte(string(self), ')')+1:])); len(f) > 3 {
		sid, _ = strconv.Atoi(f[3])
	}
	want := fmt.Sprintf("gocr: pid %d was in process group %d (now ", tg.pid, pgid)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], want) || !strings.Contains(lines[0], fmt.Sprintf(" and session %d (now ", sid)) ||
		!strings.HasSuffix(lines[0], "led from outside the dump: it is restored in gocr restore's own") {
		t.Fatalf("restore's stderr %q, want one line starting %q and naming session %d", r.stderr, want, sid)
	}
	if gone(tg.pid) {
		t.Fatalf("restored pid %d is not running", tg.pid)
	}
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	checkResult(t, tg, tg.pid)
}
