//go:build linux

package test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A target's life in a test: started and waited for until it is ready,
// asked for its verdict, and killed by PID, original or restored, with its
// descendants when the test ends.

// target is one started target program.
type target struct {
	name    string
	dir     string // per-test directory holding result, ready file and log
	result  string
	logPath string
	pid     int
	cmd     *exec.Cmd
	done    chan struct{} // closed once the original process is reaped
}

type startOpts struct {
	args   []string
	stdin  *os.File      // default /dev/null
	settle time.Duration // extra wait after the ready file appears
	wrap   []string      // argv run in front of the target (setpriv)
	binary string        // replaces the target's executable (setuid copy)
	pgroup bool          // start it in a process group of its own, as a shell starts a job
	pgid   int           // start it in this process group (of the test's session)
	extra  []*os.File    // its fds 3, 4, ... (exec.Cmd.ExtraFiles)
}

func startTarget(t *testing.T, name string, args ...string) *target {
	t.Helper()
	return startTargetOpts(t, name, startOpts{args: args})
}

func startTargetOpts(t *testing.T, name string, o startOpts) *target {
	t.Helper()
	if err := targetErrs[name]; err != nil {
		t.Fatalf("target %s unavailable: %v", name, err)
	}
	for _, feature := range targetNeedsCPU[name] {
		if !cpuHas(t, feature) {
			t.Skipf("this CPU lacks %s, which target %s needs to have state worth checking", feature, name)
		}
	}
	prefix, ok := targets[name]
	if !ok {
		t.Fatalf("unknown target %q", name)
	}
	prefix = append([]string(nil), prefix...)
	if o.binary != "" {
		prefix[0] = o.binary
	}
	dir := t.TempDir()
	tg := &target{
		name:    name,
		dir:     dir,
		result:  filepath.Join(dir, "result"),
		logPath: filepath.Join(dir, "log"),
		done:    make(chan struct{}),
	}
	logf, err := os.Create(tg.logPath)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	defer logf.Close()
	stdin := o.stdin
	if stdin == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			t.Fatalf("open %s: %v", os.DevNull, err)
		}
		defer stdin.Close()
	}
	argv := append(append(append([]string(nil), o.wrap...), prefix...), tg.result)
	argv = append(argv, o.args...)
	tg.cmd = exec.Command(argv[0], argv[1:]...)
	tg.cmd.Stdin = stdin
	tg.cmd.ExtraFiles = o.extra
	tg.cmd.Stdout = logf
	tg.cmd.Stderr = logf
	tg.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: o.pgroup || o.pgid != 0, Pgid: o.pgid}
	if err := tg.cmd.Start(); err != nil {
		t.Fatalf("start target %s: %v", name, err)
	}
	tg.pid = tg.cmd.Process.Pid
	// Only *os.File stdio, so Wait returns as soon as the process is reaped.
	go func() {
		tg.cmd.Wait()
		close(tg.done)
	}()
	t.Cleanup(func() { tg.killOriginal(t) })

	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := os.Stat(tg.result + ".ready"); err == nil {
			break
		}
		if tg.exited() {
			t.Fatalf("target %s (pid %d) exited before it was ready: %s\n%s",
				name, tg.pid, tg.cmd.ProcessState, tg.diagnostics())
		}
		if time.Now().After(deadline) {
			t.Fatalf("target %s (pid %d) not ready after %v\n%s", name, tg.pid, readyTimeout, tg.diagnostics())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o.settle == 0 {
		// Lets a target that just created its ready file enter the
		// blocking call it is about (pause, read) before it is signalled.
		o.settle = 100 * time.Millisecond
	}
	time.Sleep(o.settle)
	return tg
}

func (tg *target) exited() bool {
	select {
	case <-tg.done:
		return true
	default:
		return false
	}
}

