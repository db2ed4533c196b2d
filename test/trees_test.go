//go:build linux

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settledTree waits until every live process of the tree is asleep (S) so
// two snapshots can be compared state for state, and returns it.
func settledTree(t *testing.T, root, want int) []procEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		es := treeEntries(t, root)
		ok := len(es) == want
		for _, e := range es {
			if e.state != "S" && e.state != "Z" {
				ok = false
			}
		}
		if ok {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree of %d not settled: want %d processes all in S or Z, have:\n%s", root, want, entriesString(es))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func entriesString(es []procEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\t%v\n", e)
	}
	return b.String()
}

// TestTree: a 20-process, 3-level C tree (tree.c: a session with a second
// process group one grandchild joins, a zombie, a pipe with 100000 unread
// bytes and a 256 KiB size, shared anonymous memory written before and
// after) is dumped with -t and restored. The root checks the whole tree and
// writes one verdict; from outside, the (pid, ppid, pgid, sid, state) of
// every process must be the same before the dump and after the restore,
// and every process must be gone after the root reported.
func TestTree(t *testing.T) { testTree(t, "-t") }

// TestTreeByPgid: the same tree, dumped as the process group its root
// leads (--pgid): the group's members are the root and its descendants.
func TestTreeByPgid(t *testing.T) { testTree(t, "--pgid") }

func testTree(t *testing.T, selector string) {
	needsRoot(t)
	tg := startTargetOpts(t, "tree", startOpts{settle: 200 * time.Millisecond})
	const nproc = 20
	before := settledTree(t, tg.pid, nproc)
	if e := before[0]; e.pid != tg.pid || e.sid != tg.pid || e.pgid != tg.pid {
		t.Fatalf("tree root is not a session and group leader: %v", e)
	}
	var zombies, groups = 0, map[int]bool{}
	for _, e := range before {
		if e.state == "Z" {
			zombies++
		}
		groups[e.pgid] = true
	}
	if zombies != 1 || len(groups) != 2 {
		t.Fatalf("tree before the dump has %d zombies and %d process groups, want 1 and 2:\n%s", zombies, len(groups), entriesString(before))
	}
	pids := trackTree(t, tg.pid)
	pid := tg.pid
	if !standalone {
		view, err := readTreeView(t, tg.pid)
		if err != nil {
			t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
		}
		dir := t.TempDir()
		if r := runGocr(t, nil, "dump", selector, strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
			t.Fatalf("dump %s %d failed: %v", selector, tg.pid, r)
		}
		tg.waitDead(t, "a dump without --leave-running")
		waitAllGone(t, pids, "the dump")
		pid = restoreDetached(t, tg, dir, nil)
		settledAgain(t, pid, before)
		checkTreeView(t, pid, view, nil)
	}
	checkResult(t, tg, pid)
	waitAllGone(t, pids, "the root reported PASS (it reaps its children, they theirs)")
}

// settledAgain waits until the restored tree under pid is process for
// process what it was (restored processes may still be running toward
// their sleep).
func settledAgain(t *testing.T, pid int, before []procEntry) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		after := treeEntries(t, pid)
		if slices.Equal(before, after) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree before the dump:\n%safter the restore:\n%s", entriesString(before), entriesString(after))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPipeline: `producer | transform | consumer` in bash (pipeline.sh),
