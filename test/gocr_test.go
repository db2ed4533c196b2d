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
	before, err := readKernelView(tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, dir, o.dumpArgs...)
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, dir, o.stdin)
	checkKernelView(t, pid, before, o.volatile)
	return pid
}
