//go:build linux

package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The state of one process: signal dispositions and pending signals, blocked
// syscalls that must restart, registers, process attributes, and an
// interpreter's heap.

// TestSignals: dispositions, the alternate signal stack, the blocked mask
// and pending signals of both queues come back, and every pending signal
// is delivered once, with its payload, in the kernel's order.
func TestSignals(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "signals")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestSleeper: a process dumped inside nanosleep sleeps on as the kernel
// restarts the call: no EINTR, never shorter than asked.
func TestSleeper(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "sleeper")
	pid := checkpointRestore(t, tg, cycleOpts{})
	// Longer than one 3 s sleep, so one completes after the restore and
	// its length is checked.
	time.Sleep(3500 * time.Millisecond)
	checkResult(t, tg, pid)
}

// TestSleepsResumedAfterStop: threads whose sleeps were stopped and
// continued before the dump wait in restart_syscall(2). Restored, each is
// back in its own call rather than failing with EINTR, and a sleep that
// was given a pointer for the time left sleeps only what was left.
func TestSleepsResumedAfterStop(t *testing.T) {
	needsRoot(t)
	tg := startStoppedSleepers(t)
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
	t.Log(logTail(tg.logPath, 1))
}

// TestRefusedRestartUnknown: a thread in restart_syscall whose code
// does not show the call it restarts (glibc's generic syscall(2) takes the
// number in a register) would fail with EINTR after a restore: refused
// at dump, and every sleep goes on untouched.
func TestRefusedRestartUnknown(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startStoppedSleepers(t, "raw")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"thread", "restart_syscall", "cannot tell"}, nil)
	checkIntact(t, tg)
}

// startStoppedSleepers starts the sleepstop target, stops and continues
// it, and returns once its sleeps have run 1.2 s: sleeping one in full
// again after that would show (the target allows 0.6 s).
func startStoppedSleepers(t *testing.T, args ...string) *target {
	t.Helper()
	tg := startTarget(t, "sleepstop", args...)
	started := time.Now()
	if err := syscall.Kill(tg.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the target stopped", func() bool { return procState(tg.pid) == "T" })
	if err := syscall.Kill(tg.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every sleeper in restart_syscall", func() bool {
		names := []string{"remsleep", "fullsleep", "pollwait"}
		if slices.Contains(args, "raw") {
			names = append(names, "rawsleep")
		}
		return sleepersIn(tg.pid, unix.SYS_RESTART_SYSCALL, names...)
	})
	time.Sleep(time.Until(started.Add(1200 * time.Millisecond)))
	return tg
}

// sleepersIn reports whether every thread of pid named in names is in
// system call nr (/proc/PID/task/TID/syscall, proc(5)).
func sleepersIn(pid int, nr int, names ...string) bool {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	in := 0
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join(dir, task.Name(), "comm"))
		if err != nil || !slices.Contains(names, strings.TrimSpace(string(comm))) {
			continue
		}
		sc, err := os.ReadFile(filepath.Join(dir, task.Name(), "syscall"))
		if err != nil {
			return false
		}
		if f := strings.Fields(string(sc)); len(f) == 0 || f[0] != strconv.Itoa(nr) {
			return false
		}
		in++
	}
	return in == len(names)
}

// TestPauser: a process dumped in pause(2) stays in it until its SIGTERM
// handler runs, with no earlier wake-up.
func TestPauser(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pauser")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestRegisters: r12-r15, MXCSR and every vector register (AVX, or
// AVX-512 with its mask registers where the CPU has it) come back bit for
// bit.
func TestRegisters(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "regs", startOpts{settle: 200 * time.Millisecond})
	// The target picks the widest state the CPU offers; make sure it did,
	// so a wrong CPU check cannot shrink what is verified.
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatalf("read /proc/cpuinfo: %v", err)
	}
	flags := cpuFlags(cpuinfo)
	want := "avx ymm0-15"
	if flags["avx512f"] && flags["avx512bw"] {
		want = "avx512 zmm0-31 k0-7"
	}
	logb, err := os.ReadFile(tg.logPath)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	if !bytes.Contains(logb, []byte("vector state: "+want)) {
		t.Fatalf("regs target log %q does not say it holds %q", logb, want)
	}
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// targetNeedsCPU names the CPU features (as /proc/cpuinfo flags) a target
// cannot run without; a test of it on a CPU without them skips, saying
// so. The regs target fills the AVX registers.
var targetNeedsCPU = map[string][]string{"regs": {"avx"}}

