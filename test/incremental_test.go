//go:build linux

package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Incremental dumps (gocr dump --track, --prev): the incwriter target
// changes its memory between dumps (random pages written and dropped,
// regions mapped, moved, grown, unmapped, split) and keeps a checksum
// of every region; restored from the newest of a chain, it checks them.

type incrementalStats struct {
	PagesBytes  int64    `json:"pages_bytes"`
	ReusedBytes int64    `json:"incremental_reused_bytes"`
	Full        []string `json:"incremental_full"`
}

func readIncrementalStats(t *testing.T, dir string) incrementalStats {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "stats-dump.json"))
	if err != nil {
		t.Fatalf("read dump stats: %v", err)
	}
	var s incrementalStats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("dump stats: %v\n%s", err, b)
	}
	return s
}

// incwriterRound asks tg for its next round of changes and waits until
// it has made it.
func incwriterRound(t *testing.T, tg *target, round int) {
	t.Helper()
	if err := syscall.Kill(tg.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(tg.result + ".round")
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n == round {
			return
		}
		if time.Now().After(deadline) || tg.exited() {
			t.Fatalf("incwriter did not finish round %d\n%s", round, tg.diagnostics())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIncrementalChain: a tracked dump, then three incremental ones,
// the last ending the job; each writes about the pages changed since
// its parent, and the restore from the newest reads the whole chain.
func TestIncrementalChain(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "incwriter")
	base := t.TempDir()
	gen := func(i int) string { return filepath.Join(base, "gen"+strconv.Itoa(i)) }
	dump(t, tg.pid, gen(0), "--leave-running", "--track")
	for i := 1; i <= 3; i++ {
		incwriterRound(t, tg, i)
		args := []string{"--prev", gen(i - 1)}
		if i < 3 {
			args = append(args, "--leave-running")
		}
		dump(t, tg.pid, gen(i), args...)
		s := readIncrementalStats(t, gen(i))
		t.Logf("generation %d: wrote %d bytes, took %d from the parent", i, s.PagesBytes, s.ReusedBytes)
		if len(s.Full) > 0 || s.ReusedBytes < 60<<20 {
			t.Fatalf("generation %d: %d bytes taken from the parent, written whole: %v; want an incremental dump", i, s.ReusedBytes, s.Full)
		}
		// 2048 pages written (8 MiB) and up to 6 MiB of new or moved
		// regions each round, against about 80 MiB in all.
		if s.PagesBytes > 24<<20 {
			t.Fatalf("generation %d wrote %d bytes of pages; want about the changed ones", i, s.PagesBytes)
		}
	}
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, gen(3), nil)
	checkResult(t, tg, pid)
}
