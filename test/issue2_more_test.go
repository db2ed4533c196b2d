//go:build linux

package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWaiter: dumped while blocked in wait4 on its child, the restored
// parent gets its child's exit once the child is let go.
func TestWaiter(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "waiter")
	// The syscall number is the first field of /proc/PID/syscall
	// (man 5 proc); 61 is wait4 (arch/x86/entry/syscalls/syscall_64.tbl).
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(tg.pid), "syscall"))
		if err == nil && strings.HasPrefix(string(b), "61 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target is not blocked in wait4: /proc/%d/syscall = %q (%v)", tg.pid, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := checkpointRestore(t, tg, cycleOpts{})
	if err := os.WriteFile(tg.result+".go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	checkResult(t, tg, pid)
}

// TestSharedFileMapping: a MAP_SHARED mapping of a regular file is the
// file's pages again after restore.
func TestSharedFileMapping(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "shmfile", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestProcessAttributes: rlimits, personality, the mm fields, auxv, exe,
// cmdline, prctl state and umask come back exactly.
func TestProcessAttributes(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "procattrs")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
