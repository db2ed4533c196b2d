//go:build linux

package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/testhook"
)

// What gocr ends when it gives up, and how soon: a failed restore kills
// only the processes it created, never one that merely holds a PID it
// wanted; no wait of gocr's is endless (a process caught in vfork); and
// SIGINT/SIGTERM stop a dump or a restore within a second or two, with
// everything put back.

// dumpedTree starts the tree target, dumps it and waits until every one
// of its PIDs is free; it returns the target, its descendants' PIDs (by
// PID order), the tree as it was and the image directory.
func dumpedTree(t *testing.T) (*target, []int, []procEntry, string) {
	t.Helper()
	tg := startTargetOpts(t, "tree", startOpts{settle: 200 * time.Millisecond})
	before := settledTree(t, tg.pid, 20)
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	return tg, pids, before, dir
}

// dumpTreeViewed reads what the kernel shows of tg's tree (the oracle's
// view, before), dumps it into a new directory, and waits until the
// dump has ended tg and pids, the tree's other processes. It returns the
// view and the directory.
func dumpTreeViewed(t *testing.T, tg *target, pids []int) (treeView, string) {
	t.Helper()
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	return view, dir
}

// finishGocr waits for a gocr from startGocr to end and returns its exit
// code and the stderr lines it wrote after those already read.
func finishGocr(t *testing.T, r *runningGocr, within time.Duration) (int, []string) {
	t.Helper()
	var lines []string
	timeout := time.After(within)
	for done := false; !done; {
		select {
		case line, ok := <-r.lines:
			if !ok {
				done = true
				break
			}
			lines = append(lines, line)
		case <-timeout:
			t.Fatalf("gocr %s did not end within %v; stderr so far:\n%s", strings.Join(r.Args[1:], " "), within, strings.Join(lines, "\n"))
		}
	}
	r.Wait()
	return r.ProcessState.ExitCode(), lines
}

