//go:build linux

package test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/testhook"
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
	return readDumpStats[incrementalStats](t, dir)
}

// incwriterRound asks tg for its next round of changes and waits until
// it has made it.
func incwriterRound(t *testing.T, tg *target, round int) {
	t.Helper()
	// The mark of the round before goes first: after an exec the
	// target counts its rounds from 1 again, and the old mark would
	// say this round was done before it was.
	if err := os.Remove(tg.result + ".round"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
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

// TestIncrementalChain: a tracked dump, then three incremental ones
// (with a snapshot, without, and the last ending the job); each writes about the pages changed since
// its parent, and the restore from the newest reads the whole chain.
func TestIncrementalChain(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "incwriter")
	base := t.TempDir()
	gen := func(i int) string { return filepath.Join(base, "gen"+strconv.Itoa(i)) }
	dump(t, tg.pid, gen(0), "--leave-running", "--track")
	var before treeView
	for i := 1; i <= 3; i++ {
		incwriterRound(t, tg, i)
		if i == 3 {
			before = untrackedView(t, tg.pid)
		}
		args := []string{"--prev", gen(i - 1)}
		switch i {
		case 1: // the pages written from the copy-on-write snapshot
			args = append(args, "--leave-running")
		case 2: // the pages written while frozen
			args = append(args, "--leave-running", "--snapshot=false")
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
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// untrackedView is what the kernel shows of the tracked process pid as
// it would show it untracked: its tracked mappings show VmFlag "uw"
// (fs/proc/task_mmu.c show_smap_vma_flags, VM_UFFD_WP), which the
// restored process, not tracked, lacks. Some mapping must show it.
func untrackedView(t *testing.T, pid int) treeView {
	t.Helper()
	tv, err := readTreeView(t, pid)
	if err != nil {
		t.Fatal(err)
	}
	tracked := 0
	for _, v := range tv {
		for k, val := range v {
			if !strings.HasSuffix(k, "/VmFlags") {
				continue
			}
			flags := strings.Fields(val)
			if i := slices.Index(flags, "uw"); i >= 0 {
				v[k] = strings.Join(slices.Delete(flags, i, i+1), " ")
				tracked++
			}
		}
	}
	if tracked == 0 {
		t.Fatalf("no mapping of pid %d shows VmFlag uw: its writes are not tracked", pid)
	}
	return tv
}

// TestIncrementalFallsBack: a dump given a parent the job's writes are
// not tracked since is full, and depends on no parent; a restore of a
// dump whose parent is gone fails before creating anything, naming it.
func TestIncrementalFallsBack(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "incwriter", "256")
	base := t.TempDir()
	gen := func(i int) string { return filepath.Join(base, "gen"+strconv.Itoa(i)) }
	for _, bad := range [][]string{
		{"--track"},              // without --leave-running
		{"--prev", gen(9), "-R"}, // no such dump
	} {
		r := runGocr(t, nil, append([]string{"dump", "-t", strconv.Itoa(tg.pid), "-D", gen(8)}, bad...)...)
		t.Logf("gocr dump %v: %s", bad, strings.TrimSpace(r.stderr))
		if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Fatalf("gocr dump %v: want one line of error\n%v", bad, r)
		}
	}
	dump(t, tg.pid, gen(0), "--leave-running", "--track")
	if r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", gen(0), "-R", "--prev", gen(0)); r.code == 0 {
		t.Fatalf("a dump that is its own parent succeeded\n%v", r)
	}
	incwriterRound(t, tg, 1)
	dump(t, tg.pid, gen(1), "--leave-running", "--prev", gen(0))
	if s := readIncrementalStats(t, gen(1)); s.ReusedBytes == 0 {
		t.Fatalf("generation 1 is not incremental: %v", s.Full)
	}
	incwriterRound(t, tg, 2)
	// gen(0) is not the dump the job's writes are tracked since.
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", gen(2), "--prev", gen(0))
	if r.code != 0 {
		t.Fatalf("dump failed: %v", r)
	}
	if s := readIncrementalStats(t, gen(2)); s.ReusedBytes != 0 || len(s.Full) == 0 || !strings.Contains(r.stderr, "not incremental") {
		t.Fatalf("a dump whose parent the writes are not tracked since took %d bytes from it (%v)\n%v", s.ReusedBytes, s.Full, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	if err := os.RemoveAll(gen(0)); err != nil {
		t.Fatal(err)
	}
	r = runGocr(t, nil, "restore", "-d", "-D", gen(1))
	if r.code == 0 || !strings.Contains(r.stderr, gen(0)) {
		t.Fatalf("restore of a dump whose parent is gone: want an error naming %s\n%v", gen(0), r)
	}
	t.Logf("restore without the parent: %s", strings.TrimSpace(r.stderr))
	if !gone(tg.pid) {
		t.Fatalf("the failed restore left pid %d running", tg.pid)
	}
	pid := restoreDetached(t, tg, gen(2), nil)
	checkResult(t, tg, pid)
}

// TestIncrementalAfterExec: a process that exec'd since the parent dump
// has a new memory its tracker does not act on: the dump takes nothing
// from the parent, and tracks the new image for the next one.
func TestIncrementalAfterExec(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "incwriter", "256")
	base := t.TempDir()
	gen := func(i int) string { return filepath.Join(base, "gen"+strconv.Itoa(i)) }
	dump(t, tg.pid, gen(0), "--leave-running", "--track")
	incwriterRound(t, tg, 1)
	dump(t, tg.pid, gen(1), "--leave-running", "--prev", gen(0))
	if err := syscall.Kill(tg.pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(tg.result + ".execed"); err == nil {
			break
		}
		if time.Now().After(deadline) || tg.exited() {
			t.Fatalf("incwriter did not exec\n%s", tg.diagnostics())
		}
		time.Sleep(5 * time.Millisecond)
	}
	dump(t, tg.pid, gen(2), "--leave-running", "--prev", gen(1))
	if s := readIncrementalStats(t, gen(2)); s.ReusedBytes != 0 {
		t.Fatalf("the dump after an exec took %d bytes from the dump before it", s.ReusedBytes)
	}
	incwriterRound(t, tg, 1)
	before := untrackedView(t, tg.pid)
	dump(t, tg.pid, gen(3), "--prev", gen(2))
	if s := readIncrementalStats(t, gen(3)); s.ReusedBytes == 0 {
		t.Fatalf("the exec'd image is not tracked for the dump after: %v", s.Full)
	}
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, gen(3), nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestIncrementalWritesDuringPreScan: an incremental dump scans the
// job's writes once before the freeze (dump/prescan.go); pages written,
// regions moved, grown, unmapped and split after that scan and before
// the freeze are all in the dump, with and without a snapshot, and a
// dump killed after that scan, which protected the pages again, leaves
// the next one full rather than missing what it saw.
func TestIncrementalWritesDuringPreScan(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "incwriter")
	base := t.TempDir()
	gen := func(i int) string { return filepath.Join(base, "gen"+strconv.Itoa(i)) }
	// heldDump starts an incremental dump held after its pre-scan,
	// and returns it with the file that lets it go on.
	heldDump := func(dir string, args ...string) (*runningGocr, string) {
		t.Helper()
		release := filepath.Join(base, "release-"+filepath.Base(dir))
		cmd := startGocr(t, testhook.Setting(testhook.HoldAfterPreScan, release),
			append([]string{"dump", "-t", strconv.Itoa(tg.pid), "-D", dir}, args...)...)
		waitHook(t, cmd, testhook.HoldAfterPreScan)
		return cmd, release
	}
	goOn := func(cmd *runningGocr, release string) {
		t.Helper()
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var stderr []string
		for line := range cmd.lines {
			stderr = append(stderr, line)
		}
		if err != nil {
			t.Fatalf("gocr dump held after its pre-scan: %v\n%s", err, strings.Join(stderr, "\n"))
		}
		if len(stderr) > 0 {
			t.Logf("gocr: %s", strings.Join(stderr, "\n"))
		}
	}
	incremental := func(i int) {
		t.Helper()
		s := readIncrementalStats(t, gen(i))
		t.Logf("generation %d: wrote %d bytes, took %d from the parent", i, s.PagesBytes, s.ReusedBytes)
		// Of about 88 MiB, up to two rounds of changes (each 8 MiB of
		// pages written, up to 8 MiB of regions new, moved or grown).
		if len(s.Full) > 0 || s.ReusedBytes < 48<<20 || s.PagesBytes > 36<<20 {
			t.Fatalf("generation %d: wrote %d bytes, took %d from the parent, written whole: %v; want an incremental dump",
				i, s.PagesBytes, s.ReusedBytes, s.Full)
		}
	}

	dump(t, tg.pid, gen(0), "--leave-running", "--track")
	cmd, _ := heldDump(gen(9), "--leave-running", "--prev", gen(0))
	killGocr(t, cmd)
	dump(t, tg.pid, gen(1), "--leave-running", "--prev", gen(0))
	if s := readIncrementalStats(t, gen(1)); s.ReusedBytes != 0 || len(s.Full) == 0 {
		t.Fatalf("the dump after one killed after its pre-scan took %d bytes from the parent (%v); want a full dump", s.ReusedBytes, s.Full)
	}

	// Round 1 (pages written, a region mapped) before the pre-scan,
	// round 2 (pages written, regions moved and grown) after it.
	incwriterRound(t, tg, 1)
	cmd, release := heldDump(gen(2), "--leave-running", "--prev", gen(1))
	incwriterRound(t, tg, 2)
	goOn(cmd, release)
	incremental(2)
	// Round 3 (pages written, a region unmapped, another split) after
	// the pre-scan, the pages written while frozen.
	cmd, release = heldDump(gen(3), "--leave-running", "--snapshot=false", "--prev", gen(2))
	incwriterRound(t, tg, 3)
	goOn(cmd, release)
	incremental(3)

	incwriterRound(t, tg, 4)
	before := untrackedView(t, tg.pid)
	dump(t, tg.pid, gen(4), "--prev", gen(3))
	incremental(4)
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, gen(4), nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}