// killOriginal SIGKILLs the process this test started and reaps it. The
// os.Process handle (a pidfd) cannot reach a later process that reuses the
// PID, such as the restored one.
func (tg *target) killOriginal(t *testing.T) {
	if tg.exited() {
		return
	}
	if err := tg.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill target %s pid %d: %v", tg.name, tg.pid, err)
	}
	select {
	case <-tg.done:
	case <-time.After(pidGoneTimeout):
		t.Errorf("target %s pid %d not reaped %v after SIGKILL", tg.name, tg.pid, pidGoneTimeout)
	}
}

// waitDead asserts that the original process died (gocr dump kills it) and
// reaps it, so its PID is free for the restore.
func (tg *target) waitDead(t *testing.T, why string) {
	t.Helper()
	select {
	case <-tg.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("target %s pid %d still running 10s after %s", tg.name, tg.pid, why)
	}
}

func (tg *target) diagnostics() string {
	res, err := os.ReadFile(tg.result)
	resStr := strings.TrimSpace(string(res))
	if err != nil {
		resStr = fmt.Sprintf("(%v)", err)
	}
	crash := ""
	if c := logCrash(tg.logPath, 12); c != "" {
		crash = fmt.Sprintf("where the runtime or a signal ended it, in %s:\n%s\n", tg.logPath, c)
	}
	return fmt.Sprintf("result file: %s\n%slast 20 lines of %s:\n%s", resStr, crash, tg.logPath, logTail(tg.logPath, 20))
}

// crashStarts are how a crash report begins in a target's log: the Go
// runtime's (runtime/panic.go fatal, throw; runtime/signal_unix.go
// sighandler) and glibc's (an abort's message). A crashed Go target's
// log ends in goroutine dumps, which its last lines alone do not explain.
var crashStarts = []string{"fatal error:", "panic:", "unexpected signal", "SIGSEGV:", "SIGBUS:", "SIGILL:", "SIGFPE:", "runtime: ", "fatal: morestack"}

// logCrash returns the first line of a log's first 64 KiB that starts a
// crash report, and the n lines after it; "" if there is none.
func logCrash(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	k, _ := io.ReadFull(f, b)
	lines := strings.Split(string(b[:k]), "\n")
	for i, l := range lines {
		for _, c := range crashStarts {
			if strings.HasPrefix(l, c) {
				return "\t" + strings.Join(lines[i:min(i+1+n, len(lines))], "\n\t")
			}
		}
	}
	return ""
}

// logTail returns the last n lines of a log, reading at most its last
// 64 KiB: a broken restore can leave a huge sparse log behind.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(open log: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(stat log: %v)", err)
	}
	const window = 64 << 10
	off := max(st.Size()-window, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// belongsTo reports whether pid is this test's target: its command line
// names the test's private directory (the result path argument) or its
// executable is the target binary.
func (tg *target) belongsTo(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && bytes.Contains(cmdline, []byte(tg.dir)) {
		return true
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && exe == tg.cmd.Path
}

// killRestored SIGKILLs a restored copy of tg (not our child: init reaps
// it) if pid still belongs to tg, and waits until /proc/PID is gone so the
// PID can be restored into again.
func (tg *target) killRestored(t *testing.T, pid int) {
	if !gone(pid) && tg.belongsTo(pid) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill restored %s pid %d: %v", tg.name, pid, err)
		}
	}
	// Reaped, not only ended: the caller may restore it again at once.
	if tg.belongsTo(pid) && !waitReaped(pid, pidGoneTimeout) {
		t.Errorf("restored %s pid %d still present %v after SIGKILL", tg.name, pid, pidGoneTimeout)
	}
}

// trackTree records root's descendants (not root: the harness handles it)
// with their command lines and, in cleanup, SIGKILLs any of those PIDs that
// still runs the same command line, original or restored, and waits for
// it to go. It returns the PIDs.
func trackTree(t *testing.T, root int) []int {
	t.Helper()
	cmdlines := map[int]string{}
	var pids []int
	for _, e := range treeEntries(t, root) {
		if e.pid == root {
			continue
		}
		pids = append(pids, e.pid)
		cmdlines[e.pid] = cmdlineOf(e.pid)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			// A zombie's cmdline is empty: nothing to kill.
			if !gone(pid) && cmdlines[pid] != "" && cmdlineOf(pid) == cmdlines[pid] {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					t.Errorf("kill tree pid %d: %v", pid, err)
				}
			}
		}
		for _, pid := range pids {
			if cmdlines[pid] != "" && cmdlineOf(pid) == cmdlines[pid] && !waitGone(pid, pidGoneTimeout) {
				t.Errorf("tree pid %d still present %v after SIGKILL", pid, pidGoneTimeout)
			}
		}
	})
	return pids
}

