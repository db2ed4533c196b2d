//go:build linux

package dump

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// A job running on CPU c: gocr's threads and a snapshot's leave c while
// gocr writes, and gocr's come back after.
func TestMoveOffJobCPUs(t *testing.T) {
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(os.Getpid(), &own); err != nil {
		t.Fatal(err)
	}
	if own.Count() < 2 {
		t.Skipf("the test process may run on %d CPU: nothing to move to", own.Count())
	}
	c := -1
	for i := 0; i < len(own)*64 && c < 0; i++ {
		if own.IsSet(i) {
			c = i
		}
	}
	on := func(cpu int) *unix.CPUSet {
		var s unix.CPUSet
		s.Set(cpu)
		return &s
	}
	spin := func() *exec.Cmd {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	job, snap := spin(), spin()
	if err := unix.SchedSetaffinity(job.Process.Pid, on(c)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if s, err := proc.ReadStat(job.Process.Pid); err == nil && s.Processor == c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job pinned to CPU %d never ran there", c)
		}
	}
	states := []*state{{task: &gocrpb.Task{Pid: int32(job.Process.Pid), Threads: []*gocrpb.Thread{{Tid: int32(job.Process.Pid)}}}}}

	moved := moveOffJobCPUs(states, []int{snap.Process.Pid})
	if moved == nil {
		t.Fatalf("nothing moved off CPU %d", c)
	}
	want := own
	want.Clear(c)
	check := func(pid int, want unix.CPUSet, when string) {
		t.Helper()
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			tid, _ := strconv.Atoi(e.Name())
			var got unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &got); err != nil {
				continue // gone meanwhile
			}
			if got != want {
				t.Errorf("%s: thread %d of pid %d may run on %d CPUs, want %d (CPU %d set: %v)", when, tid, pid, got.Count(), want.Count(), c, got.IsSet(c))
			}
		}
	}
	check(os.Getpid(), want, "moved")
	check(snap.Process.Pid, want, "moved")
	moved.back()
	check(os.Getpid(), own, "back")

	// A job on every CPU leaves nowhere to go: nothing moves.
	var all []*gocrpb.Thread
	cpuOf := map[int32]int{}
	for i := 0; i < len(own)*64; i++ {
		if !own.IsSet(i) {
			continue
		}
		cmd := spin()
		if err := unix.SchedSetaffinity(cmd.Process.Pid, on(i)); err != nil {
			t.Fatal(err)
		}
		all = append(all, &gocrpb.Thread{Tid: int32(cmd.Process.Pid)})
		cpuOf[int32(cmd.Process.Pid)] = i
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ran := 0
		for _, th := range all {
			if s, err := proc.ReadStat(int(th.Tid)); err == nil && s.Processor == cpuOf[th.Tid] {
				ran++
			}
		}
		if ran == len(all) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pinned spinners did not all run")
		}
	}
	if m := moveOffJobCPUs([]*state{{task: &gocrpb.Task{Threads: all}}}, nil); m != nil {
		m.back()
		t.Errorf("a job on all %d CPUs moved gocr somewhere", own.Count())
	}
}
