//go:build linux

package dump

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// After the release of a --leave-running dump, gocr still writes: the
// snapshots' pages, the checksums and the syncs. Left where the scheduler
// puts them, its threads and the snapshot processes' share the job's CPUs
// and the woken job waits behind them on a run queue: a task picked runs
// its whole slice (sysctl_sched_base_slice, kernel/sched/fair.c) at
// whatever nice value, and the job waited 3-4 ms at a time behind a
// writer, 30 ms in a dump (median; docs/PERFORMANCE.md). So the writers
// move off the CPUs the job's threads last ran on, where other CPUs are
// left, and gocr's own threads go back when the dump is done (a gocr
// that stays, cr_run -D, dumps again).

// offJobCPUs is gocr's threads moved off the job's CPUs, to move back.
type offJobCPUs struct {
	own unix.CPUSet // gocr's CPUs before
}

// moveOffJobCPUs moves gocr's threads and the threads of the snapshot
// processes (snaps, their PIDs) off every CPU a thread of states last
// ran on (/proc/PID/task/TID/stat field 39, man 5 proc_pid_stat), if
// gocr may run on another CPU; nil where nothing moved. It is best
// effort: a thread it cannot move (one gone meanwhile, a snapshot in a
// cpuset without those CPUs: sched_setaffinity's EINVAL, man 2
// sched_setaffinity) writes where it was.
func moveOffJobCPUs(states []*state, snaps []int) *offJobCPUs {
	var own unix.CPUSet
	// The thread group leader's CPUs are the process's: those it was
	// started with (taskset, a batch system's binding).
	if err := unix.SchedGetaffinity(os.Getpid(), &own); err != nil {
		return nil
	}
	away := own
	for _, st := range states {
		for _, th := range st.task.GetThreads() {
			if s, err := proc.ReadStat(int(th.Tid)); err == nil {
				away.Clear(s.Processor)
			}
		}
	}
	if away.Count() == 0 || away == own {
		return nil
	}
	setThreadsCPUs(os.Getpid(), &away)
	for _, pid := range snaps {
		setThreadsCPUs(pid, &away)
	}
	return &offJobCPUs{own: own}
}

// snapshotPids is the PIDs of the snapshot processes of mems.
func snapshotPids(mems []*capturedMemory) []int {
	var pids []int
	for _, m := range mems {
		if m != nil && m.snap != nil {
			pids = append(pids, m.snap.Pid())
		}
	}
	return pids
}

// back gives gocr's threads their CPUs again, those made since the move
// too (a new thread has its maker's CPUs).
func (o *offJobCPUs) back() {
	if o == nil {
		return
	}
	setThreadsCPUs(os.Getpid(), &o.own)
}

// setThreadsCPUs sets the CPUs of every thread of process pid; a thread
// made meanwhile by one not yet set gets its maker's old CPUs.
func setThreadsCPUs(pid int, set *unix.CPUSet) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			unix.SchedSetaffinity(tid, set)
		}
	}
}
