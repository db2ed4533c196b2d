//go:build linux

package test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// threadsTotal is the threads target's main thread and its 50 workers.
const threadsTotal = 51

// tasks returns pid's threads, TID -> comm, from /proc/PID/task.
func tasks(t *testing.T, pid int) map[int]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	m := map[int]string{}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("%s: entry %q is not a TID", dir, e.Name())
		}
		comm, err := os.ReadFile(filepath.Join(dir, e.Name(), "comm"))
		if err != nil {
			t.Fatalf("read comm of tid %d: %v", tid, err)
		}
		m[tid] = strings.TrimSpace(string(comm))
	}
	return m
}

// tidByComm returns the TID of pid's thread named comm.
func tidByComm(t *testing.T, pid int, comm string) int {
	t.Helper()
	for tid, c := range tasks(t, pid) {
		if c == comm {
			return tid
		}
	}
	t.Fatalf("pid %d has no thread named %q", pid, comm)
	return 0
}

// TestThreads: 50 threads in different states (spinning, blocked on a
// normal and a priority-inheritance mutex, on a condition variable, in
// nanosleep, in read on an internal pipe, in epoll_wait), each with its own
// mask, TLS and name, verify themselves after a restore; from outside,
// /proc/PID/task must list the same TIDs with the same names.
func TestThreads(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"WithPipes", nil},
		// The same without the pipe group, whose threads sleep instead,
		// so the rest is tested where internal pipes are refused.
		{"NoPipes", []string{"nopipe"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			needsRoot(t)
			tg := startTargetOpts(t, "threads", startOpts{args: c.args, settle: 200 * time.Millisecond})
			before := tasks(t, tg.pid)
			if len(before) != threadsTotal {
				t.Fatalf("target has %d threads before the dump, want %d: %v", len(before), threadsTotal, before)
			}
			pid := checkpointRestore(t, tg, cycleOpts{})
			after := tasks(t, pid)
			if !maps.Equal(before, after) {
				t.Fatalf("threads before the dump (TID: comm):\n%v\nafter the restore:\n%v", sortedTasks(before), sortedTasks(after))
			}
			// Past the longest sleep (443 ms), so every sleep that spanned
			// the dump completes before the check.
			time.Sleep(600 * time.Millisecond)
			checkResult(t, tg, pid)
		})
	}
}

func sortedTasks(m map[int]string) string {
	tids := make([]int, 0, len(m))
	for tid := range m {
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	var b strings.Builder
	for _, tid := range tids {
		fmt.Fprintf(&b, "%d:%s ", tid, m[tid])
	}
	return b.String()
}

// TestGoProgram checkpoints a Go program: GOMAXPROCS(2) with spinning
// goroutines only async preemption can interrupt, a 100-stage channel
// pipeline with a checksum, 100 goroutines blocked on receives, tickers,
// timers, time.Sleep, the garbage collector and os/signal.Notify.
func TestGoProgram(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "goprog", startOpts{settle: 200 * time.Millisecond})
	// The Go runtime starts an OS thread, and maps memory for it, when
	// it finds a goroutine's thread blocked in a system call past its
	// time (runtime/proc.go sysmon, retake): after any pause the job
	// had, the freeze of a dump among them, and while it warms up, for
	// longer the slower the CPU. The oracle leaves its threads and
	// mappings out; the target checks its own state.
	pid := checkpointRestore(t, tg, cycleOpts{volatile: []string{"task/", "status/Threads", "maps/"}})
	// Let every counter move after the restore, as it is checked.
	time.Sleep(500 * time.Millisecond)
	checkResult(t, tg, pid)
}

