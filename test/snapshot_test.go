//go:build linux

package test

import (
	"encoding/json"
	"fmt"
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

// dump --leave-running --snapshot: the job is frozen only while a
// copy-on-write snapshot of it is taken, and runs on while its memory is
// written from the snapshot. The cowwriter target writes its memory
// without pause and checks, word by word as it overwrites them, that its
// memory is the state of one instant; it also waits for any child and
// counts SIGCHLD, so the snapshot process must never show in its tree.

// snapshotStats is what a dump's stats file says of its snapshots.
type snapshotStats struct {
	FrozenNs            int64    `json:"frozen_ns"`
	SnapshotNs          int64    `json:"snapshot_ns"`
	SnapshotBytes       int64    `json:"snapshot_bytes"`
	SnapshotCopiedBytes int64    `json:"snapshot_copied_bytes"`
	SnapshotFrozen      []string `json:"snapshot_frozen"`
}

func readSnapshotStats(t *testing.T, dir string) snapshotStats {
	t.Helper()
	return readDumpStats[snapshotStats](t, dir)
}

// readDumpStats reads the stats-dump.json a dump wrote into dir, the
// fields S names.
func readDumpStats[S any](t *testing.T, dir string) S {
	t.Helper()
	var s S
	b, err := os.ReadFile(filepath.Join(dir, "stats-dump.json"))
	if err != nil {
		t.Fatalf("read dump stats: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("dump stats: %v\n%s", err, b)
	}
	return s
}

// snapshotProcesses lists the processes gocr's snapshots of tg run as:
// named gocr-snapshot, running tg's executable.
func snapshotProcesses(tg *target) []int {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", tg.pid))
	if err != nil {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "gocr-snapshot" {
			continue
		}
		if x, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); x == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkNoSnapshotLeft requires every snapshot process of tg to be gone
// (a zombie may wait a moment for its reaper, PID 1).
func checkNoSnapshotLeft(t *testing.T, tg *target) {
	t.Helper()
	for _, pid := range snapshotProcesses(tg) {
		if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("snapshot process %d of pid %d still there (state %s)", pid, tg.pid, procState(pid))
		}
	}
}

// TestLeaveRunningSnapshot: the job, two threads writing its memory all
// the while, is dumped with --snapshot; the original runs on and passes its own
// check (memory consistent, no child ever seen), and the image restores
// to the state of one instant in every region: private memory from the
// snapshot, MAP_SHARED anonymous memory and a shared memfd, MADV_DONTFORK
// and MADV_WIPEONFORK memory captured while frozen.
func TestLeaveRunningSnapshot(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "cowwriter")
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running", "--snapshot")
	st := readSnapshotStats(t, dir)
	if st.SnapshotBytes == 0 || len(st.SnapshotFrozen) > 0 {
		t.Fatalf("no snapshot taken: %+v", st)
	}
	t.Logf("frozen %.1f ms (fork %.1f ms); %d bytes from the snapshot, %d of them copied for the job meanwhile",
		float64(st.FrozenNs)/1e6, float64(st.SnapshotNs)/1e6, st.SnapshotBytes, st.SnapshotCopiedBytes)
	if tg.exited() {
		t.Fatalf("original exited after dump --leave-running --snapshot\n%s", tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	checkNoSnapshotLeft(t, tg)
	checkResult(t, tg, tg.pid)
	restoreAfterPass(t, tg, dir, before)
}

// restoreAfterPass restores tg's image once the original has passed its
// check and exited, and has the restored process check itself; with a
// view from before the dump, the oracle compares it first.
func restoreAfterPass(t *testing.T, tg *target, dir string, before treeView) {
	t.Helper()
	if err := os.Remove(tg.result); err != nil {
		t.Fatalf("remove the original's result: %v", err)
	}
	pid := restoreDetached(t, tg, dir, nil)
	if before != nil {
		checkTreeView(t, pid, before, nil)
	}
	checkResult(t, tg, pid)
}

// TestLeaveRunningSnapshotMemory: every kind of mapping the memory target
// holds (PROT_NONE read through /proc/PID/mem of the snapshot process,
// copy-on-write pages of a private file mapping, a sparse region, the
// stack) comes back word for word from a snapshot, with /proc/self/maps
// unchanged, and all the kernel shows of it as before (oracle_test.go).
func TestLeaveRunningSnapshotMemory(t *testing.T) {
	needsRoot(t)
	snapshotCycle(t, startTarget(t, "memory", t.TempDir()))
}

// snapshotCycle dumps tg with --leave-running --snapshot, requires a
// snapshot taken and gone, kills the original, restores the image, and
// has the oracle compare what the kernel shows with before the dump and
// the restored process check itself.
func snapshotCycle(t *testing.T, tg *target) {
	t.Helper()
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running", "--snapshot")
	if st := readSnapshotStats(t, dir); st.SnapshotBytes == 0 {
		t.Fatalf("no snapshot taken: %+v", st)
	}
	checkNoSnapshotLeft(t, tg)
	tg.killOriginal(t)
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestLeaveRunningSnapshotSubreaper: a child subreaper would adopt the
// snapshot process (the fork child that makes it exits), so its memory
// is written while it is frozen instead, and the stats say why; it never
// sees a child.
func TestLeaveRunningSnapshotSubreaper(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "cowwriter", "subreaper")
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running", "--snapshot")
	st := readSnapshotStats(t, dir)
	if st.SnapshotBytes != 0 || len(st.SnapshotFrozen) != 1 || !strings.Contains(st.SnapshotFrozen[0], "subreaper") {
		t.Fatalf("want the memory written frozen because of the subreaper, got %+v", st)
	}
	checkResult(t, tg, tg.pid)
	restoreAfterPass(t, tg, dir, nil)
}

// TestLeaveRunningSnapshotGocrKilled: gocr is SIGKILLed with a snapshot
// process alive, once while the job is still frozen with the parasite in
// it, once while the snapshot writes and the job runs. The parasite cures
// itself, the snapshot process exits at its command pipe's EOF, and the
// job runs on untouched: its memory consistent, no child ever seen, no
// process of gocr's left.
func TestLeaveRunningSnapshotGocrKilled(t *testing.T) {
	for _, hook := range []string{testhook.PauseAfterSnapshot, testhook.PauseInSnapshotWrite} {
		t.Run(hook, func(t *testing.T) {
			needsRoot(t)
			needsGocr(t)
			tg := startTarget(t, "cowwriter")
			dir := t.TempDir()
			cmd := startGocr(t, testhook.Setting(hook, "20s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir,
				"--leave-running", "--snapshot")
			waitHook(t, cmd, hook)
			snaps := snapshotProcesses(tg)
			if len(snaps) != 1 {
				t.Fatalf("gocr holds at %s, but pid %d has %d snapshot processes %v, want 1", hook, tg.pid, len(snaps), snaps)
			}
			killGocr(t, cmd)
			if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
				t.Errorf("a killed dump left an inventory.img: the directory looks complete")
			}
			checkNoSnapshotLeft(t, tg)
			// Cured by gocr, or by itself at the command pipe's EOF:
			// every injected fd is closed, leaving stdio, and the
			// parasite's region is unmapped (docs/INTERNALS.md, dump
			// step 3).
			want := 3
			deadline := time.Now().Add(10 * time.Second)
			for {
				fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(tg.pid), "fd"))
				if len(fds) <= want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pid %d still has %d fds 10 s after gocr died, want %d", tg.pid, len(fds), want)
				}
				time.Sleep(20 * time.Millisecond)
			}
			waitNoParasite(t, tg.pid)
			assertUntouched(t, tg.pid)
			checkResult(t, tg, tg.pid)
		})
	}
}

