//go:build linux

// Package test holds gocr's integration tests: small target programs that
// set up some process state, get checkpointed and restored by the gocr
// binary, and then check their own state.
//
// # The target contract (modelled on CRIU's zdtm, test/zdtm/static/env00.c)
//
// A target is a C program test/targets/NAME.c (or the Python script
// test/targets/pystate.py, or the Go program test/targets/goprog), started as
//
//	target RESULT_PATH [args]
//
// with stdin /dev/null (unless a test passes a pipe) and stdout and stderr
// on one regular log file. It
//
//  1. sets up its state;
//  2. creates RESULT_PATH.ready (open+close) when setup is complete; the
//     harness may dump it from then on;
//  3. waits; its SIGTERM handler only sets a flag;
//  4. after SIGTERM verifies everything, writes "PASS\n" or
//     "FAIL: <reason>\n" to RESULT_PATH (opened by path) and exits 0 or 1.
//
// Targets never depend on their parent or on how long the dump and restore
// pause them. Shared C scaffolding is in targets/target.h.
//
// # The harness
//
// TestMain compiles every target once with gcc -O1 -g (counter also with
// -static) into a temporary directory. The gocr binary is built on first use
// with `go build -o DIR/gocr gocr` from the module root, or taken from
// $GOCR_BIN. Each test runs
//
//	startTarget -> checkpointRestore (gocr dump, reap, gocr restore -d) -> checkResult
//
// checkResult sends SIGTERM to the (restored) PID and waits up to 20 s for
// the verdict; a FAIL shows the target's reason and the last 20 lines of its
// log. Processes are killed only by PID, after checking that the PID still
// belongs to the test's target, and original targets are reaped.
//
// Integration tests need root (gocr ptraces and clone3s with set_tid); they
// skip with a reason otherwise.
//
// GOCR_TEST_STANDALONE=1 skips gocr entirely: every target test runs
// start -> check, which shows the targets themselves pass without gocr.
// Tests that are about gocr alone (bad input, --leave-running, restore
// without -d) skip in that mode.
//
// TestTargetsDetectCorruption (corruption_test.go, root and gdb) damages one
// piece of each ready target's state with gdb and requires a FAIL naming
// it, so a target that checks nothing cannot go unnoticed.
package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout  = 15 * time.Second
	resultTimeout = 20 * time.Second
	gocrTimeout   = 60 * time.Second
	// PID 1 reaps orphaned zombies 1-2 s late on this machine (DESIGN.md).
	pidGoneTimeout = 10 * time.Second
)

var (
	standalone = os.Getenv("GOCR_TEST_STANDALONE") == "1"

	moduleRoot string
	binDir     string
	// targets maps a target name to the argv prefix that runs it.
	targets = map[string][]string{}
	// targetErrs records targets that could not be prepared, so only the
	// tests that need them fail.
	targetErrs = map[string]error{}

	gocrOnce sync.Once
	gocrPath string
	gocrErr  error
)

// cTargets are compiled from test/targets/NAME.c; the value is extra gcc
// flags. counter-static is the same source linked statically.
var cTargets = map[string]struct {
	src   string
	flags []string
}{
	"counter":        {"counter.c", nil},
	"counter-static": {"counter.c", []string{"-static"}},
	"memory":         {"memory.c", nil},
	"seccomp_exec":   {"seccomp_exec.c", nil}, // a wrapper (startOpts.wrap), not a target
	"fds":            {"fds.c", nil},
	"signals":        {"signals.c", nil},
	"sleeper":        {"sleeper.c", nil},
	"pipe_reader":    {"pipe_reader.c", nil},
	"pauser":         {"pauser.c", nil},
	"regs":           {"regs.c", nil},
	"threads":        {"threads.c", []string{"-pthread"}},
	"eventfd":        {"eventfd.c", nil},
	"epoll":          {"epoll.c", nil},
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: getwd: %v\n", err)
		return 1
	}
	moduleRoot = filepath.Dir(wd)
	binDir, err = os.MkdirTemp("", "gocr-test-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// Setuid copies and setpriv'ed targets run as nobody and must be able
	// to reach the binaries.
	if err := os.Chmod(binDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "harness: chmod %s: %v\n", binDir, err)
		return 1
	}
	if err := closeInheritedFDs(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	if err := buildTargets(filepath.Join(wd, "targets")); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	return m.Run()
}

