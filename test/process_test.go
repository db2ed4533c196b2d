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

// TestSignals: dispositions, the alternate signal stack, the blocked mask
// and pending signals of both queues come back, and every pending signal
// is delivered once, with its payload, in the kernel's order.
func TestSignals(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "signals")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestSleeper: a process dumped inside nanosleep sleeps on as the kernel
// restarts the call: no EINTR, never shorter than asked.
func TestSleeper(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "sleeper")
	pid := checkpointRestore(t, tg, cycleOpts{})
	// Longer than one 3 s sleep, so one completes after the restore and
	// its length is checked.
	time.Sleep(3500 * time.Millisecond)
	checkResult(t, tg, pid)
}

// TestPauser: a process dumped in pause(2) stays in it until its SIGTERM
// handler runs, with no earlier wake-up.
func TestPauser(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pauser")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestRegisters: r12-r15, MXCSR and every vector register (AVX, or
// AVX-512 with its mask registers where the CPU has it) come back bit for
// bit.
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

// targetNeedsCPU names the CPU features (as /proc/cpuinfo flags) a target
// cannot run without; a test of it on a CPU without them skips, saying
// so. The regs target fills the AVX registers.
var targetNeedsCPU = map[string][]string{"regs": {"avx"}}

// cpuHas tells whether this CPU has the /proc/cpuinfo flag feature.
func cpuHas(t *testing.T, feature string) bool {
	t.Helper()
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatalf("read /proc/cpuinfo: %v", err)
	}
	return cpuFlags(cpuinfo)[feature]
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

// TestPython: a python3 interpreter's heap (a dict, a growing list and a
// running sha256 kept in step) is consistent after the restore and its
// loop goes on.
func TestPython(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pystate")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