// cgroupV1 makes a cgroup in the v1 hierarchy of controller, named for
// pid, moves pid into it and writes settings (file, value) after, and
// returns its directory. It skips the test, saying why, where no such
// hierarchy can be written.
func cgroupV1(t *testing.T, controller string, pid int, settings ...[2]string) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var root string
	for _, line := range strings.Split(string(mi), "\n") {
		// ... MOUNTPOINT ... - cgroup cgroup rw,CONTROLLER (cgroup v1)
		f := strings.Fields(line)
		if len(f) < 10 || f[len(f)-3] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(f[len(f)-1], ",") {
			if o == controller {
				root = f[4]
			}
		}
	}
	if root == "" {
		t.Skipf("needs a cgroup v1 %s hierarchy; none is mounted here", controller)
	}
	dir := filepath.Join(root, fmt.Sprintf("gocr-test-%s-%d", controller, pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a %s cgroup: %v", controller, err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	for _, w := range append([][2]string{{"cgroup.procs", strconv.Itoa(pid)}}, settings...) {
		if err := os.WriteFile(filepath.Join(dir, w[0]), []byte(w[1]), 0); err != nil {
			t.Fatalf("write %s to %s: %v", w[1], filepath.Join(dir, w[0]), err)
		}
	}
	return dir
}

