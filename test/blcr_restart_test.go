//go:build linux

package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/contextfile"
)

// cr_restart: what it does after a restart, how it waits, its failure
// classes with their exit codes and hooks, the job's stdio; and cr_run.

// checkpointed checkpoints tg with --kill into a new context file and
// returns its path, with the original dead and reaped.
func checkpointed(t *testing.T, tg *target) string {
	t.Helper()
	ctx := filepath.Join(t.TempDir(), "ctx")
	mustBLCR(t, blcrCall{}, "cr_checkpoint", "--kill", "-f", ctx, strconv.Itoa(tg.pid))
	tg.waitDead(t, "cr_checkpoint --kill")
	return ctx
}

// TestBLCRAfterRestart: the signal options of cr_restart reach the
// restarted job: --stop stops it, --term makes the counter run its check.
func TestBLCRAfterRestart(t *testing.T) {
	needsGocr(t)
	t.Run("stop", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		pid := restartDetached(t, tg, blcrCall{}, "--stop", ctx)
		waitState(t, pid, "T")
		syscall.Kill(pid, syscall.SIGCONT)
		checkResult(t, tg, pid)
	})
	t.Run("term", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		// The job may have checked itself and ended before cr_restart
		// returns: its verdict is the proof.
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		mustBLCR(t, blcrCall{}, "cr_restart", "-d", "--term", ctx)
		if v := waitResult(t, tg, tg.pid); v != "PASS" {
			t.Fatalf("restarted with --term: %s", v)
		}
	})
}

// blcrFailure requires a failed cr_restart with exit code code and, when
// msg is given, one line naming each of msg; without msg, nothing on
// stderr (a hook's status replaced the message).
func blcrFailure(t *testing.T, r gocrRun, code int, msg ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d\n%v", code, r)
	}
	if len(msg) == 0 {
		if r.stderr != "" {
			t.Fatalf("want nothing on stderr\n%v", r)
		}
		return
	}
	assertRefused(t, r, msg, nil)
}

// TestBLCRRestartFailures: each failure class has its exit code and
// message, and its hook, whose non-zero status replaces both; a hook
// exiting 0 leaves them; --run-on-failure stands for every class.
func TestBLCRRestartFailures(t *testing.T) {
	needsGocr(t)
	t.Run("temp", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "-f", ctx, strconv.Itoa(tg.pid))
		pid := strconv.Itoa(tg.pid)
		// The job still runs: its PID is in use.
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", ctx), 75, "temporary", "pid "+pid+" is in use")
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-fail-temp=exit 7", ctx), 7)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-fail-temp=true", ctx), 75, "temporary")
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-failure=exit 9", ctx), 9)
		// The class's own hook comes before the one for every failure.
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-failure=exit 9", "--run-on-fail-temp=exit 7", ctx), 7)
		checkIntactCounter(t, tg)
	})
	t.Run("perm", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		name := fmt.Sprintf("task-%d.img", tg.pid)
		damageEntry(t, ctx, name)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", ctx), 65, "permanent", name)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-fail-perm=exit 8", ctx), 8)
		assertNoProcess(t, tg.pid)
	})
	t.Run("env", func(t *testing.T) {
		exe := filepath.Join(t.TempDir(), "counter-copy")
		copyFile(t, targets["counter"][0], exe, 0o755)
		tg := startTargetOpts(t, "counter", startOpts{binary: exe})
		ctx := checkpointed(t, tg)
		if err := os.Remove(exe); err != nil {
			t.Fatal(err)
		}
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", ctx), 69, "environment", exe)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--run-on-fail-env=exit 6", ctx), 6)
		assertNoProcess(t, tg.pid)
	})
	t.Run("args", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-context")
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", missing), 64, missing)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "--run-on-fail-args=exit 5", missing), 5)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "--no-restore-pid", missing), 64, "--no-restore-pid", "not supported")
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart"), 64, "context")
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "--bogus", missing), 64, "bogus")
		notContext := filepath.Join(t.TempDir(), "text")
		os.WriteFile(notContext, []byte("hello\n"), 0o600)
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", notContext), 65, "not a gocr context file")
	})
}

