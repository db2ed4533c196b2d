//go:build linux

package test

import (
	"testing"

	"github.com/gocr/gocr/proc"
)

// Transparent huge pages: where the dumped process had them, the restored
// one has them again, and nowhere else.

// needsTHP skips a test on a machine without transparent huge pages for
// anonymous memory, and returns the mode.
func needsTHP(t *testing.T) string {
	t.Helper()
	switch mode := proc.THPMode(); mode {
	case "always", "madvise":
		return mode
	case "":
		t.Skipf("this kernel has no 2 MiB transparent huge pages (/sys/kernel/mm/transparent_hugepage/hpage_pmd_size)")
	default:
		t.Skipf("transparent huge pages are %q on this machine (/sys/kernel/mm/transparent_hugepage), so no process has any", mode)
	}
	return ""
}

// anonHuge maps each private anonymous mapping of pid (by its start) to
// its smaps AnonHugePages in bytes.
func anonHuge(t *testing.T, pid int) map[uint64]uint64 {
	t.Helper()
	ms, err := proc.ReadMaps(pid)
	if err != nil {
		t.Fatalf("read smaps of %d: %v", pid, err)
	}
	out := map[uint64]uint64{}
	for _, m := range ms {
		if m.Inode == 0 && !m.Shared && (m.Path == "" || m.Path == "[heap]" || m.Path == "[stack]") {
			out[m.Start] = m.AnonHugeBytes
		}
	}
	return out
}

// TestTHP: 64 MiB madvised MADV_HUGEPAGE (in huge pages at the dump),
// 64 MiB without advice, 8 MiB the process collapsed into huge pages
// itself and 8 MiB collapsed then madvised MADV_NOHUGEPAGE (thp.c) come
// back with their contents and VmFlags, and every
// private anonymous mapping holds at least as much memory in huge pages
// as at the dump; under THP "madvise", one that had none has none. With
// four page streams the dump cuts its streams inside huge pages, whose
// halves two threads of the restorer read.
func TestTHP(t *testing.T) {
	needsRoot(t)
	mode := needsTHP(t)
	for _, tc := range []struct {
		name     string
		dumpArgs []string
	}{
		{"DefaultStreams", nil},
		{"FourStreams", []string{"--page-streams", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startTarget(t, "thp")
			before := anonHuge(t, tg.pid)
			var total uint64
			for _, b := range before {
				total += b
			}
			if total == 0 {
				t.Fatalf("no huge pages in the target at the dump, though THP is %q\n%s", mode, tg.diagnostics())
			}
			pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: tc.dumpArgs})
			after := anonHuge(t, pid)
			for start, b := range before {
				a, ok := after[start]
				if !ok {
					t.Errorf("anonymous mapping at %#x is gone after the restore", start)
					continue
				}
				if a < b {
					t.Errorf("mapping at %#x: %d KiB in huge pages after the restore, %d KiB at the dump", start, a>>10, b>>10)
				}
				if mode == "madvise" && b == 0 && a != 0 {
					t.Errorf("mapping at %#x: %d KiB in huge pages after the restore, none at the dump", start, a>>10)
				}
			}
			checkResult(t, tg, pid)
		})
	}
}