// TestLeaveRunningSnapshotNoRoom: where a snapshot would not fit, the
// memory is written while the job is frozen, as without one, and the
// stats say why: a pids cgroup with no room for the snapshot process
// (fork fails with EAGAIN), a memory cgroup whose limit leaves less room
// than the job's anonymous memory (the copies the job makes while the
// snapshot holds its pages are charged there). Either way the dump
// restores to one instant and the job never sees a child.
func TestLeaveRunningSnapshotNoRoom(t *testing.T) {
	for _, c := range []struct {
		name, controller, why string
		settings              [][2]string
	}{
		{"pids", "pids", "resource temporarily unavailable", [][2]string{{"pids.max", "1"}}},
		{"memory", "memory", "memory cgroup", [][2]string{{"memory.limit_in_bytes", strconv.Itoa(48 << 20)}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			needsRoot(t)
			needsGocr(t)
			tg := startTarget(t, "cowwriter")
			cgroupV1(t, c.controller, tg.pid, c.settings...)
			dir := t.TempDir()
			dump(t, tg.pid, dir, "--leave-running")
			st := readSnapshotStats(t, dir)
			if st.SnapshotBytes != 0 || len(st.SnapshotFrozen) != 1 || !strings.Contains(st.SnapshotFrozen[0], c.why) {
				t.Fatalf("want the memory written frozen because of the %s cgroup (%q), got %+v", c.controller, c.why, st)
			}
			checkNoSnapshotLeft(t, tg)
			checkResult(t, tg, tg.pid)
			restoreAfterPass(t, tg, dir, nil)
		})
	}
}

// TestLeaveRunningSnapshotTree: every process of a tree (sessions,
// groups, a zombie) is snapshotted, two at a time, and the tree comes
// back as it was.
func TestLeaveRunningSnapshotTree(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTargetOpts(t, "tree", startOpts{settle: 200 * time.Millisecond})
	const nproc = 20
	before := settledTree(t, tg.pid, nproc)
	pids := trackTree(t, tg.pid)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running")
	st := readSnapshotStats(t, dir)
	if st.SnapshotBytes == 0 || len(st.SnapshotFrozen) > 0 {
		t.Fatalf("not every process snapshotted: %+v", st)
	}
	checkNoSnapshotLeft(t, tg)
	waitTreeAsBefore(t, tg.pid, before, "the dump")
	tg.killOriginal(t)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitAllGone(t, pids, "killing the original tree")
	pid := restoreDetached(t, tg, dir, nil)
	waitTreeAsBefore(t, pid, before, "the restore")
	checkTreeView(t, pid, view, nil)
	checkResult(t, tg, pid)
	waitAllGone(t, pids, "the root reported PASS")
}

// waitTreeAsBefore waits until the tree under root is as before: its
// processes, released or restored, may still be on their way back to
// their sleep.
func waitTreeAsBefore(t *testing.T, root int, before []procEntry, after string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		now := treeEntries(t, root)
		if slices.Equal(before, now) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree before the dump:\n%safter %s:\n%s", entriesString(before), after, entriesString(now))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
