//go:build linux && amd64

package ptrace

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	targetOnce sync.Once
	targetPath string
	targetErr  error
	targetDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if targetDir != "" {
		os.RemoveAll(targetDir)
	}
	os.Exit(code)
}

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: ptrace of child processes with every capability (CI runs as root)")
	}
}

// buildTarget compiles testdata/target.c once per test binary run.
func buildTarget(tb testing.TB) string {
	tb.Helper()
	targetOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			targetErr = fmt.Errorf("gcc not found: %w", err)
			return
		}
		targetDir, targetErr = os.MkdirTemp("", "gocr-ptrace-test")
		if targetErr != nil {
			return
		}
		targetPath = filepath.Join(targetDir, "target")
		out, err := exec.Command("gcc", "-O1", "-Wall", "-Werror", "-mavx2", "-o", targetPath, "testdata/target.c").CombinedOutput()
		if err != nil {
			targetErr = fmt.Errorf("gcc: %v\n%s", err, out)
		}
	})
	if targetErr != nil {
		tb.Fatalf("build target: %v", targetErr)
	}
	return targetPath
}

type target struct {
	tb    testing.TB
	pid   int
	lines chan string
	stdin *os.File
	ready string // the READY line
}

// startTarget runs the C target in mode and waits for its READY line. The
// process is killed by PID and reaped in Cleanup.
func startTarget(tb testing.TB, mode string) *target {
	tb.Helper()
	needRoot(tb)
	path := buildTarget(tb)
	inR, inW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(path, mode)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	inR.Close()
	outW.Close()
	tg := &target{tb: tb, pid: cmd.Process.Pid, lines: make(chan string, 64), stdin: inW}
	tb.Cleanup(func() {
		unix.Kill(tg.pid, unix.SIGKILL)
		cmd.Wait() // ECHILD if a Tracer.Wait already reaped it
		inW.Close()
		outR.Close()
	})
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			tg.lines <- sc.Text()
		}
		close(tg.lines)
	}()
	tg.ready = tg.expect("READY", 5*time.Second)
	return tg
}

// expect returns the next output line and fails unless it starts with prefix.
func (tg *target) expect(prefix string, timeout time.Duration) string {
	tg.tb.Helper()
	select {
	case l, ok := <-tg.lines:
		if !ok {
			tg.tb.Fatalf("target %d: output closed, want %q", tg.pid, prefix)
		}
		if !strings.HasPrefix(l, prefix) {
			tg.tb.Fatalf("target %d: got line %q, want prefix %q", tg.pid, l, prefix)
		}
		return l
	case <-time.After(timeout):
		tg.tb.Fatalf("target %d: no %q within %v", tg.pid, prefix, timeout)
	}
	return ""
}

// quiet fails if the target prints anything within d.
func (tg *target) quiet(d time.Duration) {
	tg.tb.Helper()
	select {
	case l := <-tg.lines:
		tg.tb.Fatalf("target %d printed %q, want nothing yet", tg.pid, l)
	case <-time.After(d):
	}
}

func newTracer(tb testing.TB) *Tracer {
	tr := NewTracer()
	tb.Cleanup(tr.Close)
	return tr
}

// seizeStop seizes the target and stops it in PTRACE_EVENT_STOP, failing on
// any suppressed signal.
func seizeStop(tb testing.TB, tr *Tracer, pid int) {
	tb.Helper()
	if err := tr.Seize(pid); err != nil {
		tb.Fatal(err)
	}
	pending, err := tr.StopTask(pid)
	if err != nil {
		tb.Fatal(err)
	}
	if len(pending) != 0 {
		tb.Fatalf("StopTask(%d): unexpected pending signals %v", pid, pending)
	}
}

// settle gives a READY target time to block in the syscall after printing.
func settle() { time.Sleep(150 * time.Millisecond) }

func sigbit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }
