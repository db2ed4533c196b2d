//go:build linux

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What a failed or killed gocr run must leave behind: one line on stderr
// naming the problem, the target running untouched and still passing its
// own check, no restored process, no image that looks complete.

// assertOneLineError requires a failed gocr run: non-zero exit and exactly
// one non-empty line on stderr that mentions every string in mustName
// (case-insensitively) and at least one of anyOf when given.
func assertOneLineError(t *testing.T, r gocrRun, mustName []string, anyOf []string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("want a failure, got success\n%v", r)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("want exactly one line on stderr\n%v", r)
	}
	low := strings.ToLower(msg)
	for _, s := range mustName {
		if !strings.Contains(low, strings.ToLower(s)) {
			t.Fatalf("error %q does not name %q", msg, s)
		}
	}
	if len(anyOf) == 0 {
		return
	}
	for _, s := range anyOf {
		if strings.Contains(low, strings.ToLower(s)) {
			return
		}
	}
	t.Fatalf("error %q mentions none of %q", msg, anyOf)
}

// assertRefused is assertOneLineError that also logs the message, so a
// -v run shows what gocr says in each case.
func assertRefused(t *testing.T, r gocrRun, mustName, anyOf []string) {
	t.Helper()
	assertOneLineError(t, r, mustName, anyOf)
	t.Logf("gocr %s: %s", strings.Join(r.args, " "), strings.TrimSpace(r.stderr))
}

// assertUntouched requires pid to be running free: not stopped, not traced
// (a failed dump must detach; proc(5) "TracerPid").
func assertUntouched(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("target pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "t") || strings.HasPrefix(v, "T") || strings.HasPrefix(v, "Z") {
				t.Fatalf("target pid %d is in state %q after gocr", pid, v)
			}
		case "TracerPid":
			if v != "0" {
				t.Fatalf("target pid %d is still traced by pid %s after gocr", pid, v)
			}
		}
	}
}

// checkIntact proves a target survived a failed gocr run: still running,
// not stopped or traced, and verifying PASS.
func checkIntact(t *testing.T, tg *target) {
	t.Helper()
	if tg.exited() {
		t.Fatalf("target exited after the failed gocr run: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// checkIntactCounter proves a counter survived a failed gocr run as it
// was: running, not traced, still counting, and verifying PASS.
func checkIntactCounter(t *testing.T, tg *target) {
	t.Helper()
	if tg.exited() {
		t.Fatalf("target exited after the failed gocr run: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	n := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, n+10)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}

// assertNoProcess requires that a failed restore left nothing at pid.
func assertNoProcess(t *testing.T, pid int) {
	t.Helper()
	// Checked right away: a live process here means gocr handed over a
	// half-restored task instead of cleaning up.
	if s := procState(pid); s != "" && s != "Z" && s != "X" {
		t.Fatalf("failed restore left pid %d running (state %s)", pid, s)
	}
	// A zombie may be waiting for PID 1 to reap it.
	if !waitGone(pid, 3*time.Second) {
		t.Fatalf("failed restore left pid %d (state %s)", pid, procState(pid))
	}
}

func assertNoInventory(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
		t.Fatalf("failed dump left %s/inventory.img, which marks a complete image", dir)
	}
}
