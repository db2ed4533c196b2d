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
//
// # Files
//
// The harness: harness_test.go (this documentation, TestMain building the
// targets and gocr), target_test.go (a target's start, verdict and
// cleanup), gocr_test.go (running gocr, the dump/restore cycle),
// proc_test.go (reading /proc).
//
// What is restored, one topic a file: counter_test.go, process_test.go
// (signals, blocked syscalls, registers, attributes, capabilities,
// stopped jobs, python),
// callbacks_test.go (checkpoint callbacks through libgocr, from C and
// Python),
// memory_test.go (mappings and page streams), vmasplit_test.go
// (neighbouring mappings kept apart), fdkinds_test.go (every kind
// of file descriptor), threads_test.go, trees_test.go (process trees,
// sessions, pipelines), savefiles_test.go (mapped files saved in the
// dump, paths relocated at restore).
//
// gocr itself: commands_test.go (usage, --help, check, show,
// --leave-running, restore without -d), badinput_test.go and
// refusal_test.go (what gocr refuses and what it leaves then, with helpers
// in failure_test.go and imagedir_test.go), gocrkill_test.go (gocr killed
// mid-dump or mid-restore), restorekill_test.go (what a failed restore
// kills: only what it created), corruption_test.go (every target detects
// damage to its state), tamper_test.go (every image of a dump damaged in
// every way: refused before any process exists), storage_test.go (a dump
// onto a full, read-only or failing file system).
//
// Real programs (accept_test.go): redis-server with its clients
// (accept_redis_test.go), an Open MPI job (accept_mpi_test.go); Python's
// http.server is in inet_test.go.
//
// BLCR's tools, run through their names (cr_checkpoint, cr_restart,
// cr_run linked to gocr): blcr_test.go, blcr_restart_test.go.
package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/childfds"
)