// waitAllGone waits until none of pids exists, so they can be restored.
func waitAllGone(t *testing.T, pids []int, why string) {
	t.Helper()
	for _, pid := range pids {
		if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("pid %d (state %s) still present %v after %s", pid, procState(pid), pidGoneTimeout, why)
		}
	}
}

// checkResult sends SIGTERM to pid (tg or its restored copy) and requires
// the target to report PASS and exit.
func checkResult(t *testing.T, tg *target, pid int) {
	t.Helper()
	if b, err := os.ReadFile(tg.result); err == nil {
		t.Fatalf("target %s reported %q before it was asked\n%s", tg.name, b, tg.diagnostics())
	}
	if gone(pid) || !tg.belongsTo(pid) {
		t.Fatalf("target %s pid %d is not running before the check\n%s", tg.name, pid, tg.diagnostics())
	}
	// While the original is alive and unreaped, pid can only be it.
	original := pid == tg.pid && !tg.exited()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM pid %d: %v", pid, err)
	}
	verdict := waitResult(t, tg, pid)
	if verdict != "PASS" {
		t.Fatalf("target %s (pid %d): %s\nlast 20 lines of its log:\n%s", tg.name, pid, verdict, logTail(tg.logPath, 20))
	}
	if original {
		select {
		case <-tg.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("target %s pid %d wrote PASS but did not exit", tg.name, pid)
		}
		if code := tg.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("target %s passed but exited with %v", tg.name, tg.cmd.ProcessState)
		}
		return
	}
	// A restored process is not our child; PID 1 reaps it.
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored target %s pid %d wrote PASS but is still running (state %s)", tg.name, pid, procState(pid))
	}
}

// waitResult waits for tg's verdict: "PASS" or "FAIL: reason".
func waitResult(t *testing.T, tg *target, pid int) string {
	t.Helper()
	deadline := time.Now().Add(resultTimeout)
	for {
		// Looked at before reading, so a result written just before the
		// exit is still seen.
		exited := gone(pid)
		b, err := os.ReadFile(tg.result)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			v := strings.TrimSpace(string(b))
			if v == "PASS" || strings.HasPrefix(v, "FAIL") {
				return v
			}
			t.Fatalf("target %s wrote an unexpected result %q", tg.name, b)
		}
		if exited {
			t.Fatalf("target %s pid %d exited without a complete result after SIGTERM\n%s", tg.name, pid, tg.diagnostics())
		}
		if time.Now().After(deadline) {
			t.Fatalf("target %s pid %d: no result %v after SIGTERM (state %s)\n%s",
				tg.name, pid, resultTimeout, procState(pid), tg.diagnostics())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLogCrash: a crash report is found at its start, and a log without
// one gives nothing.
func TestLogCrash(t *testing.T) {
	dir := t.TempDir()
	crashed := filepath.Join(dir, "crashed")
	os.WriteFile(crashed, []byte("ready\nfatal error: unexpected signal during runtime execution\n[signal SIGSEGV: segmentation violation]\n\ngoroutine 1 [running]:\n"), 0o600)
	if got := logCrash(crashed, 2); !strings.Contains(got, "fatal error: unexpected signal") || !strings.Contains(got, "[signal SIGSEGV") || strings.Contains(got, "goroutine 1") {
		t.Errorf("logCrash of a crashed target's log: %q", got)
	}
	clean := filepath.Join(dir, "clean")
	os.WriteFile(clean, []byte("ready\nrunning\n"), 0o600)
	if got := logCrash(clean, 2); got != "" {
		t.Errorf("logCrash of a log without a crash: %q", got)
	}
}
