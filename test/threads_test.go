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
	pid := checkpointRestore(t, tg, cycleOpts{})
	// Let every counter move after the restore, as it is checked.
	time.Sleep(500 * time.Millisecond)
	checkResult(t, tg, pid)
}
