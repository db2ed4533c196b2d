//go:build linux

package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/gocr/gocr/internal/testhook"
)

// Memory a parent and its children still share copy on write since fork
// (dump/forkshared.go, restorer/stage.go).

// TestForkShared: a parent's 64 MiB of private anonymous memory, which
// its three children and a grandchild still mostly share copy on write,
// is dumped once, not once per process, and is shared again after the
// restore: the tree's anonymous memory (the sum of each process's
// Pss_Anon, which splits a shared page among the processes mapping it)
// is about what it was, not five times it. Every process checks every
// word of the region, its own pages, a page it dropped (zeros, while its
// parent's is not) and the parent's pages written after the forks.
func TestForkShared(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "forkshare")
	pids := trackTree(t, tg.pid)
	if standalone {
		checkResult(t, tg, tg.pid)
		return
	}
	before := treeAnonPss(t, tg.pid)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")

	pagesBytes, sharedBytes := checkForkSharedImages(t, dir)
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, view, nil)
	after := treeAnonPss(t, pid)
	t.Logf("anonymous memory of the tree (sum of Pss_Anon): %d KiB before, %d KiB after the restore; page images %d KiB, %d KiB left to parents",
		before>>10, after>>10, pagesBytes>>10, sharedBytes>>10)
	checkSharedAgain(t, before, after)
	checkResult(t, tg, pid)
}

// TestForkSharedSnapshot: the same with --leave-running, whose memory
// comes from a copy-on-write snapshot of each process, written once the
// tree runs on, and with the region in transparent huge pages where the
// kernel gives them (MADV_HUGEPAGE). The restore maps the shared memory
// at its stage address and moves it into place (the fork-shared-at-stage
// hook; where its place is free it would be mapped there at once): huge
// pages move whole and stay shared where the children did not write.
func TestForkSharedSnapshot(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	t.Setenv(testhook.Env, testhook.ForkSharedAtStage+"=1")
	tg := startTarget(t, "forkshare", "huge")
	pids := trackTree(t, tg.pid)
	before := treeAnonPss(t, tg.pid)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running")
	if st := readSnapshotStats(t, dir); st.SnapshotBytes == 0 || len(st.SnapshotFrozen) > 0 {
		t.Fatalf("not every process snapshotted: %+v", st)
	}
	pagesBytes, sharedBytes := checkForkSharedImages(t, dir)
	tg.killOriginal(t)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitAllGone(t, pids, "killing the original tree")
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, view, nil)
	after := treeAnonPss(t, pid)
	t.Logf("anonymous memory of the tree (sum of Pss_Anon): %d KiB before, %d KiB after the restore; page images %d KiB, %d KiB left to parents",
		before>>10, after>>10, pagesBytes>>10, sharedBytes>>10)
	checkSharedAgain(t, before, after)
	checkResult(t, tg, pid)
}

const forkShareRegion = 64 << 20