// damageEntry flips one byte in the data of the entry name of the
// context file path.
func damageEntry(t *testing.T, path, name string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := contextfile.Read(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == name && e.Size > 0 {
			b[e.Offset+e.Size/2] ^= 0x40
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("context %s has no entry %s with data", path, name)
}

// TestBLCRRestartWaits: without -d, cr_restart runs the success hook once
// the job runs, then waits for it and ends as it does: with its exit
// status, or killed by the same signal; a success hook that fails ends
// cr_restart at once, with its status, the job running on.
func TestBLCRRestartWaits(t *testing.T) {
	needsGocr(t)
	start := func(t *testing.T, tg *target, args ...string) (*exec.Cmd, chan struct{}) {
		cmd := exec.Command(blcrTool(t, "cr_restart"), args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			tg.killRestored(t, tg.pid)
			select {
			case <-done:
			case <-time.After(pidGoneTimeout):
				cmd.Process.Kill()
				<-done
			}
		})
		return cmd, done
	}
	waitDone := func(t *testing.T, done chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(resultTimeout):
			t.Fatalf("cr_restart still runs %v after its job ended", resultTimeout)
		}
	}
	t.Run("exit", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		ran := filepath.Join(t.TempDir(), "ran")
		cmd, done := start(t, tg, "--run-on-success=touch "+ran, ctx)
		waitFile(t, ran)
		if !tg.belongsTo(tg.pid) {
			t.Fatalf("the success hook ran but pid %d is not the job", tg.pid)
		}
		syscall.Kill(tg.pid, syscall.SIGTERM)
		if v := waitResult(t, tg, tg.pid); v != "PASS" {
			t.Fatal(v)
		}
		waitDone(t, done)
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("cr_restart exited %v after the job exited 0", cmd.ProcessState)
		}
	})
	t.Run("signal", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		ran := filepath.Join(t.TempDir(), "ran")
		cmd, done := start(t, tg, "--run-on-success=touch "+ran, ctx)
		waitFile(t, ran)
		syscall.Kill(tg.pid, syscall.SIGUSR1)
		waitDone(t, done)
		if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGUSR1 {
			t.Fatalf("cr_restart ended with %v after its job was killed by SIGUSR1", cmd.ProcessState)
		}
	})
	t.Run("hook-fails", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		cmd, done := start(t, tg, "--run-on-success=exit 4", ctx)
		waitDone(t, done)
		if code := cmd.ProcessState.ExitCode(); code != 4 {
			t.Fatalf("cr_restart exited %v, want the success hook's 4", cmd.ProcessState)
		}
		checkResult(t, tg, tg.pid)
	})
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(gocrTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not created after %v", path, gocrTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBLCRStdio: a job whose standard input was a pipe from outside gets
// cr_restart's own, and reads what is written there after the restart;
// with the context itself on cr_restart's standard input, it gets
// /dev/null instead.
func TestBLCRStdio(t *testing.T) {
	needsGocr(t)
	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
		ctx := checkpointed(t, tg)
		pid := restartDetached(t, tg, blcrCall{stdin: r}, ctx)
		r.Close()
		w.Write([]byte("hello\n"))
		w.Close()
		checkResult(t, tg, pid)
	})
	t.Run("context-on-stdin", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
		ctx := checkpointed(t, tg)
		f, err := os.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pid := restartDetached(t, tg, blcrCall{stdin: f}, "-")
		if in, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid)); err != nil || in != os.DevNull {
			t.Fatalf("restarted job's stdin is %q (%v), want %s", in, err, os.DevNull)
		}
	})
}

// TestBLCRRun: cr_run becomes the program, so the PID the shell knows is
// the job's, which checkpoints and restarts; its exit status is the
// program's.
func TestBLCRRun(t *testing.T) {
	needsGocr(t)
	tg := startTargetOpts(t, "counter", startOpts{wrap: []string{blcrTool(t, "cr_run"), "--"}})
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", tg.pid)); exe != targets["counter"][0] {
		t.Fatalf("cr_run's pid %d runs %s, want the program", tg.pid, exe)
	}
	waitCounter(t, tg, 20)
	ctx := checkpointed(t, tg)
	pid := restartDetached(t, tg, blcrCall{}, ctx)
	checkResult(t, tg, pid)

	if r := runBLCR(t, blcrCall{}, "cr_run", "/bin/sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("cr_run sh -c 'exit 3': want exit 3\n%v", r)
	}
	if r := runBLCR(t, blcrCall{}, "cr_run", "no-such-program-gocr"); r.code != 127 {
		t.Errorf("cr_run of a missing program: want exit 127\n%v", r)
	}
	if r := runBLCR(t, blcrCall{}, "cr_run"); r.code != 64 {
		t.Errorf("cr_run with no program: want exit 64\n%v", r)
	}
}

// TestBLCRShowAndMan: gocr show reads a context file as it reads an image
// directory; each BLCR name has a man page made from its options.
func TestBLCRShowAndMan(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	ctx := checkpointed(t, tg)
	r := runGocr(t, nil, "show", ctx)
	if r.code != 0 {
		t.Fatalf("show %s: %v", ctx, r)
	}
	blocks := showBlocks(t, r.stdout)
	for _, name := range []string{"inventory.img", fmt.Sprintf("task-%d.img", tg.pid), fmt.Sprintf("pages-%d.img", tg.pid)} {
		if _, ok := blocks[name]; !ok {
			t.Errorf("show of the context lacks %s: has %v", name, keys(blocks))
		}
	}
	for name, option := range map[string]string{"gocr": "checkpoint", "cr_checkpoint": "noclobber", "cr_restart": "run-on-fail-temp", "cr_run": "PROGRAM"} {
		r := runGocr(t, nil, "man", name)
		if r.code != 0 || !strings.Contains(r.stdout, ".TH "+name+" 1") || !strings.Contains(r.stdout, option) {
			t.Errorf("man page of %s: want .TH %s 1 and %q\n%v", name, name, option, r)
		}
	}
}
