//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/ipc"
	"github.com/gocr/gocr/internal/testhook"
)

// Memory comes back exactly: every kind of mapping the memory target holds,
// both ways of moving pages into the image, a shared file mapping, and the
// page streams (several page images written and read at once, and what
// happens when the helper threads or fds for them cannot be had).

// TestMemory: about 256 MiB in every kind of mapping the restorer
// rebuilds (brk heap, anonymous, private file mapping with copy-on-write
// pages, read-only, PROT_NONE, a large stack array) come back word for
// word, with /proc/self/maps unchanged line by line.
func TestMemory(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestMemorySplice: the same memory, moved to the image the other way the
// parasite can (vmsplice into pipes that gocr splices into the file), so
// both page transfers stay correct.
func TestMemorySplice(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: []string{"--page-transfer", "splice"}})
	checkResult(t, tg, pid)
}

// TestSharedFileMapping: a MAP_SHARED mapping of a regular file is the
// file's pages again after restore.
func TestSharedFileMapping(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "shmfile", t.TempDir())
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestSharedFileMappingChanged: a file mapped shared and writable is
// never saved (a copy would keep the job's writes from the file), so a
// restore that finds it changed since the dump, in size or modification
// time, fails in one line naming it and leaves no process; with the file
// as it was, the same images restore.
func TestSharedFileMappingChanged(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	files := t.TempDir()
	tg := startTarget(t, "shmfile", files)
	images := t.TempDir()
	dump(t, tg.pid, images)
	tg.waitDead(t, "a dump without --leave-running")
	path := filepath.Join(files, "shared.dat")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write([]byte("x"))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{"mapped file " + path, "changed since the dump"}, nil)
	assertNoProcess(t, tg.pid)

	// The same size again, a later modification time: still refused.
	if err := os.Truncate(path, st.Size()); err != nil {
		t.Fatal(err)
	}
	r = runGocr(t, nil, "restore", "-D", images, "-d")
	assertRefused(t, r, []string{"mapped file " + path, "changed since the dump"}, nil)
	assertNoProcess(t, tg.pid)

	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	pid := restoreDetached(t, tg, images, nil)
	checkResult(t, tg, pid)
}