// closeInheritedFDs marks every fd above stderr close-on-exec. os/exec
// passes only fds 0-2 on purpose, but an fd this test binary inherited
// without O_CLOEXEC (from a CI runner, say) would reach every target and
// become part of what gocr must dump.
func closeInheritedFDs() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list own fds: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The fd that listed the directory is closed by now: EBADF.
		syscall.CloseOnExec(fd)
	}
	return nil
}

func buildTargets(srcDir string) error {
	for name, tgt := range cTargets {
		out := filepath.Join(binDir, name)
		args := append([]string{"-O1", "-g", "-Wall", "-Werror"}, tgt.flags...)
		args = append(args, "-o", out, filepath.Join(srcDir, tgt.src))
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("compile target %s: %w\n%s", name, err, b)
		}
		targets[name] = []string{out}
	}
	// goprog is a main package inside module gocr that uses only the
	// standard library, built with the same go as gocr itself.
	goprog := filepath.Join(binDir, "goprog")
	cmd := exec.Command("go", "build", "-o", goprog, "./test/targets/goprog")
	cmd.Dir = moduleRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		targetErrs["goprog"] = fmt.Errorf("go build ./test/targets/goprog: %w\n%s", err, b)
	} else {
		targets["goprog"] = []string{goprog}
	}
	// pyenv's python3 is a shell shim; run the real interpreter so the
	// target's PID is the interpreter itself and not a wrapper's child.
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		targetErrs["pystate"] = fmt.Errorf("find python3 interpreter: %w", err)
		return nil
	}
	python := strings.TrimSpace(string(out))
	targets["pystate"] = []string{python, filepath.Join(srcDir, "pystate.py")}
	return nil
}

// gocrBinary builds gocr once per test binary run; every test that needs it
// fails with the same build error until gocr builds.
func gocrBinary(t *testing.T) string {
	t.Helper()
	gocrOnce.Do(func() {
		if p := os.Getenv("GOCR_BIN"); p != "" {
			gocrPath = p
			return
		}
		gocrPath = filepath.Join(binDir, "gocr")
		cmd := exec.Command("go", "build", "-o", gocrPath, "github.com/gocr/gocr")
		cmd.Dir = moduleRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			gocrErr = fmt.Errorf("go build gocr in %s: %w\n%s", moduleRoot, err, b)
		}
	})
	if gocrErr != nil {
		t.Fatal(gocrErr)
	}
	return gocrPath
}

// needsRoot skips integration tests when not root; standalone runs need no
// privileges.
func needsRoot(t *testing.T) {
	t.Helper()
	if !standalone && os.Geteuid() != 0 {
		t.Skip("needs root: gocr ptraces its target and restores PIDs with clone3 set_tid")
	}
}

// needsGocr skips tests that exercise gocr itself in standalone mode.
func needsGocr(t *testing.T) {
	t.Helper()
	if standalone {
		t.Skip("GOCR_TEST_STANDALONE=1: this test is about gocr itself, there is no target to verify alone")
	}
	needsRoot(t)
}

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
	tg.cmd.Stdout = logf
	tg.cmd.Stderr = logf
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
	return fmt.Sprintf("result file: %s\nlast 20 lines of %s:\n%s", resStr, tg.logPath, logTail(tg.logPath, 20))
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

// procState returns the one-letter state of pid from /proc/PID/stat, or ""
// if there is no such process.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The state follows the last ')' (comm may contain parentheses; proc(5)).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// gone reports whether pid no longer runs: absent, or a zombie waiting for
// PID 1 to reap it.
func gone(pid int) bool {
	s := procState(pid)
	return s == "" || s == "Z" || s == "X"
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

// waitGone waits until pid is no longer running.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !gone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	for procState(pid) != "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return true
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
	if tg.belongsTo(pid) && !waitGone(pid, pidGoneTimeout) {
		t.Errorf("restored %s pid %d still present %v after SIGKILL", tg.name, pid, pidGoneTimeout)
	}
}

