//go:build linux

package test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/testhook"
)

// Checkpoint callbacks (libgocr, docs/CALLBACKS.md): the targets hold a
// deleted scratch file that their callbacks close before the checkpoint
// and open again, with other contents, after it, so the restored process
// sees whether they ran; each checks it was told how the checkpoint ended,
// by gocr itself, and that its callbacks ran in order.

// callbacksVolatile: the callbacks target reopens its scratch file at fd 40
// after the restart, opening it at the lowest free fd (3) first, while the
// oracle reads the restored process.
var callbacksVolatile = []string{"fd/3", "fd/3/", "fd/40", "fd/40/"}

// TestCallbacksContinue: a dump with --leave-running runs the callbacks
// before the freeze, and gocr_checkpoint() then returns GOCR_CONTINUE.
func TestCallbacksContinue(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "continue")
	dump(t, tg.pid, t.TempDir(), "--leave-running")
	checkResult(t, tg, tg.pid)
}

// TestCallbacksRestarted: the callbacks run before a dump that ends the
// process, and in the restored process gocr_checkpoint() returns
// GOCR_RESTARTED.
func TestCallbacksRestarted(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "restarted")
	pid := checkpointRestore(t, tg, cycleOpts{volatile: callbacksVolatile})
	checkResult(t, tg, pid)
}

// TestCallbacksRestartedTwice: the same images restore twice, and the
// callbacks hear of each restart.
func TestCallbacksRestartedTwice(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "restarted")
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	for i := 1; i <= 2; i++ {
		// The first restore's verdict must not count for the second.
		if err := os.Remove(tg.result); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("remove previous result: %v", err)
		}
		pid := restoreDetached(t, tg, dir, nil)
		checkTreeView(t, pid, view, callbacksVolatile)
		checkResult(t, tg, pid)
		if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("restore %d: pid %d still present", i, pid)
		}
	}
}

// TestCallbacksTimeout: a callback that never gets ready makes the dump
// fail after --callback-timeout, in one line, with the process running on
// untouched; its gocr_checkpoint(), called later, answers -1 (ECANCELED).
func TestCallbacksTimeout(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "hang")
	dir := t.TempDir()
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir, "--callback-timeout", "1s")
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "--callback-timeout", "not ready"}, nil)
	assertNoInventory(t, dir)
	checkIntact(t, tg)
}

// TestCallbacksGocrKilled: gocr dies (SIGKILL) after the callbacks were
// ready, while the process is frozen: the parasite lets it go on, and
// libgocr, finding that gocr is gone, answers -1 (ECANCELED) by itself.
func TestCallbacksGocrKilled(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "abandoned")
	dir := t.TempDir()
	cmd := startGocr(t, testhook.Setting(testhook.PauseAfterInfect, "5s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
	waitHook(t, cmd, testhook.PauseAfterInfect)
	killGocr(t, cmd)
	assertNoInventory(t, dir)
	// The target waits, bounded, for its callbacks to finish once asked.
	checkIntact(t, tg)
}

// TestCallbacksStopped: a process stopped by job control cannot run its
// callbacks, so the dump fails at once, in one line, without asking it;
// continued, it runs on untouched.
func TestCallbacksStopped(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "stopped")
	if err := syscall.Kill(tg.pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP pid %d: %v", tg.pid, err)
	}
	waitStopped(t, tg.pid, "after SIGSTOP")
	dir := t.TempDir()
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir, "--callback-timeout", "60s")
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "stopped", "SIGCONT"}, nil)
	assertNoInventory(t, dir)
	if err := syscall.Kill(tg.pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT pid %d: %v", tg.pid, err)
	}
	for deadline := time.Now().Add(5 * time.Second); procState(tg.pid) == "T"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still stopped 5s after SIGCONT", tg.pid)
		}
	}
	checkIntact(t, tg)
}

// TestCallbacksAbsent: a program without libgocr is dumped as before,
// without waiting: even a timeout of a nanosecond is never reached.
func TestCallbacksAbsent(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: []string{"--callback-timeout", "1ns"}, volatile: counterVolatile})
	atDump := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, atDump+20)
	checkResult(t, tg, pid)
}

// TestCallbacksPython: the callbacks work from Python through ctypes.
func TestCallbacksPython(t *testing.T) {
	needsGocr(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skipf("no python3 on this machine to run the ctypes target: %v", err)
	}
	tg := startTarget(t, "pycallbacks", libgocrPath)
	// While the oracle reads it, the interpreter's callback reopens its
	// scratch file at a number of its choosing, and the memory it
	// allocates may take a new malloc arena for the callbacks thread.
	pid := checkpointRestore(t, tg, cycleOpts{volatile: []string{"fd/", "maps/"}})
	checkResult(t, tg, pid)
}

// TestCallbacksGo: the callbacks work from Go through cgo and
// libgocr/go/gocr, run by libgocr's thread, which the Go runtime did not
// start: a dump with --leave-running tells them Continue, a dump and a
// restore Restarted.
func TestCallbacksGo(t *testing.T) {
	needsGocr(t)
	t.Run("continue", func(t *testing.T) {
		tg := startTarget(t, "gocallbacks", "continue")
		dump(t, tg.pid, t.TempDir(), "--leave-running")
		checkResult(t, tg, tg.pid)
	})
	t.Run("restarted", func(t *testing.T) {
		tg := startTarget(t, "gocallbacks", "restarted")
		// While the oracle reads it, the callback goes on: it reopens
		// its scratch file, at the lowest free fd first, and the Go
		// runtime may map memory and start a thread for the goroutines
		// that run, and gives libgocr's thread (dumped inside the
		// callback, every signal blocked) a signal mask of its own as
		// the callback returns. TestGoProgram checks Go's threads.
		volatile := []string{"fd/", "maps/", "task/", "status/Threads"}
		pid := checkpointRestore(t, tg, cycleOpts{volatile: volatile})
		checkResult(t, tg, pid)
	})
}
