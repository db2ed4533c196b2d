//go:build linux

package test

import (
	"bufio"
	"fmt"
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
// wanted.

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
// PauseBeforeLaunch hook holds each there, then both go). Exactly one can
// have the PIDs: the other must fail saying a PID is in use, and must
// kill nothing of the winner's, whose tree must come back whole and pass
// its own check.
func TestRestoreTwiceAtOnce(t *testing.T) {
	needsGocr(t)
	tg, pids, before, dir := dumpedTree(t)
	hook := testhook.Setting(testhook.PauseBeforeLaunch, "1s")
	a := startGocr(t, hook, "restore", "-D", dir, "-d")
	b := startGocr(t, hook, "restore", "-D", dir, "-d")
	waitHook(t, a, testhook.PauseBeforeLaunch)
	waitHook(t, b, testhook.PauseBeforeLaunch)
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
	r := startGocr(t, testhook.Setting(testhook.PauseBeforeLaunch, "2s"), "restore", "-D", dir, "-d")
	waitHook(t, r, testhook.PauseBeforeLaunch)
	held := pids[len(pids)-1]
	holder := takePid(t, held)
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
