//go:build linux

package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Running the gocr binary: one invocation with its output kept in files,
// and the dump, reap, restore -d cycle most tests go through.

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

// restoreDetached restores tg's image with -d (and extraArgs) and returns
// the restored PID (the dumped one), registering its cleanup.
func restoreDetached(t *testing.T, tg *target, dir string, stdin *os.File, extraArgs ...string) int {
	t.Helper()
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	restore(t, stdin, dir, append([]string{"-d"}, extraArgs...)...)
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
	// volatile are the keys of what the kernel shows (oracle_test.go)
	// that the target changes by itself while it waits, so the oracle
	// leaves them out; a key ending in "/" stands for all under it.
	volatile []string
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
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, dir, o.dumpArgs...)
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, dir, o.stdin)
	checkTreeView(t, pid, before, o.volatile)
	return pid
}

// foregroundRestore is a gocr restore without -d: it stays to wait for the
// restored root.
type foregroundRestore struct {
	cmd              *exec.Cmd
	exited           chan struct{} // closed once cmd has exited
	waitErr          error
	outPath, errPath string
}

// startForegroundRestore starts gocr restore -D dir and waits until tg's
// PID runs again as tg; cleanup kills the restored target and gocr.
func startForegroundRestore(t *testing.T, tg *target, dir string) *foregroundRestore {
	t.Helper()
	cmd, outPath, errPath := gocrCmd(t, t.Context(), nil, "restore", "-D", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gocr restore: %v", err)
	}
	// Closed, not sent on: both the test body and the cleanup wait on it.
	fr := &foregroundRestore{cmd: cmd, exited: make(chan struct{}), outPath: outPath, errPath: errPath}
	go func() { fr.waitErr = cmd.Wait(); close(fr.exited) }()
	t.Cleanup(func() {
		tg.killRestored(t, tg.pid)
		select {
		case <-fr.exited:
		case <-time.After(pidGoneTimeout):
			cmd.Process.Kill()
			<-fr.exited
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for gone(tg.pid) || !tg.belongsTo(tg.pid) {
		select {
		case <-fr.exited:
			t.Fatalf("gocr restore exited (%v) before the target ran\n%s", fr.waitErr, fr.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored pid %d not running after 15s\n%s", tg.pid, fr.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fr
}

// output is what gocr restore printed.
func (fr *foregroundRestore) output() string {
	o, _ := os.ReadFile(fr.outPath)
	e, _ := os.ReadFile(fr.errPath)
	return fmt.Sprintf("stdout: %s\nstderr: %s", o, e)
}

// waitExit waits for gocr restore to exit, as it should once the target
// it waits for has ended.
func (fr *foregroundRestore) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-fr.exited:
	case <-time.After(resultTimeout):
		t.Fatalf("gocr restore still running %v after its target was told to end\n%s", resultTimeout, fr.output())
	}
}
