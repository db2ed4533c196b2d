//go:build linux

package test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The state of one process: signal dispositions and pending signals, blocked
// syscalls that must restart, registers, process attributes, and an
// interpreter's heap.

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

// TestProcessAttributes: rlimits, personality, the mm fields, auxv, exe,
// cmdline, prctl state and umask come back exactly.
func TestProcessAttributes(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "procattrs")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

func TestPython(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pystate")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
