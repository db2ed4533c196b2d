//go:build linux

package test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parseCounterLog requires a counter log to be exactly the lines 1..N and
// returns N. A trailing partial line (a write in progress) is ignored
// unless complete is set.
func parseCounterLog(b []byte, complete bool) (int, error) {
	if complete && len(b) > 0 && b[len(b)-1] != '\n' {
		return 0, fmt.Errorf("ends in a partial line %q", b[bytes.LastIndexByte(b, '\n')+1:])
	}
	var lines []string
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		lines = strings.Split(string(b[:i]), "\n")
	}
	for n, line := range lines {
		if v, err := strconv.Atoi(line); err != nil || v != n+1 {
			return 0, fmt.Errorf("line %d is %q, want %d: the log must be 1..N without gap or repeat", n+1, line, n+1)
		}
	}
	return len(lines), nil
}

func counterLines(t *testing.T, path string, complete bool) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read counter log: %v", err)
	}
	n, err := parseCounterLog(b, complete)
	if err != nil {
		t.Fatalf("counter log %s: %v\nlast lines:\n%s", path, err, logTail(path, 20))
	}
	return n
}

// waitCounter waits until the counter log holds at least n lines.
func waitCounter(t *testing.T, tg *target, n int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := counterLines(t, tg.logPath, false)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter log stuck at %d lines, want %d\n%s", got, n, tg.diagnostics())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCounter runs the counter flow: the restored process must continue
// from the exact dumped value at the exact file offset and keep going.
func testCounter(t *testing.T, name string) {
	needsRoot(t)
	tg := startTarget(t, name)
	waitCounter(t, tg, 50)
	pid := checkpointRestore(t, tg, cycleOpts{})
	// After the dump the original is dead, so this is the dumped value.
	atDump := counterLines(t, tg.logPath, false)
	// More lines after the restore than before the dump.
	waitCounter(t, tg, 2*atDump+10)
	checkResult(t, tg, pid)
	final := counterLines(t, tg.logPath, true)
	if final <= 2*atDump {
		t.Fatalf("counter wrote %d lines after the restore, %d before the dump; want more after", final-atDump, atDump)
	}
}

func TestCounter(t *testing.T) { testCounter(t, "counter") }

func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(targets["counter-static"][0])
	if err != nil {
		t.Fatalf("open counter-static: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("counter-static has a %v program header: it is not a static executable", p.Type)
		}
	}
	testCounter(t, "counter-static")
}

func TestMemory(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestMemorySplice: the same memory, moved to the image the other way the
// parasite can (vmsplice into pipes that gocr splices into the file), so
// both page transfers stay correct.
func TestMemorySplice(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: []string{"--page-transfer", "splice"}})
	checkResult(t, tg, pid)
}

func TestSignals(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "signals")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

func TestSleeper(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "sleeper")
	pid := checkpointRestore(t, tg, cycleOpts{})
	// Longer than one 3 s sleep, so one completes after the restore and
	// its length is checked.
	time.Sleep(3500 * time.Millisecond)
	checkResult(t, tg, pid)
}

func TestPauser(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pauser")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

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

func TestPython(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pystate")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestLeaveRunning: --leave-running leaves the original running untouched,
// and one image restores as many times as wanted.
func TestLeaveRunning(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running")
	if tg.exited() {
		t.Fatalf("original exited after dump --leave-running: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	n := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, n+20)
	tg.killOriginal(t)

	for i := 1; i <= 2; i++ {
		// The first restore's verdict must not count for the second.
		if err := os.Remove(tg.result); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("remove previous result: %v", err)
		}
		pid := restoreDetached(t, tg, dir, nil)
		checkResult(t, tg, pid)
		counterLines(t, tg.logPath, true)
		tg.killRestored(t, pid)
		if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("restore %d: pid %d still present", i, pid)
		}
	}
}

// TestRestoreWaits: without -d gocr restore waits for the restored process
// and exits with its status.
func TestRestoreWaits(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")

	cmd, outPath, errPath := gocrCmd(t, t.Context(), nil, "restore", "-D", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gocr restore: %v", err)
	}
	// Closed, not sent on: both the test body and the cleanup wait on it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		tg.killRestored(t, tg.pid)
		select {
		case <-exited:
		case <-time.After(pidGoneTimeout):
			cmd.Process.Kill()
			<-exited
		}
	})
	output := func() string {
		o, _ := os.ReadFile(outPath)
		e, _ := os.ReadFile(errPath)
		return fmt.Sprintf("stdout: %s\nstderr: %s", o, e)
	}
	deadline := time.Now().Add(15 * time.Second)
	for gone(tg.pid) || !tg.belongsTo(tg.pid) {
		select {
		case <-exited:
			t.Fatalf("gocr restore exited (%v) before the target ran\n%s", waitErr, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored pid %d not running after 15s\n%s", tg.pid, output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM restored pid %d: %v", tg.pid, err)
	}
	select {
	case <-exited:
	case <-time.After(resultTimeout):
		t.Fatalf("gocr restore still running %v after SIGTERM to pid %d\n%s\n%s", resultTimeout, tg.pid, output(), tg.diagnostics())
	}
	if v := waitResult(t, tg, tg.pid); v != "PASS" {
		t.Fatalf("target %s: %s\nlast 20 lines of its log:\n%s", tg.name, v, logTail(tg.logPath, 20))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("gocr restore exited with %v, want 0 (the target's status)\n%s", cmd.ProcessState, output())
	}
	counterLines(t, tg.logPath, true)
}

// TestParseCounterLog shows the log check rejects what a bad restore leaves
// behind: a gap, a repeat, a torn line.
func TestParseCounterLog(t *testing.T) {
	for _, c := range []struct {
		log      string
		complete bool
		want     int
		bad      bool
	}{
		{log: "", complete: true, want: 0},
		{log: "1\n2\n3\n", complete: true, want: 3},
		{log: "1\n2\n3\n4", complete: false, want: 3},
		{log: "1\n2\n3\n4", complete: true, bad: true},
		{log: "1\n2\n4\n", complete: true, bad: true},
		{log: "1\n2\n2\n3\n", complete: true, bad: true},
		{log: "2\n3\n", complete: true, bad: true},
		{log: "1\n\n2\n", complete: true, bad: true},
	} {
		n, err := parseCounterLog([]byte(c.log), c.complete)
		if c.bad {
			if err == nil {
				t.Errorf("parseCounterLog(%q) = %d, want an error", c.log, n)
			}
			continue
		}
		if err != nil || n != c.want {
			t.Errorf("parseCounterLog(%q) = %d, %v; want %d", c.log, n, err, c.want)
		}
	}
}
