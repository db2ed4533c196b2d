//go:build linux

package test

import (
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPosixTimers: timer_create timers come back under their IDs, with
// their clocks, notifications, intervals and time left, and go on firing
// (posixtimers.c).
func TestPosixTimers(t *testing.T) {
	needsRoot(t)
	needsTimerRestoreIDs(t)
	tg := startTarget(t, "posixtimers")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestIntervalTimers: the three interval timers (setitimer: real,
// virtual, prof) come back with their intervals and what was left of
// them, the CPU-time ones without the tick the kernel adds when they are
// set (posixtimers.c itimers).
func TestIntervalTimers(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "posixtimers", "itimers")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestPosixTimerOverrunRefused: a timer whose last signal came with an
// overrun count cannot be restored exactly (no call sets that count), so
// the dump refuses in one line naming it and the process runs on.
func TestPosixTimerOverrunRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	// Without it every POSIX timer is refused, overrun or not.
	needsTimerRestoreIDs(t)
	tg := startTarget(t, "posixtimers", "overrun")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"POSIX timer 0", "overrun"}, nil)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// needsTimerRestoreIDs skips a test on a kernel that cannot recreate POSIX
// timers under their IDs: PR_TIMER_CREATE_RESTORE_IDS (77) with its GET
// operation (2), include/uapi/linux/prctl.h, Linux 6.16 and later.
func needsTimerRestoreIDs(t *testing.T) {
	t.Helper()
	if _, err := unix.PrctlRetInt(77, 2, 0, 0, 0); err != nil {
		t.Skipf("this kernel cannot recreate POSIX timers under their IDs (prctl PR_TIMER_CREATE_RESTORE_IDS: %v)", err)
	}
}
