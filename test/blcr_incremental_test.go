//go:build linux

package test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gocr/gocr/contextfile"
)

// TestCrRunIncremental: cr_run --incremental --keep=1 writes a full
// generation, then generations of the pages written since the one
// before; --keep keeps every generation the newest takes pages from;
// cr_restart DIR restarts the job from the newest, reading the chain.
func TestCrRunIncremental(t *testing.T) {
	needsGocr(t)
	// A compressed generation is extracted, and with it those it takes
	// pages from; a plain one is read in place, its parents beside it.
	t.Run("InPlace", func(t *testing.T) { crRunIncremental(t) })
	t.Run("Compressed", func(t *testing.T) { crRunIncremental(t, "--compress=lz4") })
}

func crRunIncremental(t *testing.T, extra ...string) {
	dir := filepath.Join(t.TempDir(), "gens")
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	wrap := append([]string{blcrTool(t, "cr_run"), "--incremental", "--keep=1", "--stats", statsPath, "-D", dir}, extra...)
	wrap = append(wrap, "--")
	tg := startTargetOpts(t, "incwriter", startOpts{wrap: wrap, args: []string{"512"}})
	job := jobOf(t, tg, tg.pid)
	t.Cleanup(func() { tg.killRestored(t, job) })
	var st struct {
		Generation int `json:"generation"`
		Dump       struct {
			ReusedBytes int64 `json:"incremental_reused_bytes"`
		} `json:"dump"`
	}
	for g := 1; g <= 3; g++ {
		if g > 1 {
			round := g - 1
			if err := syscall.Kill(job, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "incwriter round "+strconv.Itoa(round), func() bool {
				b, _ := os.ReadFile(tg.result + ".round")
				return strings.TrimSpace(string(b)) == strconv.Itoa(round)
			})
		}
		if err := syscall.Kill(tg.pid, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		waitGeneration(t, dir, g)
		waitUntil(t, "the stats of generation "+strconv.Itoa(g), func() bool {
			b, err := os.ReadFile(statsPath)
			return err == nil && strings.Contains(string(b), `"generation": `+strconv.Itoa(g)+",")
		})
		readJSON(t, statsPath, &st)
		if incremental := st.Dump.ReusedBytes > 0; incremental != (g > 1) {
			b, _ := os.ReadFile(statsPath)
			t.Fatalf("generation %d took %d bytes from the one before\n%s\n%s", g, st.Dump.ReusedBytes, b, tg.diagnostics())
		}
	}
	if ns := generationNumbers(t, dir); !slices.Equal(ns, []int{1, 2, 3}) {
		t.Fatalf("generations %v with --keep=1; want 1 2 3, the chain of the newest", ns)
	}
	if err := syscall.Kill(job, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tg.waitDead(t, "SIGKILL to the job")
	waitGone(job, pidGoneTimeout)
	restartStats := filepath.Join(t.TempDir(), "restart.json")
	mustBLCR(t, blcrCall{}, "cr_restart", "-d", "--stats", restartStats, dir)
	var rs struct {
		Context string   `json:"context"`
		Skipped []string `json:"skipped"`
	}
	readJSON(t, restartStats, &rs)
	if newest := contextfile.GenerationPath(dir, 3); rs.Context != newest || len(rs.Skipped) != 0 {
		t.Fatalf("cr_restart DIR: --stats %+v, want the newest generation %s", rs, newest)
	}
	if gone(job) || !tg.belongsTo(job) {
		t.Fatalf("pid %d is not the restarted incwriter", job)
	}
	if err := syscall.Kill(job, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitResult(t, tg, job); v != "PASS" {
		t.Fatalf("restarted incwriter: %s", v)
	}
}