const (
	readyTimeout  = 15 * time.Second
	resultTimeout = 20 * time.Second
	gocrTimeout   = 60 * time.Second
	// PID 1 may reap orphaned zombies 1-2 s late (docs/INTERNALS.md, kernel facts).
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

// cTargets are compiled from test/targets/SRC with extra gcc flags;
// counter-static is counter's source linked statically. Script targets
// (pystate, pythreads, pipeline) are added by buildTargets, and the
// targets using libgocr (callbacks, pycallbacks) by buildCallbackTargets.
var cTargets = map[string]struct {
	src   string
	flags []string
}{
	"counter":        {"counter.c", nil},
	"counter-static": {"counter.c", []string{"-static"}},
	"memory":         {"memory.c", nil},
	"cowwriter":      {"cowwriter.c", []string{"-pthread"}},
	"forkshare":      {"forkshare.c", nil},
	"incwriter":      {"incwriter.c", nil},
	"seccomp_exec":   {"seccomp_exec.c", nil}, // a wrapper (startOpts.wrap), not a target
	"takepid":        {"takepid.c", nil},      // holds a PID a restore wants, not a target
	"fds":            {"fds.c", nil},
	"ghost":          {"ghost.c", nil},
	"signals":        {"signals.c", nil},
	"sleeper":        {"sleeper.c", nil},
	"sleepstop":      {"sleepstop.c", []string{"-pthread"}},
	"cttyleader":     {"cttyleader.c", nil},
	"pipe_reader":    {"pipe_reader.c", nil},
	"outsidepipes":   {"outsidepipes.c", nil},
	"pauser":         {"pauser.c", nil},
	"regs":           {"regs.c", nil},
	"threads":        {"threads.c", []string{"-pthread"}},
	"sched":          {"sched.c", []string{"-pthread"}},
	"attrs":          {"attrs.c", []string{"-pthread"}},
	"attrsrefused":   {"attrsrefused.c", []string{"-pthread"}},
	"cgroups":        {"cgroups.c", nil},
	"eventfd":        {"eventfd.c", nil},
	"epoll":          {"epoll.c", nil},
	"fdkinds":        {"fdkinds.c", nil},
	"locks":          {"locks.c", nil},
	"lockwait":       {"lockwait.c", []string{"-pthread"}},
	"posixtimers":    {"posixtimers.c", []string{"-pthread"}},
	"vmflags":        {"vmflags.c", nil},
	"thp":            {"thp.c", nil},
	"sharedtables":   {"sharedtables.c", nil},
	"pathfds":        {"pathfds.c", nil},
	"nsfds":          {"nsfds.c", nil},
	"leaderexit":     {"leaderexit.c", []string{"-pthread"}},
	"epollshared":    {"epollshared.c", nil},
	"epollmoved":     {"epollmoved.c", nil},
	"inotifydeleted": {"inotifydeleted.c", nil},
	"threadseccomp":  {"threadseccomp.c", []string{"-pthread"}},
	"sharedoff":      {"sharedoff.c", nil},
	"shmfile":        {"shmfile.c", nil},
	"procattrs":      {"procattrs.c", nil},
	"waiter":         {"waiter.c", nil},
	"vforker":        {"vforker.c", nil},
	"tree":           {"tree.c", nil},
	"threadtree":     {"threadtree.c", []string{"-pthread"}},
	"churn":          {"churn.c", []string{"-pthread"}},
	"stopped":        {"stopped.c", []string{"-pthread"}},
	"caps":           {"caps.c", []string{"-pthread"}},
	"unixsock":       {"unixsock.c", nil},
	"savedfiles":     {"savedfiles.c", []string{"-ldl"}},
	"unixnamed":      {"unixnamed.c", nil},
	"unixpeercred":   {"unixpeercred.c", nil},
	"refusedstate":   {"refusedstate.c", []string{"-pthread"}},
	"restoredstate":  {"restoredstate.c", nil},
	"timens":         {"timens.c", []string{"-pthread"}},
	"outsidegroup":   {"outsidegroup.c", nil},
	"mdwe":           {"mdwe.c", nil},
	"membarrier":     {"membarrier.c", []string{"-pthread"}},
	"secretmem":      {"secretmem.c", nil},
	"novdso":         {"novdso.c", []string{"-pthread"}},
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
	if err := childfds.CloseOnExecInherited(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	if err := buildTargets(filepath.Join(wd, "targets")); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	defer raisePidMax()()
	return m.Run()
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
	// Script targets run by their interpreter. pyenv's python3 is a shell
	// shim; run the real interpreter so the target's PID is the
	// interpreter itself and not a wrapper's child.
	python := ""
	if out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output(); err != nil {
		err = fmt.Errorf("find python3 interpreter: %w", err)
		targetErrs["pystate"], targetErrs["pythreads"], targetErrs["pycallbacks"] = err, err, err
	} else {
		python = strings.TrimSpace(string(out))
		targets["pystate"] = []string{python, filepath.Join(srcDir, "pystate.py")}
		targets["pythreads"] = []string{python, filepath.Join(srcDir, "pythreads.py")}
	}
	buildCallbackTargets(srcDir, python)
	if bash, err := exec.LookPath("bash"); err != nil {
		targetErrs["pipeline"] = fmt.Errorf("find bash: %w", err)
	} else {
		targets["pipeline"] = []string{bash, filepath.Join(srcDir, "pipeline.sh")}
	}
	return nil
}

// libgocrPath is the shared libgocr the callbacks targets use.
var libgocrPath string

// buildCallbackTargets builds libgocr (libgocr/, with the Makefile's
// flags) as a shared library, the C target linked to it, the Python one
// that loads it with ctypes (LIBGOCR_SO is its argument after
// RESULT_PATH), and the Go one that uses it through cgo and
// libgocr/go/gocr (gocr itself never uses cgo).
func buildCallbackTargets(srcDir, python string) {
	libDir := filepath.Join(moduleRoot, "libgocr")
	libgocrPath = filepath.Join(binDir, "libgocr.so.1")
	lib := exec.Command("gcc", "-O2", "-g", "-fPIC", "-fvisibility=hidden", "-pthread", "-Wall", "-Wextra", "-Werror",
		"-std=gnu11", "-shared", "-Wl,-soname,libgocr.so.1", "-o", libgocrPath, filepath.Join(libDir, "libgocr.c"))
	if b, err := lib.CombinedOutput(); err != nil {
		err = fmt.Errorf("compile libgocr: %w\n%s", err, b)
		targetErrs["callbacks"], targetErrs["pycallbacks"], targetErrs["gocallbacks"] = err, err, err
		return
	}
	out := filepath.Join(binDir, "callbacks")
	cb := exec.Command("gcc", "-O1", "-g", "-Wall", "-Werror", "-pthread", "-I", libDir, "-o", out,
		filepath.Join(srcDir, "callbacks.c"), libgocrPath, "-Wl,-rpath,"+binDir)
	if b, err := cb.CombinedOutput(); err != nil {
		targetErrs["callbacks"] = fmt.Errorf("compile target callbacks: %w\n%s", err, b)
	} else {
		targets["callbacks"] = []string{out}
	}
	buildGoCallbackTarget()
	if python != "" {
		targets["pycallbacks"] = []string{python, filepath.Join(srcDir, "pycallbacks.py")}
	}
}

// buildGoCallbackTarget builds test/targets/gocallbacks with cgo and its
// build tag, linked (-lgocr, as libgocr/go/gocr asks) to the libgocr.so.1
// just built.
func buildGoCallbackTarget() {
	link := filepath.Join(binDir, "libgocr.so")
	if err := os.Symlink("libgocr.so.1", link); err != nil {
		targetErrs["gocallbacks"] = fmt.Errorf("link %s for -lgocr: %w", link, err)
		return
	}
	out := filepath.Join(binDir, "gocallbacks")
	cmd := exec.Command("go", "build", "-tags", "libgocr", "-o", out, "./test/targets/gocallbacks")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_LDFLAGS=-L"+binDir+" -Wl,-rpath,"+binDir)
	if b, err := cmd.CombinedOutput(); err != nil {
		targetErrs["gocallbacks"] = fmt.Errorf("go build ./test/targets/gocallbacks with cgo: %w\n%s", err, b)
	} else {
		targets["gocallbacks"] = []string{out}
	}
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

// soaking tells whether this is `make soak`'s run (GOCR_SOAK=1).
func soaking() bool { return os.Getenv("GOCR_SOAK") == "1" }

// soakOnly skips a long test (many cycles, much memory, a whole service
// restarted over and over) unless GOCR_SOAK=1, which `make soak` sets, so
// that `make test` keeps to its time budget (README.md, first lines).
func soakOnly(t *testing.T) {
	t.Helper()
	if !soaking() {
		t.Skip("a soak test: runs under `make soak` (GOCR_SOAK=1), not in `make test`'s time budget")
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