// checkForkSharedImages checks that a dump of the forkshare target holds
// its region about once, and returns the size of its page images and
// how much the children left to their parents.
func checkForkSharedImages(t *testing.T, dir string) (pagesBytes, sharedBytes int64) {
	t.Helper()
	imgs, _ := filepath.Glob(filepath.Join(dir, "pages-*.img"))
	for _, img := range imgs {
		if st, err := os.Stat(img); err == nil {
			pagesBytes += st.Size()
		}
	}
	var stats struct {
		ForkSharedBytes int64 `json:"fork_shared_bytes"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stats-dump.json")); err != nil || json.Unmarshal(b, &stats) != nil {
		t.Fatalf("read stats-dump.json: %v", err)
	}
	// Four processes share nearly all of the region with their parents.
	if stats.ForkSharedBytes < 3*forkShareRegion {
		t.Errorf("fork_shared_bytes %d, want at least %d (three children's and a grandchild's share of %d MiB)", stats.ForkSharedBytes, 3*forkShareRegion, forkShareRegion>>20)
	}
	if pagesBytes > forkShareRegion*3/2 {
		t.Errorf("page images hold %d MiB, want about the %d MiB region once", pagesBytes>>20, forkShareRegion>>20)
	}
	return pagesBytes, stats.ForkSharedBytes
}

// checkSharedAgain fails the test if the restored tree holds more than
// 1.2 times the anonymous memory the dumped one did.
func checkSharedAgain(t *testing.T, before, after int64) {
	t.Helper()
	if after > before*6/5 {
		t.Errorf("the restored tree holds %d KiB of anonymous memory, the dumped one %d KiB: the memory shared since fork is not shared again", after>>10, before>>10)
	}
}

var pssAnon = regexp.MustCompile(`(?m)^Pss_Anon:\s+(\d+) kB$`)

// treeAnonPss is the sum of Pss_Anon over the tree of root
// (/proc/PID/smaps_rollup, man 5 proc_pid_smaps_rollup), in bytes.
func treeAnonPss(t *testing.T, root int) int64 {
	t.Helper()
	var sum int64
	for _, e := range treeEntries(t, root) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(e.pid) + "/smaps_rollup")
		if err != nil {
			t.Fatalf("read smaps_rollup of pid %d: %v", e.pid, err)
		}
		m := pssAnon.FindSubmatch(b)
		if m == nil {
			t.Skipf("this kernel's smaps_rollup has no Pss_Anon line (Linux 5.9 on)")
		}
		kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
		sum += kb << 10
	}
	return sum
}

// TestForkSharedLost: pages found shared at the freeze but no longer
// once every process is captured (here, by the fork-shared-lost hook,
// the first 3 of each mapping) are dumped by the child after all: copied
// from the frozen child into its page images, or, with --leave-running,
// written by its snapshot. Every process still finds every word.
func TestForkSharedLost(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	t.Setenv(testhook.Env, testhook.ForkSharedLost+"=3")
	for _, leaveRunning := range []bool{false, true} {
		t.Run(fmt.Sprintf("leave-running=%v", leaveRunning), func(t *testing.T) {
			tg := startTarget(t, "forkshare", "small")
			pids := trackTree(t, tg.pid)
			dir := t.TempDir()
			if leaveRunning {
				dump(t, tg.pid, dir, "--leave-running")
				tg.killOriginal(t)
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			} else {
				dump(t, tg.pid, dir)
				tg.waitDead(t, "a dump without --leave-running")
			}
			waitAllGone(t, pids, "the dump")
			var stats struct {
				Lost int64 `json:"fork_shared_lost_bytes"`
			}
			if b, err := os.ReadFile(filepath.Join(dir, "stats-dump.json")); err != nil || json.Unmarshal(b, &stats) != nil {
				t.Fatalf("read stats-dump.json: %v", err)
			}
			if stats.Lost == 0 {
				t.Fatalf("fork_shared_lost_bytes is 0: the hook took no page as lost")
			}
			checkResult(t, tg, restoreDetached(t, tg, dir, nil))
		})
	}
}

// TestForkSharedIncremental: an incremental dump (--prev) of a tree
// whose children share memory with their parent since fork: the
// children's shared pages are left to the parent, whose own come from
// the dump before; the restore from the incremental dump shares them
// again and every process finds every word.
func TestForkSharedIncremental(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "forkshare", "small")
	pids := trackTree(t, tg.pid)
	before := treeAnonPss(t, tg.pid)
	// Read before --track marks its mappings (VmFlag uw), which the
	// restored tree, not tracked, lacks; the tree waits unchanged
	// between the two dumps.
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	first, second := t.TempDir(), t.TempDir()
	dump(t, tg.pid, first, "--leave-running", "--track")
	dump(t, tg.pid, second, "--prev", first)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	var stats struct {
		ForkShared int64 `json:"fork_shared_bytes"`
		Reused     int64 `json:"incremental_reused_bytes"`
	}
	if b, err := os.ReadFile(filepath.Join(second, "stats-dump.json")); err != nil || json.Unmarshal(b, &stats) != nil {
		t.Fatalf("read stats-dump.json: %v", err)
	}
	if stats.ForkShared == 0 || stats.Reused == 0 {
		t.Fatalf("the incremental dump left %d bytes to parents and took %d from the dump before: want both", stats.ForkShared, stats.Reused)
	}
	pid := restoreDetached(t, tg, second, nil)
	checkTreeView(t, pid, view, nil)
	checkSharedAgain(t, before, treeAnonPss(t, pid))
	checkResult(t, tg, pid)
}
