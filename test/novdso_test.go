//go:build linux

package test

import "testing"

// TestNoVdso: a process of two threads that unmapped its vDSO and vvar
// pages (novdso.c "all") is dumped, the parasite's calls running on the
// process's own code, and restored without them, its auxiliary vector as
// it was, the release gate too on its own code; one that unmapped only
// its vvar pages ("vvar") keeps its vDSO where it was. Each checks its
// maps, its AT_SYSINFO_EHDR and its counters itself, and the oracle
// compares the rest.
func TestNoVdso(t *testing.T) {
	for _, mode := range []string{"all", "vvar"} {
		t.Run(mode, func(t *testing.T) {
			tg := startTarget(t, "novdso", mode)
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestNoVdsoLeaveRunning: the process without a vDSO dumped with
// --leave-running runs on as it was: the oracle's view of it is the same
// after the dump as before, and it checks itself.
func TestNoVdsoLeaveRunning(t *testing.T) {
	tg := startTarget(t, "novdso", "all")
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, t.TempDir(), "--leave-running")
	checkTreeView(t, tg.pid, before, nil)
	checkResult(t, tg, tg.pid)
}