// assertInUse requires a failed gocr whose one line of stderr says that
// a PID it wanted is in use, naming it when pid is not 0.
func assertInUse(t *testing.T, code int, lines []string, pid int) {
	t.Helper()
	if code == 0 || len(lines) != 1 {
		t.Fatalf("want a failure with one line on stderr, got exit %d and:\n%s", code, strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "in use") || (pid != 0 && !strings.Contains(lines[0], "pid "+strconv.Itoa(pid)+" ")) {
		t.Fatalf("error %q does not say pid %d is in use", lines[0], pid)
	}
	t.Logf("the failed restore said: %s", lines[0])
}

// TestRestoreTwiceAtOnce: two restores of the same 20-process tree run at
// once, both past the check that every PID is free (the
// PauseBeforeLaunch hook holds each there until both are, then both go). Exactly one can
// have the PIDs: the other must fail saying a PID is in use, and must
// kill nothing of the winner's, whose tree must come back whole and pass
// its own check.
func TestRestoreTwiceAtOnce(t *testing.T) {
	needsGocr(t)
	tg, pids, before, dir := dumpedTree(t)
	hook, goOn := heldAt(t, testhook.PauseBeforeLaunch)
	a := startGocr(t, hook, "restore", "-D", dir, "-d")
	b := startGocr(t, hook, "restore", "-D", dir, "-d")
	waitHook(t, a, testhook.PauseBeforeLaunch)
	waitHook(t, b, testhook.PauseBeforeLaunch)
	goOn()
	codeA, linesA := finishGocr(t, a, gocrTimeout)
	codeB, linesB := finishGocr(t, b, gocrTimeout)
	switch {
	case codeA == 0 && codeB != 0:
		assertInUse(t, codeB, linesB, 0)
	case codeB == 0 && codeA != 0:
		assertInUse(t, codeA, linesA, 0)
	default:
		t.Fatalf("want exactly one restore to succeed; first exit %d:\n%s\nsecond exit %d:\n%s",
			codeA, strings.Join(linesA, "\n"), codeB, strings.Join(linesB, "\n"))
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		after := treeEntries(t, tg.pid)
		if slices.Equal(before, after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the winner's tree is not what was dumped\nbefore the dump:\n%safter both restores:\n%s", entriesString(before), entriesString(after))
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkResult(t, tg, tg.pid)
	waitAllGone(t, pids, "the root reported PASS")
}

// TestRestorePidTakenMeanwhile: while a restore of the tree holds after
// finding every PID free, an unrelated process takes one of them (the
// last, so the restore has created several processes by the time it
// fails). The restore must fail naming that PID, kill every process it
// created, and leave the unrelated one running; once it is gone, the same
// images restore and pass.
func TestRestorePidTakenMeanwhile(t *testing.T) {
	needsGocr(t)
	tg, pids, _, dir := dumpedTree(t)
	hook, goOn := heldAt(t, testhook.PauseBeforeLaunch)
	r := startGocr(t, hook, "restore", "-D", dir, "-d")
	waitHook(t, r, testhook.PauseBeforeLaunch)
	held := pids[len(pids)-1]
	holder := takePid(t, held)
	goOn()
	code, lines := finishGocr(t, r, gocrTimeout)
	assertInUse(t, code, lines, held)
	if s := procState(held); s != "S" {
		t.Fatalf("the unrelated process holding pid %d is in state %q after the failed restore, want S (sleeping)", held, s)
	}
	if ppid := readPpid(t, held); ppid != holder.Process.Pid {
		t.Fatalf("pid %d has parent %d after the failed restore, want takepid %d: not the unrelated process", held, ppid, holder.Process.Pid)
	}
	for _, pid := range append([]int{tg.pid}, pids...) {
		if pid != held {
			assertNoProcess(t, pid)
		}
	}
	releasePid(t, holder, held)
	pid := restoreDetached(t, tg, dir, nil)
	checkResult(t, tg, pid)
	waitAllGone(t, pids, "the root reported PASS")
}

// takePid makes an unrelated process (takepid) hold pid and returns the
// takepid command; its child has the PID. Cleanup ends both.
func takePid(t *testing.T, pid int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(targets["takepid"][0], strconv.Itoa(pid))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start takepid: %v", err)
	}
	t.Cleanup(func() { releasePid(t, cmd, pid) })
	taken := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		taken <- line
	}()
	select {
	case line := <-taken:
		if strings.TrimSpace(line) != "taken" {
			cmd.Wait()
			t.Fatalf("takepid %d could not take the pid: %v (said %q)", pid, cmd.ProcessState, line)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("takepid %d did not take the pid in 10 s", pid)
	}
	return cmd
}

// releasePid ends the process takePid made hold pid (by PID, once it is
// known to be takepid's child), then takepid, and waits until pid is free.
func releasePid(t *testing.T, cmd *exec.Cmd, pid int) {
	if cmd.ProcessState != nil {
		return
	}
	if ppid, err := ppidOf(pid); err == nil && ppid == cmd.Process.Pid {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !waitGone(pid, pidGoneTimeout) {
		t.Errorf("pid %d held by takepid still present %v after it ended", pid, pidGoneTimeout)
	}
}

func readPpid(t *testing.T, pid int) int {
	t.Helper()
	ppid, err := ppidOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

func ppidOf(pid int) (int, error) {
	e, err := readProcEntry(pid)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return e.ppid, nil
}

// startVforker starts the vforker target and waits until its parent is
// caught in vfork (state D); release lets the child exit and waits until
// the parent is back from vfork.
func startVforker(t *testing.T) (tg *target, release func()) {
	t.Helper()
	tg = startTarget(t, "vforker")
	deadline := time.Now().Add(5 * time.Second)
	for procState(tg.pid) != "D" {
		if time.Now().After(deadline) {
			t.Fatalf("vforker pid %d is in state %q, want D (waiting in vfork)", tg.pid, procState(tg.pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tg, func() {
		t.Helper()
		if err := os.WriteFile(tg.result+".release", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for procState(tg.pid) == "D" {
			if time.Now().After(deadline) {
				t.Fatalf("vforker pid %d still in vfork 5 s after its child was let go", tg.pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestDumpVforkParent: the parent of a vfork child that does not exec
// never answers PTRACE_INTERRUPT. The dump must not wait for it forever:
// it fails in one line naming the vfork, within the bound on a wait for a
// stop (5 s) and a margin, leaves no dump, and the process, untraced,
// goes on once its child exits and passes its own check.
func TestDumpVforkParent(t *testing.T) {
	needsGocr(t)
	tg, release := startVforker(t)
	dir := t.TempDir()
	start := time.Now()
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
	took := time.Since(start)
	assertRefused(t, r, []string{"pid " + strconv.Itoa(tg.pid), "vfork"}, nil)
	if took > 10*time.Second {
		t.Errorf("the dump took %v to give up, want about 5 s", took)
	}
	assertNoInventory(t, dir)
	if tp := tracerPid(t, tg.pid); tp != 0 {
		t.Fatalf("vforker pid %d still traced by %d after the failed dump", tg.pid, tp)
	}
	release()
	checkIntact(t, tg)
}

// TestSignalStopsDump: SIGTERM to gocr mid-dump ends it within 2 s, in
// one line saying it was interrupted; the dump leaves no complete-looking
// image and the target runs on untraced as it was, passing its own check.
// gocr dies by the signal. Twice: while gocr waits for a process to stop
// (caught in vfork, it never does), and while the parasite is in the
// process (the PauseAfterInfect hook holds gocr there).
func TestSignalStopsDump(t *testing.T) {
	needsGocr(t)
	t.Run("WaitingForStop", func(t *testing.T) {
		tg, release := startVforker(t)
		dir := t.TempDir()
		r := startGocr(t, "", "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
		// TracerPid names the tracer thread (fs/proc/array.c
		// task_state), one of gocr's.
		deadline := time.Now().Add(5 * time.Second)
		for tp := tracerPid(t, tg.pid); tp == 0 || procState(tp) == "" || !isThreadOf(r.Process.Pid, tp); tp = tracerPid(t, tg.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("gocr (pid %d) did not seize pid %d in 5 s", r.Process.Pid, tg.pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
		stopGocr(t, r)
		assertNoInventory(t, dir)
		if tp := tracerPid(t, tg.pid); tp != 0 {
			t.Fatalf("vforker pid %d still traced by %d after gocr stopped", tg.pid, tp)
		}
		release()
		checkIntact(t, tg)
	})
	t.Run("ParasiteIn", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		dir := t.TempDir()
		r := startGocr(t, testhook.Setting(testhook.PauseAfterInfect, "30s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
		waitHook(t, r, testhook.PauseAfterInfect)
		if !hasParasite(tg.pid) {
			t.Fatalf("gocr holds after infection, but pid %d has no parasite mapping", tg.pid)
		}
		stopGocr(t, r)
		assertNoInventory(t, dir)
		if hasParasite(tg.pid) {
			t.Fatalf("pid %d still has the parasite mapped after gocr stopped", tg.pid)
		}
		checkIntactCounter(t, tg)
	})
}

// TestSignalStopsRestore: SIGTERM to gocr while the restored tree is
// parked in the restorer (the PauseBeforeFinish hook) ends the restore
// within 2 s, in one line; every process it created is gone at once, and
// the same images restore afterwards.
func TestSignalStopsRestore(t *testing.T) {
	needsGocr(t)
	tg, pids, _, dir := dumpedTree(t)
	r := startGocr(t, testhook.Setting(testhook.PauseBeforeFinish, "30s"), "restore", "-D", dir, "-d")
	waitHook(t, r, testhook.PauseBeforeFinish)
	all := append([]int{tg.pid}, pids...)
	for _, pid := range all {
		if procState(pid) == "" {
			t.Fatalf("pid %d does not exist with the restore held before finishing", pid)
		}
	}
	stopGocr(t, r)
	for _, pid := range all {
		assertNoProcess(t, pid)
	}
	pid := restoreDetached(t, tg, dir, nil)
	checkResult(t, tg, pid)
	waitAllGone(t, pids, "the root reported PASS")
}

// stopGocr sends SIGTERM to a gocr from startGocr and requires it to end
// within 2 s, by that signal, after one line on stderr saying it was
// interrupted.
func stopGocr(t *testing.T, r *runningGocr) {
	t.Helper()
	start := time.Now()
	if err := r.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, lines := finishGocr(t, r, 2*time.Second)
	t.Logf("gocr ended %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if len(lines) != 1 || !strings.Contains(lines[0], "interrupted by SIGTERM") {
		t.Fatalf("gocr stopped by SIGTERM (exit %d) said, want one line saying it was interrupted:\n%s", code, strings.Join(lines, "\n"))
	}
	if ws, ok := r.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("gocr ended with %v, want killed by SIGTERM", r.ProcessState)
	}
	t.Logf("gocr said: %s", lines[0])
}

// isThreadOf reports whether tid is a thread of process pid.
func isThreadOf(pid, tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err == nil
}