// pageImages lists the page images of pid in an image directory:
// pages-PID.img and, for page streams above 0, pages-PID.S.img.
func pageImages(t *testing.T, dir string, pid int) []string {
	t.Helper()
	re := regexp.MustCompile(`^pages-` + strconv.Itoa(pid) + `(\.[0-9]+)?\.img$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestPageStreams: a process's memory split over several page images,
// written at once by threads the parasite starts in the target, comes back
// exactly (the memory target checks every word of its heap, anonymous,
// file-backed, read-only and PROT_NONE regions; the PROT_NONE data goes
// through gocr, not the parasite, into the middle of a stream).
func TestPageStreams(t *testing.T) {
	needsRoot(t)
	for _, n := range []int{1, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			tg := startTarget(t, "memory", t.TempDir())
			// The restorer's page-stream helper threads must leave
			// nothing behind that /proc shows.
			before, err := readTreeView(t, tg.pid)
			if err != nil {
				t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
			}
			dir := t.TempDir()
			dump(t, tg.pid, dir, "--page-streams", strconv.Itoa(n))
			tg.waitDead(t, "a dump without --leave-running")
			if got := pageImages(t, dir, tg.pid); len(got) != n {
				t.Fatalf("--page-streams %d wrote page images %q, want %d", n, got, n)
			}
			pid := restoreDetached(t, tg, dir, nil)
			checkTreeView(t, pid, before, nil)
			checkResult(t, tg, pid)
		})
	}
}

// TestPageStreamsNoSemUndo: the restorer's page-stream helper threads
// leave the restored process without a System V semaphore undo list, as
// its dump found it (kcmp KCMP_SYSVSEM against a process that never had
// one). With one, every later dump would have to refuse it wherever a
// semaphore set it may alter exists (dump/sysvipc.go checkSemUndo).
func TestPageStreamsNoSemUndo(t *testing.T) {
	needsRoot(t)
	ref := exec.Command("sleep", "600")
	if err := ref.Start(); err != nil {
		t.Fatalf("start a process without an undo list: %v", err)
	}
	t.Cleanup(func() { ref.Process.Kill(); ref.Wait() })
	tg := startTarget(t, "memory", t.TempDir())
	if same, err := ipc.SameSemUndo(ref.Process.Pid, tg.pid); err != nil || !same {
		t.Fatalf("the target has a semaphore undo list before the dump (kcmp: same %v, %v)", same, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--page-streams", "4")
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, dir, nil)
	if same, err := ipc.SameSemUndo(ref.Process.Pid, pid); err != nil || !same {
		t.Errorf("the restored process has a semaphore undo list it did not have (kcmp: same %v, %v)", same, err)
	}
	checkResult(t, tg, pid)
}

// TestPageStreamsBadInput: a bad --page-streams is refused before the
// target is touched, and a dump whose second page image is missing or cut
// short is refused at restore by that image's name, leaving no process.
func TestPageStreamsBadInput(t *testing.T) {
	needsGocr(t)

	t.Run("DumpBadCount", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		for _, n := range []string{"5", "-1"} {
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir(), "--page-streams", n)
			assertOneLineError(t, r, []string{"--page-streams", n}, nil)
		}
		checkIntactCounter(t, tg)
	})

	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	image := t.TempDir()
	dump(t, tg.pid, image, "--page-streams", "2")
	tg.waitDead(t, "a dump without --leave-running")
	second := "pages-" + strconv.Itoa(tg.pid) + ".1.img"
	cases := []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"Missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"Truncated", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()-4096); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, image)
			c.corrupt(t, imageFile(t, dir, second))
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			r := runGocr(t, nil, "restore", "-D", dir, "-d")
			assertOneLineError(t, r, []string{second}, nil)
			assertNoProcess(t, tg.pid)
		})
	}
}

// pidsCgroup makes a pids cgroup that allows no new task and moves pid
// into it, and returns a function that reads how often a fork or clone was
// refused there (the "max" count of pids.events,
// Documentation/admin-guide/cgroup-v1/pids.rst). It skips the test, saying
// why, where no pids hierarchy can be written.
func pidsCgroup(t *testing.T, pid int) func() int {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var root string
	for _, line := range strings.Split(string(mi), "\n") {
		// ... MOUNTPOINT ... - cgroup cgroup rw,pids (cgroup v1)
		f := strings.Fields(line)
		if len(f) < 10 || f[len(f)-3] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(f[len(f)-1], ",") {
			if o == "pids" {
				root = f[4]
			}
		}
	}
	if root == "" {
		t.Skip("needs a cgroup v1 pids hierarchy to refuse the parasite a thread; none is mounted here")
	}
	dir := filepath.Join(root, fmt.Sprintf("gocr-test-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a pids cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The dumped process is gone by now; rmdir waits for nothing.
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	for _, w := range [][2]string{{"cgroup.procs", strconv.Itoa(pid)}, {"pids.max", "1"}} {
		if err := os.WriteFile(filepath.Join(dir, w[0]), []byte(w[1]), 0); err != nil {
			t.Fatalf("write %s to %s: %v", w[1], filepath.Join(dir, w[0]), err)
		}
	}
	return func() int {
		b, err := os.ReadFile(filepath.Join(dir, "pids.events"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "max ")))
		if err != nil {
			t.Fatalf("parse pids.events %q: %v", b, err)
		}
		return n
	}
}

// TestPageStreamsWithoutThreads: when the process may not have another
// thread (here a pids cgroup at its limit; RLIMIT_NPROC or a seccomp
// filter do the same), the parasite writes every stream itself, one after
// another, and the dump is as good.
func TestPageStreamsWithoutThreads(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	refused := pidsCgroup(t, tg.pid)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--page-streams", "3")
	tg.waitDead(t, "a dump without --leave-running")
	if n := refused(); n == 0 {
		t.Fatalf("the pids cgroup refused no clone: the parasite's helper threads were not refused, so this test did not test the fallback")
	}
	if got := pageImages(t, dir, tg.pid); len(got) != 3 {
		t.Fatalf("page images %q, want 3", got)
	}
	pid := restoreDetached(t, tg, dir, nil)
	// The root comes back in the restore's cgroups, the test's, not in
	// the pids cgroup the test moved it to (docs/STATE.md, "Cgroup
	// membership"), by design.
	checkTreeView(t, pid, view, []string{"cgroup"})
	checkResult(t, tg, pid)
}

// TestPageStreamsRestoreTidTaken: the restore reads page streams above 0
// with helper threads whose TIDs gocr picks free; when such a TID has been
// taken by the time the restorer asks for it (here: offered one in use,
// this test's own PID), clone3 refuses and the process's first thread
// reads those streams itself, and the memory still comes back exactly.
func TestPageStreamsRestoreTidTaken(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--page-streams", "3")
	tg.waitDead(t, "a dump without --leave-running")
	t.Setenv(testhook.Env, testhook.PageHelperTid+"="+strconv.Itoa(os.Getpid()))
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestPageStreamsAtFdLimit: a process with room for only some more fds
// (RLIMIT_NOFILE) gets as many page streams as it can take files for; the
// images no longer wanted are removed, and the memory comes back exactly.
func TestPageStreamsAtFdLimit(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "memory", t.TempDir())
	// The parasite holds four fds once in (two page pipes, the socket,
	// the command pipe), and never more while it makes them
	// (parasite/infect.go, handpipes.go, the blob's setup in
	// parasite/c/parasite.c); then one per page image passed.
	// Room for two images: three streams asked, two given.
	leaveFdRoom(t, tg.pid, 4+2)
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--page-streams", "3")
	tg.waitDead(t, "a dump without --leave-running")
	if got := pageImages(t, dir, tg.pid); len(got) != 2 {
		t.Fatalf("page images %q with room for two files, want 2", got)
	}
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestParasiteSetupAtFdLimit: a process with room for three more fds
// (RLIMIT_NOFILE) takes the injected memfd and both ends of the file
// socket, but not all three pipes the blob's setup then receives (the
// kernel drops what does not fit, MSG_CTRUNC). The dump fails in one
// line naming the limit; the process runs on with exactly the fds and
// mappings it had, and passes its own check.
func TestParasiteSetupAtFdLimit(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 10)
	leaveFdRoom(t, tg.pid, 3)
	before := fdsAndMaps(t, tg.pid)
	dir := t.TempDir()
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
	assertRefused(t, r, []string{"pid " + strconv.Itoa(tg.pid), "open file limit"}, nil)
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
		t.Errorf("a failed dump left an inventory.img: the directory looks complete")
	}
	if extra := fdsAndMaps(t, tg.pid).notIn(before); len(extra) > 0 {
		t.Errorf("pid %d after the failed dump has what it did not have before: %q", tg.pid, extra)
	}
	checkIntactCounter(t, tg)
}

// leaveFdRoom sets pid's RLIMIT_NOFILE so that it has room for room more
// fds than it has open, its fd numbers below the limit.
func leaveFdRoom(t *testing.T, pid, room int) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	maxFd := 0
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("fd entry %q: %v", e.Name(), err)
		}
		maxFd = max(maxFd, n)
	}
	limit := uint64(len(entries) + room)
	if uint64(maxFd) >= limit {
		t.Fatalf("target pid %d has fds up to %d, above the limit %d this test sets", pid, maxFd, limit)
	}
	rl := unix.Rlimit{Cur: limit, Max: limit}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &rl, nil); err != nil {
		t.Fatalf("prlimit NOFILE of pid %d: %v", pid, err)
	}
}

// TestVmFlags: madvise advice (huge pages or not, fork behaviour, core
// dumps, access pattern, KSM) and mlock, mlock2 on fault come back on
// each mapping: its smaps VmFlags read as before (vmflags.c).
func TestVmFlags(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "vmflags")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestVmFlagsSnapshot: the same with --leave-running --snapshot, which
// reads the flags before the freeze; a process with locked mappings
// (mlock, mlock2 on fault) has them read again while frozen
// (dump/mapsbefore.go), and every flag comes back as it was.
func TestVmFlagsSnapshot(t *testing.T) {
	needsRoot(t)
	snapshotCycle(t, startTarget(t, "vmflags"))
}

// TestVmFlagsLowMapping: a process with a page at the lowest address it
// may map leaves no room below for the parasite, which goes where the
// kernel puts it; the dump still reads mlockall(MCL_FUTURE|MCL_ONFAULT)
// from the parasite's mapping (vmflags.c "low").
func TestVmFlagsLowMapping(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "vmflags", "low")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// sysMseal is mseal(2)'s number on x86-64
// (arch/x86/entry/syscalls/syscall_64.tbl).
const sysMseal = 462

// TestVmFlagRefused: a sealed mapping (mseal(2), VmFlags "sl") cannot be
// restored as it is, so the dump refuses in one line naming the flag and
// the process runs on.
func TestVmFlagRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	// mseal(2) of nothing succeeds where the call exists (Linux 6.10).
	if _, _, e := unix.Syscall(sysMseal, 0, 0, 0); e != 0 {
		t.Skipf("this kernel has no mseal(2) (%v), so no sealed mapping to refuse", e)
	}
	tg := startTarget(t, "vmflags", "seal")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{`VmFlag "sl"`, "sealed"}, nil)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}