// cpuHas tells whether this CPU has the /proc/cpuinfo flag feature.
func cpuHas(t *testing.T, feature string) bool {
	t.Helper()
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatalf("read /proc/cpuinfo: %v", err)
	}
	return cpuFlags(cpuinfo)[feature]
}

func cpuFlags(cpuinfo []byte) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				m[f] = true
			}
			break
		}
	}
	return m
}

// TestProcessAttributes: rlimits, personality, the mm fields, auxv, exe,
// cmdline, prctl state and umask come back exactly; an orphan the target
// adopted as a child subreaper is its child again, in its own session.
func TestProcessAttributes(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "procattrs")
	pid := checkpointRestoreTree(t, tg)
	checkResult(t, tg, pid)
}

// TestCapabilities: a process's capability sets (effective, permitted,
// inheritable, bounding, ambient), securebits, no_new_privs, uids, gids
// and supplementary groups come back exactly, in each of its threads: as
// root having dropped some (root), and as uid 1000 having kept some across
// the uid change (user).
func TestCapabilities(t *testing.T) {
	for _, mode := range []string{"root", "user"} {
		t.Run(mode, func(t *testing.T) {
			needsRoot(t)
			tg := startTargetOpts(t, "caps", startOpts{args: []string{mode}})
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestPython: a python3 interpreter's heap (a dict, a growing list and a
// running sha256 kept in step) is consistent after the restore and its
// loop goes on.
func TestPython(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pystate")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestStoppedJob: a stopped job (targets/stopped.c: a root stopped by
// SIGSTOP and its child by SIGTSTP, each with a second thread) is dumped
// while stopped and comes back stopped, every thread in state T, until a
// SIGCONT resumes it; the target checks it was continued exactly once and
// that its parent sees the child stopped and then continued. Stopped, it
// is as it was dumped (the oracle: each thread's signal mask, the fds, no
// gocr lifeline among them), and so it is dumped and restored a second
// time while still stopped.
func TestStoppedJob(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "stopped", startOpts{})
	waitStopped(t, tg.pid, "before the dump")
	pids := trackTree(t, tg.pid)
	if len(pids) != 1 {
		t.Fatalf("stopped target %d has children %v, want one", tg.pid, pids)
	}
	child := pids[0]
	waitStopped(t, child, "before the dump")
	pid := tg.pid
	for _, round := range []string{"the restore", "a second restore while stopped"} {
		pid = checkpointRestoreTree(t, tg)
		for _, p := range []int{pid, child} {
			waitStopped(t, p, "after "+round)
		}
	}
	// Stopped it stays: nothing continues it by the way.
	time.Sleep(300 * time.Millisecond)
	for _, p := range []int{pid, child} {
		waitStopped(t, p, "300 ms after the restore")
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT pid %d: %v", pid, err)
	}
	checkResult(t, tg, pid)
}

// TestStoppedSignalled: a sleep(1) stopped by SIGSTOP and restored is
// as it was (the oracle: its mask, its fds), and signals do to it what
// they do to a twin stopped and never dumped: a SIGTERM stays pending
// while it is stopped (kernel/signal.c complete_signal: a stopped thread
// does not take it, wants_signal), and SIGCONT then ends it by SIGTERM.
func TestStoppedSignalled(t *testing.T) {
	needsGocr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sleep: %v", err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %d: %v", pid, err)
		}
		waitStopped(t, pid, "before the dump")
		return cmd
	}
	twin, dumped := start(), start()
	pid := dumped.Process.Pid
	before, err := readTreeView(t, pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", pid, err)
	}
	dir := t.TempDir()
	dump(t, pid, dir)
	dumped.Wait()
	restore(t, nil, dir, "-d")
	waitStopped(t, pid, "after the restore")
	checkTreeView(t, pid, before, nil)

	pending := func(p int) string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			shd := statusField(t, p, "ShdPnd")
			if n, err := strconv.ParseUint(shd, 16, 64); err == nil && n&(1<<(syscall.SIGTERM-1)) != 0 {
				return shd
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d: ShdPnd %s 5 s after a SIGTERM, want SIGTERM pending", p, shd)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, p := range []int{twin.Process.Pid, pid} {
		if err := syscall.Kill(p, syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM %d: %v", p, err)
		}
	}
	tw, re := pending(twin.Process.Pid), pending(pid)
	if tw != re {
		t.Fatalf("pending after SIGTERM: restored %s, twin never dumped %s", re, tw)
	}
	waitStopped(t, twin.Process.Pid, "after SIGTERM (twin)")
	waitStopped(t, pid, "after SIGTERM")
	for _, p := range []int{twin.Process.Pid, pid} {
		if err := syscall.Kill(p, syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT %d: %v", p, err)
		}
	}
	if err := twin.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("twin after SIGCONT: %v, want terminated by SIGTERM", err)
	}
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored pid %d still %s %v after SIGCONT, want ended by its pending SIGTERM", pid, procState(pid), pidGoneTimeout)
	}
}