// TestThreadChurn: threads that keep creating and joining short-lived
// threads (churn.c) are frozen while the thread set changes. Dump and
// restore three times in a row, the restored process each time; then the
// target checks its counters (created == joined == exited, never more
// alive than the pool) and that every pool thread still runs.
func TestThreadChurn(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "churn", startOpts{settle: 200 * time.Millisecond})
	const pool = 6
	pid := tg.pid
	if !standalone {
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		for i := 0; i < 3; i++ {
			// Its threads come and go all the time, each with a
			// TID of its own, and a stack is mapped whenever more
			// of them live at once than glibc's cache of stacks
			// held: the oracle compares all but the threads,
			// their count and the mappings.
			before, err := readTreeView(t, pid)
			if err != nil {
				t.Fatalf("cycle %d: read what the kernel shows of pid %d: %v", i+1, pid, err)
			}
			dir := t.TempDir()
			dump(t, pid, dir)
			if i == 0 {
				tg.waitDead(t, "a dump without --leave-running")
			} else if !waitGone(pid, pidGoneTimeout) {
				t.Fatalf("cycle %d: restored pid %d still running after its dump", i+1, pid)
			}
			restore(t, nil, dir, "-d")
			if gone(pid) || !tg.belongsTo(pid) {
				t.Fatalf("cycle %d: pid %d not running after restore\n%s", i+1, pid, tg.diagnostics())
			}
			// main + pool + monitor, and up to one short-lived thread per
			// pool thread.
			if n := countTasks(t, pid); n < pool+2 || n > 2*pool+2 {
				t.Fatalf("cycle %d: restored process has %d threads, want %d..%d", i+1, n, pool+2, 2*pool+2)
			}
			checkTreeView(t, pid, before, []string{"task/", "status/Threads", "maps/"})
			time.Sleep(300 * time.Millisecond)
		}
	}
	checkResult(t, tg, pid)
}

// countTasks counts pid's threads; unlike tasks it reads no per-thread
// file, which a short-lived thread could take away meanwhile.
func countTasks(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatalf("list /proc/%d/task: %v", pid, err)
	}
	return len(entries)
}

// TestPythonThreads: python3 with four threading.Threads (a counter, a
// queue.Queue producer and consumer, an Event waiter) and a SIGTERM handler
// in the main thread; after the restore every thread must move on and the
// handoff stay consistent.
func TestPythonThreads(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "pythreads", startOpts{settle: 200 * time.Millisecond})
	if n := countTasks(t, tg.pid); n != 5 {
		t.Fatalf("pythreads has %d threads, want 5 (main and 4)", n)
	}
	// Its threads run on while the oracle reads it before the dump and
	// after the restore, and the interpreter maps and unmaps arenas as
	// they allocate: its mappings are its own to change meanwhile.
	pid := checkpointRestore(t, tg, cycleOpts{volatile: []string{"maps/"}})
	checkResult(t, tg, pid)
}

// TestLeaderExitedRefused: a process whose main thread exited while
// another runs on shows as a zombie, but lives: the dump refuses it in one
// line and the process runs on (leaderexit.c).
func TestLeaderExitedRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "leaderexit")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "main thread exited"}, nil)
	// Its leader is a zombie, which checkResult and waitResult take for
	// a process gone: the live thread answers SIGTERM all the same, and
	// only the process's real exit (tg.exited) ends the wait.
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(resultTimeout)
	for {
		exited := tg.exited()
		if b, err := os.ReadFile(tg.result); err == nil && strings.HasSuffix(string(b), "\n") {
			if v := strings.TrimSpace(string(b)); v != "PASS" {
				t.Fatalf("target leaderexit after the refused dump: %s", v)
			}
			return
		}
		if exited || time.Now().After(deadline) {
			t.Fatalf("target leaderexit wrote no result after SIGTERM (exited: %v)\n%s", exited, tg.diagnostics())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThreadSeccompRefused: a thread other than the leader under seccomp
// would run unconfined after a restore: the dump refuses, naming it, and
// the process runs on (threadseccomp.c).
func TestThreadSeccompRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "threadseccomp")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "thread", "seccomp"}, nil)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// TestSched: each thread's scheduling comes back: the main thread's nice
// and single-CPU affinity, a SCHED_BATCH thread's nice and affinity, a
// SCHED_FIFO thread's RT priority, SCHED_FLAG_RESET_ON_FORK and the nice it
// keeps (sched.c checks them all from inside; the oracle compares each
// thread's Cpus_allowed_list and the process's nice and policy).
func TestSched(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "sched")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestSchedDeadlineRefused: SCHED_DEADLINE is not restored, so a dump
// refuses a thread under it in one line and the process runs on.
func TestSchedDeadlineRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "sched", "deadline")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"SCHED_DEADLINE"}, nil)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}