// its own session via setsid, dumped mid-stream with --sid while a backlog
// of numbers is in the pipes, restored, then stopped by a file. The output
// must be exactly the squares of every number produced: nothing in flight
// lost, nothing repeated.
func TestPipeline(t *testing.T) {
	needsRoot(t)
	tg, pids := startPipeline(t)
	out := filepath.Join(tg.dir, "out")
	produced := filepath.Join(tg.dir, "produced")
	// Wait for a backlog, so the dump catches data in the pipes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, o := countLines(t, produced), countLines(t, out)
		if o >= 40 && p-o >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backlog of 50 numbers after 10 s: produced %d, out %d\n%s", p, o, tg.diagnostics())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := tg.pid
	atDump := 0
	if !standalone {
		before := readProcessViews(t, steadyPipelinePids(t, tg.pid, pids)...)
		dir := t.TempDir()
		r := runGocr(t, nil, "dump", "--sid", strconv.Itoa(tg.pid), "-D", dir)
		if r.code != 0 {
			t.Fatalf("dump failed: %v", r)
		}
		tg.waitDead(t, "a dump without --leave-running")
		waitAllGone(t, pids, "the dump")
		atDump = countLines(t, out)
		inFlight := countLines(t, produced) - atDump
		t.Logf("at the dump: %d numbers out, at least %d in flight", atDump, inFlight)
		if inFlight < 40 {
			t.Fatalf("only %d numbers in flight at the dump, want a backlog of at least 40", inFlight)
		}
		pid = restoreDetached(t, tg, dir, nil)
		e, err := readProcEntry(pid)
		if err != nil || e.sid != pid || e.pgid != pid {
			t.Fatalf("restored pipeline root: %v, %v; want its own session and group", e, err)
		}
		checkProcessViews(t, before, nil)
	}
	// Let the restored pipeline drain part of the backlog and produce more.
	deadline = time.Now().Add(10 * time.Second)
	for countLines(t, out) < atDump+30 {
		if time.Now().After(deadline) {
			t.Fatalf("restored pipeline stuck at %d lines out (%d at the dump)\n%s", countLines(t, out), atDump, tg.diagnostics())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopPipeline(t, tg, pid, "PASS")
	p := checkSequence(t, produced, func(i int) int { return i })
	o := checkSequence(t, out, func(i int) int { return i * i })
	if o != p {
		t.Fatalf("out has %d squares, the producer emitted %d numbers", o, p)
	}
	waitAllGone(t, pids, "the pipeline ended")
}

// startPipeline starts pipeline.sh under setsid and tracks its processes.
func startPipeline(t *testing.T) (*target, []int) {
	t.Helper()
	setsid, err := exec.LookPath("setsid")
	if err != nil {
		t.Fatalf("pipeline needs setsid(1): %v", err)
	}
	tg := startTargetOpts(t, "pipeline", startOpts{wrap: []string{setsid}})
	// setsid(1) execs in place when it is not a group leader, as a
	// child of os/exec is not: tg.pid is the bash root.
	if e, err := readProcEntry(tg.pid); err != nil || e.sid != tg.pid {
		t.Fatalf("pipeline root pid %d is not a session leader: %v, %v", tg.pid, e, err)
	}
	// The three stages, and maybe a sleep.
	pids := trackTree(t, tg.pid)
	if len(pids) < 3 {
		t.Fatalf("pipeline root %d has %d descendants, want the 3 stages", tg.pid, len(pids))
	}
	return tg, pids
}

// steadyPipelinePids are the processes of the pipeline whose view the
// oracle (oracle_test.go) can compare: the root, which waits for its
// stages, and the transform stage, all bash builtins reading one pipe
// and writing the other. The producer and the consumer each start a
// sleep a line and open a file a line, so what /proc shows of them
// (children, fds) is another thing at every moment.
func steadyPipelinePids(t *testing.T, root int, stages []int) []int {
	t.Helper()
	for _, pid := range stages {
		in, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid))
		out, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
		if strings.HasPrefix(in, "pipe:") && strings.HasPrefix(out, "pipe:") {
			return []int{root, pid}
		}
	}
	t.Fatalf("no stage of pipeline %d reads a pipe and writes one: %v", root, stages)
	return nil
}

// stopPipeline creates the stop file and waits for the root's verdict.
func stopPipeline(t *testing.T, tg *target, pid int, want string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tg.dir, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := waitResult(t, tg, pid)
	if !strings.HasPrefix(v, want) {
		t.Fatalf("pipeline verdict %q, want %s\n%s", v, want, tg.diagnostics())
	}
	if pid == tg.pid && !tg.exited() {
		select {
		case <-tg.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("pipeline root wrote its verdict but did not exit")
		}
	} else if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored pipeline root %d wrote its verdict but is still running", pid)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return bytes.Count(b, []byte("\n"))
}

// checkSequence requires path to be exactly the lines f(0), f(1), ... f(n-1)
// and returns n.
func checkSequence(t *testing.T, path string, f func(int) int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a partial line", path)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if l != strconv.Itoa(f(i)) {
			lo := max(i-3, 0)
			t.Fatalf("%s line %d is %q, want %d (lines %d..: %q)", path, i+1, l, f(i), lo+1, lines[lo:min(i+3, len(lines))])
		}
	}
	return len(lines)
}

// TestWaiter: dumped while blocked in wait4 on its child, the restored
// parent gets its child's exit once the child is let go.
func TestWaiter(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "waiter")
	// The syscall number is the first field of /proc/PID/syscall
	// (man 5 proc); 61 is wait4 (arch/x86/entry/syscalls/syscall_64.tbl).
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(tg.pid), "syscall"))
		if err == nil && strings.HasPrefix(string(b), "61 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target is not blocked in wait4: /proc/%d/syscall = %q (%v)", tg.pid, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := checkpointRestore(t, tg, cycleOpts{})
	if err := os.WriteFile(tg.result+".go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	checkResult(t, tg, pid)
}

// TestSharedTables: children cloned with CLONE_FILES, CLONE_FS and both
// come back sharing their parent's fd table or cwd, root and umask, and
// nothing more: the target checks with kcmp, and that an fd or a chdir
// and umask by either one shows in the other; the table's epoll watch
// and a child's flock lock are there again.
func TestSharedTables(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "sharedtables", "shared")
	pid := checkpointRestoreTree(t, tg)
	checkResult(t, tg, pid)
}

