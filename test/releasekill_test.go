//go:build linux

package test

import (
	"errors"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/gocr/gocr/internal/testhook"
)

// threadtreeThreads is every thread of targets/threadtree.c: a root and 3
// children, each with 3 threads besides its main one.
const threadtreeThreads = 4 * 4

// TestGocrKilledInRelease: gocr SIGKILLs itself (the kill-in-release
// hook) at a step of the release of a tree of several processes with
// several threads each (targets/threadtree.c): half way through the
// threads' detaches, after the last one, before the commit, and right
// after it. Before the commit nothing of the job may be left (the threads
// released wait at the gate and end on the lifeline's end of file, the
// others are killed still attached), and the same images restore again;
// after it the whole job runs: every process and every thread, which the
// target checks itself.
func TestGocrKilledInRelease(t *testing.T) {
	testGocrKilledInRelease(t, []int{threadtreeThreads / 2, threadtreeThreads})
}

// TestGocrKilledInReleaseEveryStep: TestGocrKilledInRelease at every step
// of the release.
func TestGocrKilledInReleaseEveryStep(t *testing.T) {
	soakOnly(t)
	var steps []int
	for n := 1; n <= threadtreeThreads; n++ {
		steps = append(steps, n)
	}
	testGocrKilledInRelease(t, steps)
}

func testGocrKilledInRelease(t *testing.T, before []int) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "threadtree")
	pids := append([]int{tg.pid}, trackTree(t, tg.pid)...)
	if len(pids) != 4 {
		t.Fatalf("threadtree pid %d is %d processes, want 4", tg.pid, len(pids))
	}
	view, dir := dumpTreeViewed(t, tg, pids)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	for _, step := range before {
		restoreKilledInRelease(t, dir, step)
		waitAllGone(t, pids, "gocr was killed at release step "+strconv.Itoa(step)+", before the commit")
	}
	restoreKilledInRelease(t, dir, threadtreeThreads+1)
	// The tree gocr left behind when it died after the commit is the
	// one it dumped.
	checkTreeView(t, tg.pid, view, nil)
	checkResult(t, tg, tg.pid)
}

// TestStoppedJobGocrKilledInRelease: gocr restoring a stopped job
// (targets/stopped.c, two processes of two threads) is killed after the
// commit, at the first step of its release (before any stopped thread is
// through the gate: each stops in it) and at the third (every thread
// through, two of them detached by gocr, the others by its death): the
// job is stopped, every thread, and once continued it runs and passes.
func TestStoppedJobGocrKilledInRelease(t *testing.T) {
	needsGocr(t)
	tg := startTargetOpts(t, "stopped", startOpts{})
	waitStopped(t, tg.pid, "before the dump")
	pids := append([]int{tg.pid}, trackTree(t, tg.pid)...)
	view, dir := dumpTreeViewed(t, tg, pids)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	for _, step := range []int{1, 3} {
		restoreKilledInRelease(t, dir, step)
		for _, p := range pids {
			waitStopped(t, p, "after gocr was killed at release step "+strconv.Itoa(step))
		}
		// At step 1 the threads wait in the gate, with its
		// lifeline fd and blocked mask (docs/STATE.md, "State T");
		// at step 3 every thread is through, as dumped.
		if step == 3 {
			checkTreeView(t, tg.pid, view, nil)
		}
		if step == 1 {
			// Ended, so that the next restore has its PIDs.
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
			waitAllGone(t, pids, "SIGKILL")
		}
	}
	if err := syscall.Kill(tg.pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT pid %d: %v", tg.pid, err)
	}
	checkResult(t, tg, tg.pid)
}

// restoreKilledInRelease restores the images in dir with gocr SIGKILLed
// at release step step (testhook.KillInRelease), and fails t unless it
// was.
func restoreKilledInRelease(t *testing.T, dir string, step int) {
	t.Helper()
	cmd := exec.Command(gocrBinary(t), "restore", "-D", dir, "-d")
	cmd.Env = append(cmd.Environ(), testhook.Setting(testhook.KillInRelease, strconv.Itoa(step)))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("gocr restore with the kill at release step %d: %v, want killed by SIGKILL\n%s", step, err, out)
	}
}