// gocrRun is the outcome of one gocr invocation.
type gocrRun struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r gocrRun) String() string {
	return fmt.Sprintf("gocr %s: exit %d\nstderr: %s\nstdout: %s",
		strings.Join(r.args, " "), r.code, strings.TrimSpace(r.stderr), strings.TrimSpace(r.stdout))
}

// gocrCmd prepares a gocr invocation whose output goes to files, never
// pipes: a restored process that wrongly inherited a pipe would otherwise
// keep Wait from returning.
func gocrCmd(t *testing.T, ctx context.Context, stdin *os.File, args ...string) (cmd *exec.Cmd, outPath, errPath string) {
	t.Helper()
	dir := t.TempDir()
	outPath, errPath = filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	outF, err := os.Create(outPath)
	if err != nil {
		t.Fatalf("create gocr stdout: %v", err)
	}
	errF, err := os.Create(errPath)
	if err != nil {
		t.Fatalf("create gocr stderr: %v", err)
	}
	if stdin == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			t.Fatalf("open %s: %v", os.DevNull, err)
		}
		t.Cleanup(func() { stdin.Close() })
	}
	cmd = exec.CommandContext(ctx, gocrBinary(t), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, outF, errF
	t.Cleanup(func() { outF.Close(); errF.Close() })
	return cmd, outPath, errPath
}

// runGocr runs gocr to completion and returns its exit code and output.
func runGocr(t *testing.T, stdin *os.File, args ...string) gocrRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, outPath, errPath := gocrCmd(t, ctx, stdin, args...)
	err := cmd.Run()
	r := gocrRun{args: args, code: cmd.ProcessState.ExitCode()}
	out, _ := os.ReadFile(outPath)
	errb, _ := os.ReadFile(errPath)
	r.stdout, r.stderr = string(out), string(errb)
	if ctx.Err() != nil {
		t.Fatalf("gocr %s did not finish within %v\n%v", strings.Join(args, " "), gocrTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run gocr %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// dump runs `gocr dump -t PID -D DIR` and requires success.
func dump(t *testing.T, pid int, dir string, extraArgs ...string) {
	t.Helper()
	r := runGocr(t, nil, append([]string{"dump", "-t", strconv.Itoa(pid), "-D", dir}, extraArgs...)...)
	if r.code != 0 {
		t.Fatalf("dump failed: %v", r)
	}
}

// restore runs `gocr restore -D DIR` with extraArgs and requires success.
func restore(t *testing.T, stdin *os.File, dir string, extraArgs ...string) {
	t.Helper()
	r := runGocr(t, stdin, append([]string{"restore", "-D", dir}, extraArgs...)...)
	if r.code != 0 {
		t.Fatalf("restore failed: %v", r)
	}
}

// restoreDetached restores tg's image with -d and returns the restored PID
// (the dumped one), registering its cleanup.
func restoreDetached(t *testing.T, tg *target, dir string, stdin *os.File) int {
	t.Helper()
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	restore(t, stdin, dir, "-d")
	if gone(tg.pid) {
		t.Fatalf("gocr restore -d exited 0 but pid %d is not running\n%s", tg.pid, tg.diagnostics())
	}
	if !tg.belongsTo(tg.pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", tg.pid))
		t.Fatalf("pid %d after restore is not target %s: cmdline %q", tg.pid, tg.name,
			bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	return tg.pid
}

type cycleOpts struct {
	stdin    *os.File // stdin for gocr restore (and so for the restored target)
	dumpArgs []string // extra gocr dump arguments
}

// checkpointRestore dumps tg, checks the dump killed it, reaps it and
// restores it detached. It returns the PID to check. In standalone mode it
// does nothing and returns the original PID.
func checkpointRestore(t *testing.T, tg *target, o cycleOpts) int {
	t.Helper()
	if standalone {
		return tg.pid
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, o.dumpArgs...)
	tg.waitDead(t, "a dump without --leave-running")
	return restoreDetached(t, tg, dir, o.stdin)
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
