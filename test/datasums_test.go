package test

import (
	"slices"
	"testing"

	"golang.org/x/sys/cpu"
)

// sealStats are the dump stats of what the seal read back to checksum.
type sealStats struct {
	PagesBytes    int64 `json:"pages_bytes"`
	SealReadBytes int64 `json:"seal_read_bytes"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
}

// TestDataSumsFromParasite: the parasite checksums the private anonymous
// memory it writes as it writes it (parasite.Sums), so the seal reads
// back only the rest; every chunk's checksum is right either way (the
// restore verifies each before any process exists, and the target checks
// its memory). The memory target has every kind of mapping, among them
// those the parasite must not read itself (a private file mapping,
// PROT_NONE memory gocr copies through /proc/PID/mem), in the same page
// images. Frozen with one and four page streams, and from a snapshot.
// On a CPU without SSE4.2, and for memory written while a job that runs
// on is frozen, the seal reads everything back.
func TestDataSumsFromParasite(t *testing.T) {
	needsRoot(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"frozen", []string{"--page-streams", "1"}},
		{"streams", []string{"--page-streams", "4"}},
		{"snapshot", []string{"--leave-running", "--snapshot"}},
		// Frozen for a job that runs on: not summed then, so as not
		// to lengthen its stall; the seal reads it all back.
		{"leave-running", []string{"--leave-running", "--snapshot=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startTarget(t, "memory", t.TempDir())
			view, err := readTreeView(t, tg.pid)
			if err != nil {
				t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
			}
			dir := t.TempDir()
			dump(t, tg.pid, dir, tc.args...)
			st := readDumpStats[sealStats](t, dir)
			if tc.name == "snapshot" && st.SnapshotBytes == 0 {
				t.Fatalf("no snapshot taken: %+v", st)
			}
			t.Logf("page data %d bytes, read back by the seal %d", st.PagesBytes, st.SealReadBytes)
			// About 110 of the target's 190 MiB of page data is private
			// anonymous memory, all summed as written.
			if !cpu.X86.HasSSE42 || tc.name == "leave-running" {
				if st.SealReadBytes < st.PagesBytes {
					t.Errorf("the seal read back %d of %d bytes, want all (SSE4.2: %v)", st.SealReadBytes, st.PagesBytes, cpu.X86.HasSSE42)
				}
			} else if st.SealReadBytes > st.PagesBytes/2 {
				t.Errorf("the seal read back %d of %d bytes: the parasite's sums were not used", st.SealReadBytes, st.PagesBytes)
			}
			if slices.Contains(tc.args, "--leave-running") {
				tg.killOriginal(t)
			} else {
				tg.waitDead(t, "a dump without --leave-running")
			}
			pid := restoreDetached(t, tg, dir, nil)
			checkTreeView(t, pid, view, nil)
			checkResult(t, tg, pid)
		})
	}
}