// TestStoppedJobOwnGroup: a stopped job leading its own process group in
// the session, as a shell starts one, would be orphaned by gocr restore -d
// exiting (its parent), and the kernel would send it SIGHUP and SIGCONT:
// that restore is refused, leaving nothing behind; restored without -d,
// with gocr staying its parent, it comes back stopped and passes once
// continued, and gocr exits with its status.
func TestStoppedJobOwnGroup(t *testing.T) {
	needsGocr(t)
	tg := startTargetOpts(t, "stopped", startOpts{pgroup: true})
	waitStopped(t, tg.pid, "before the dump")
	pids := trackTree(t, tg.pid)
	for _, p := range pids {
		waitStopped(t, p, "before the dump")
	}
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")

	r := runGocr(t, nil, "restore", "-D", dir, "-d")
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "stopped", "orphan", "without -d"}, nil)
	for _, p := range append([]int{tg.pid}, pids...) {
		assertNoProcess(t, p)
	}

	fr := startForegroundRestore(t, tg, dir)
	for _, p := range append([]int{tg.pid}, pids...) {
		waitStopped(t, p, "after the restore")
	}
	checkTreeView(t, tg.pid, before, nil)
	if err := syscall.Kill(tg.pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT pid %d: %v", tg.pid, err)
	}
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM pid %d: %v", tg.pid, err)
	}
	fr.waitExit(t)
	if v := waitResult(t, tg, tg.pid); v != "PASS" {
		t.Fatalf("target %s: %s\nlast 20 lines of its log:\n%s", tg.name, v, logTail(tg.logPath, 20))
	}
	if code := fr.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("gocr restore exited with %v, want 0 (the target's status)\n%s", fr.cmd.ProcessState, fr.output())
	}
}

// waitStopped waits until every thread of pid is stopped by a signal
// (state T in /proc/PID/task/TID/stat, proc(5)), and fails if one is not
// within 5 s.
func waitStopped(t *testing.T, pid int, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		states := threadStates(t, pid)
		all := len(states) > 0
		for _, s := range states {
			all = all && s == "T"
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d %s: thread states %v, want every thread stopped (T)", pid, when, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// threadStates maps each thread of pid to its state letter.
func threadStates(t *testing.T, pid int) map[int]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatalf("list threads of pid %d: %v", pid, err)
	}
	out := map[int]string{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			continue // exited meanwhile
		}
		// The state follows the last ')' (proc(5)).
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
			out[tid] = string(b[i+2])
		}
	}
	return out
}