// TestSharedTablesRefused: a child that shares its parent's address
// space or signal handlers without being a thread would come back with its
// own, as would siblings sharing an fd table their parent does not (no
// process of the dump to clone them from) and a child sharing its fd
// table or fs with a parent left out of the dump: the dump refuses in one
// line naming the processes and what they share, and the tree runs on.
func TestSharedTablesRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	for _, c := range []struct {
		mode, want string
		withParent bool
	}{
		{"files", "fd table", false}, {"fs", "cwd, root and umask", false},
		{"vm", "address space", true}, {"sighand", "address space", true},
	} {
		t.Run(c.mode, func(t *testing.T) {
			tg := startTarget(t, "sharedtables", c.mode)
			pids := trackTree(t, tg.pid)
			if len(pids) != 1 {
				t.Fatalf("target pid %d has children %v, want one", tg.pid, pids)
			}
			if c.withParent {
				r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
				assertRefused(t, r, []string{strconv.Itoa(tg.pid), strconv.Itoa(pids[0]), c.want}, nil)
			}
			// The child alone shares with a parent outside the dump.
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(pids[0]), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(pids[0]), "its parent " + strconv.Itoa(tg.pid), c.want}, nil)
			assertUntouched(t, tg.pid)
			assertUntouched(t, pids[0])
			checkResult(t, tg, tg.pid)
		})
	}
	t.Run("posixlock", func(t *testing.T) {
		// A POSIX lock's owner is the fd table (fs/locks.c), shown in
		// the fdinfo of both processes with the pid of the parent.
		tg := startTarget(t, "sharedtables", "posixlock")
		pids := trackTree(t, tg.pid)
		if len(pids) != 1 {
			t.Fatalf("target pid %d has children %v, want one", tg.pid, pids)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(pids[0]), "POSIX lock", "pid " + strconv.Itoa(tg.pid)}, nil)
		assertUntouched(t, tg.pid)
		assertUntouched(t, pids[0])
		checkResult(t, tg, tg.pid)
	})
	t.Run("siblings", func(t *testing.T) {
		tg := startTarget(t, "sharedtables", "siblings")
		var pids []int
		deadline := time.Now().Add(5 * time.Second)
		for len(pids) != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("target pid %d has children %v, want two", tg.pid, pids)
			}
			time.Sleep(10 * time.Millisecond)
			pids = childrenOf(tg.pid)
		}
		trackTree(t, tg.pid)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(pids[0]), strconv.Itoa(pids[1]), "fd table"}, nil)
		assertUntouched(t, tg.pid)
		checkResult(t, tg, tg.pid)
	})
}

// TestPipelineForegroundRestore: a pipeline restored by a `gocr restore`
// that stays in the foreground ends as it would have: once the producer
// stops, end of file flows down the pipes to the consumer, which needs
// every write end of each pipe closed — gocr must hold none of them while
// it waits for the job.
func TestPipelineForegroundRestore(t *testing.T) {
	needsRoot(t)
	if standalone {
		t.Skip("checks gocr restore itself: nothing to check standalone")
	}
	tg, pids := startPipeline(t)
	out := filepath.Join(tg.dir, "out")
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, out) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline wrote %d lines in 10 s\n%s", countLines(t, out), tg.diagnostics())
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := t.TempDir()
	if r := runGocr(t, nil, "dump", "--sid", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump failed: %v", r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, _, errPath := gocrCmd(t, ctx, nil, "restore", "-D", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gocr restore: %v", err)
	}
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	waitRunning := time.Now().Add(10 * time.Second)
	for gone(tg.pid) {
		if time.Now().After(waitRunning) {
			t.Fatalf("pid %d not restored within 10 s", tg.pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopPipeline(t, tg, tg.pid, "PASS")
	err := cmd.Wait()
	stderr, _ := os.ReadFile(errPath)
	if ctx.Err() != nil || err != nil {
		t.Fatalf("gocr restore did not end with the pipeline (%v, %v); stderr: %s", err, ctx.Err(), stderr)
	}
	waitAllGone(t, pids, "the pipeline ended")
}
