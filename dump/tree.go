//go:build linux

package dump

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// frozenProc is one process of the dumped tree with every thread seized
// and stopped, or a zombie (which cannot be traced and has nothing to stop).
type frozenProc struct {
	pid        int
	tids       []int // the leader first
	zombie     bool
	exitStatus uint32
	stat       proc.Stat
	// sigs are the signals the freeze caught on their way to delivery,
	// per thread: dequeued already, so they must be given back.
	sigs map[int][][ptrace.SiginfoSize]byte
	// stopSignal is the signal of the group-stop (job control) the
	// process was in, or entering, when frozen; 0 if none. It is the
	// process's, but each thread reports it: one that stopped before the
	// stop began reports none (ptrace.Stopped).
	stopSignal int
	// sharesParentFiles, sharesParentFS: cloned by its dumped parent
	// with CLONE_FILES (CLONE_FS), which the restore does again
	// (checkSharing).
	sharesParentFiles, sharesParentFS bool
}

// frozenTree is the dumped processes, parents before children.
type frozenTree struct {
	procs []*frozenProc
}

// pickRoot finds the process at the top of what the options select.
func pickRoot(opts Options) (int, error) {
	set := 0
	for _, v := range []int{opts.Pid, opts.Pgid, opts.Sid} {
		if v != 0 {
			set++
		}
	}
	if set != 1 {
		return 0, errors.New("give exactly one of -t PID, --pgid PGID, --sid SID")
	}
	root := opts.Pid + opts.Pgid + opts.Sid
	if root <= 0 {
		return 0, fmt.Errorf("invalid pid %d", root)
	}
	if root == os.Getpid() {
		return 0, fmt.Errorf("pid %d is gocr itself", root)
	}
	if opts.Pid == 0 {
		what := "process group"
		if opts.Sid != 0 {
			what = "session"
		}
		st, err := proc.ReadStat(root)
		if err != nil || (opts.Sid != 0 && st.Session != root) || (opts.Pgid != 0 && st.Pgrp != root) {
			return 0, fmt.Errorf("%s %d has no leader process %d to dump it from", what, root, root)
		}
	}
	return root, nil
}

// checkSelection: with --pgid or --sid, every member of the group or
// session must be in the tree under its leader; a member elsewhere (a
// daemon reparented to init, say) could not be restored with the rest.
func (tr *frozenTree) checkSelection(opts Options) error {
	if opts.Pgid == 0 && opts.Sid == 0 {
		return nil
	}
	in := map[int]bool{}
	for _, fp := range tr.procs {
		in[fp.pid] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || in[pid] {
			continue
		}
		st, err := proc.ReadStat(pid)
		if err != nil {
			continue
		}
		if (opts.Pgid != 0 && st.Pgrp == opts.Pgid) || (opts.Sid != 0 && st.Session == opts.Sid) {
			return fmt.Errorf("pid %d (%s) is in the selected group or session but not a descendant of its leader %d: not supported",
				pid, st.Comm, opts.Pgid+opts.Sid)
		}
	}
	return nil
}

// freezeTree freezes root and all its descendants, breadth first. A
// process can only fork while it runs, so once a process is frozen the
// children listed for it are all it has. With alone, root's live children
// are left out (Options.Alone).
func freezeTree(ctx context.Context, t *ptrace.Tracer, root int, alone bool) (*frozenTree, error) {
	tr := &frozenTree{}
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if err := stopped(ctx); err != nil {
			return tr, fmt.Errorf("freeze pid %d: %w", pid, err)
		}
		st, err := proc.ReadStat(pid)
		if err != nil {
			if pid != root && errors.Is(err, proc.ErrNoProcess) {
				continue // exited and reaped meanwhile
			}
			if errors.Is(err, proc.ErrNoProcess) {
				return tr, fmt.Errorf("no process with pid %d", pid)
			}
			return tr, fmt.Errorf("pid %d: %w", pid, err)
		}
		if st.State == 'Z' {
			if status, err := proc.ReadStatus(pid); err == nil {
				if err := checkLeaderAlive(pid, status); err != nil {
					return tr, err
				}
			}
			if pid == root {
				return tr, fmt.Errorf("pid %d (%s) is a zombie", pid, st.Comm)
			}
			tr.procs = append(tr.procs, &frozenProc{pid: pid, zombie: true, exitStatus: uint32(st.ExitCode), stat: st})
			continue
		}
		if pid != root {
			if err := checkDumpable(pid); err != nil {
				// A child may be exiting right now (its memory is
				// gone before it is a zombie): it becomes a zombie of
				// its frozen parent, or is gone if auto-reaped.
				if z, ok := settleExiting(pid); ok {
					if z != nil {
						tr.procs = append(tr.procs, z)
					}
					continue
				}
				return tr, err
			}
		}
		fp, err := freeze(ctx, t, pid)
		if err != nil {
			if pid != root && errors.Is(err, unix.ESRCH) {
				if z, ok := settleExiting(pid); ok && z != nil {
					tr.procs = append(tr.procs, z)
				}
				continue
			}
			return tr, err
		}
		tr.procs = append(tr.procs, fp)
		// Frozen, it cannot fork: read what it was at the freeze.
		if fp.stat, err = proc.ReadStat(pid); err != nil {
			return tr, fmt.Errorf("pid %d: %w", pid, err)
		}
		children, err := proc.Children(pid)
		if err != nil {
			return tr, fmt.Errorf("pid %d: %w", pid, err)
		}
		for _, c := range children {
			if alone && !isZombie(c) {
				continue
			}
			if !seen[c] {
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
	// A zombie may have been listed before its state was read; what
	// matters is that a child's parent comes first, which BFS gives.
	for _, fp := range tr.procs {
		if err := checkZombieCore(fp); err != nil {
			return tr, err
		}
	}
	return tr, nil
}

// wcoreflag is the core-dump bit of a wait(2) status, which WCOREDUMP
// tests (glibc bits/waitstatus.h __WCOREFLAG; fs/coredump.c
// coredump_finish ORs 0x80 into the group exit code).
const wcoreflag = 0x80

// checkZombieCore refuses a zombie whose exit status says it dumped core:
// the kernel sets the bit only once a core file was written
// (fs/coredump.c coredump_finish), so a restored zombie could carry it
// only by dumping core again, which the core pattern and RLIMIT_CORE
// decide (man 5 core), not gocr; without it WCOREDUMP reads false and
// SIGCHLD's si_code is CLD_KILLED instead of CLD_DUMPED.
func checkZombieCore(fp *frozenProc) error {
	if fp.zombie && fp.exitStatus&wcoreflag != 0 {
		return fmt.Errorf("pid %d (%s), a zombie child of pid %d, dumped core (its exit status %#x has WCOREDUMP), which gocr cannot restore: dump again once its parent has collected it", fp.pid, fp.stat.Comm, fp.stat.PPid, fp.exitStatus)
	}
	return nil
}

// settleExiting waits briefly for a process that is exiting to finish:
// it returns the zombie it became, or nil if it is gone (reaped), and
// false if it is neither after 500 ms.
func settleExiting(pid int) (*frozenProc, bool) {
	for i := 0; i < 50; i++ {
		st, err := proc.ReadStat(pid)
		if errors.Is(err, proc.ErrNoProcess) {
			return nil, true
		}
		if err == nil && (st.State == 'Z' || st.State == 'X') {
			if st.State == 'X' {
				return nil, true
			}
			return &frozenProc{pid: pid, zombie: true, exitStatus: uint32(st.ExitCode), stat: st}, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, false
}

// freeze seizes and stops every thread of pid. Threads can be created
// until the last running thread is stopped, so it re-reads the thread list
// until a pass finds nothing new.
func freeze(ctx context.Context, t *ptrace.Tracer, pid int) (*frozenProc, error) {
	fp := &frozenProc{pid: pid, sigs: map[int][][ptrace.SiginfoSize]byte{}}
	seen := map[int]bool{}
	for {
		tids, err := proc.Threads(pid)
		if err != nil {
			fp.release(t)
			if errors.Is(err, proc.ErrNoProcess) {
				return nil, fmt.Errorf("no process with pid %d: %w", pid, unix.ESRCH)
			}
			return nil, fmt.Errorf("freeze pid %d: %w", pid, err)
		}
		// The leader first: it is the one the parasite runs in.
		sort.Slice(tids, func(i, j int) bool { return tids[i] == pid || (tids[j] != pid && tids[i] < tids[j]) })
		found := false
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			found = true
			if err := t.Seize(tid); err != nil {
				if errors.Is(err, unix.ESRCH) && tid != pid {
					continue // the thread exited meanwhile
				}
				fp.release(t)
				switch {
				case errors.Is(err, unix.EPERM):
					return nil, fmt.Errorf("pid %d: not permitted to trace it (is it already traced, or owned by another user?)", pid)
				case errors.Is(err, unix.ESRCH):
					return nil, fmt.Errorf("no process with pid %d: %w", pid, err)
				}
				return nil, fmt.Errorf("freeze pid %d thread %d: %w", pid, tid, err)
			}
			fp.tids = append(fp.tids, tid)
			st, err := t.StopTaskReport(ctx, tid)
			if len(st.Signals) > 0 {
				fp.sigs[tid] = st.Signals
			}
			if err != nil {
				if errors.Is(err, unix.ESRCH) && tid != pid {
					fp.tids = fp.tids[:len(fp.tids)-1]
					continue
				}
				// A thread that did not stop (timed out, or gocr was
				// told to stop) cannot be detached yet; the end of the
				// tracer thread releases it (ptrace.StopTaskContext).
				fp.release(t)
				var te *ptrace.TimeoutError
				if errors.As(err, &te) {
					return nil, fmt.Errorf("freeze pid %d: %w: %s", pid, te, whyNotStopped(pid, tid))
				}
				if cause := stopped(ctx); cause != nil && errors.Is(err, cause) {
					return nil, fmt.Errorf("freeze pid %d: %w while waiting for thread %d to stop", pid, cause, tid)
				}
				return nil, fmt.Errorf("freeze pid %d thread %d: %w", pid, tid, err)
			}
			if st.GroupStop != 0 {
				fp.stopSignal = st.GroupStop
			}
		}
		if !found {
			return fp, nil
		}
	}
}

// release lets every thread run on as it was, giving back caught signals,
// and returns when it let the last one go (zero if none): the moment
// the process ran on, which the return may come milliseconds after, as
// the thread the detach wakes can take gocr's CPU before gocr's thread
// is back from the call (kernel/sched: a woken task may preempt the
// waker).
func (fp *frozenProc) release(t *ptrace.Tracer) (last time.Time) {
	for _, tid := range fp.tids {
		if err := requeue(t, tid, fp.sigs[tid]); err != nil {
			fmt.Fprintf(os.Stderr, "gocr: warning: pid %d thread %d: %v\n", fp.pid, tid, err)
		}
		last = time.Now()
		t.Detach(tid, 0)
	}
	fp.tids = nil
	return last
}

// release lets the whole tree run on, children first, and returns when
// it let the last thread go (frozenProc.release).
func (tr *frozenTree) release(t *ptrace.Tracer) (last time.Time) {
	if tr == nil {
		return last
	}
	for i := len(tr.procs) - 1; i >= 0; i-- {
		if at := tr.procs[i].release(t); !at.IsZero() {
			last = at
		}
	}
	return last
}

// kill ends every dumped process and waits until each has exited, so that
// when gocr returns none runs any more (their parents still reap them).
func (tr *frozenTree) kill(t *ptrace.Tracer) {
	for _, fp := range tr.procs {
		if !fp.zombie {
			unix.Kill(fp.pid, unix.SIGKILL)
		}
	}
	for i := len(tr.procs) - 1; i >= 0; i-- {
		fp := tr.procs[i]
		for j := len(fp.tids) - 1; j >= 0; j-- {
			waitGone(t, fp.tids[j])
		}
	}
}

func zombieTask(fp *frozenProc) *gocrpb.Task {
	return &gocrpb.Task{
		Pid: int32(fp.pid), Ppid: int32(fp.stat.PPid), Pgid: int32(fp.stat.Pgrp), Sid: int32(fp.stat.Session),
		Comm: fp.stat.Comm, Zombie: true, ExitStatus: fp.exitStatus,
		// A zombie whose exit signal is not SIGCHLD is only waited for
		// with __WALL or __WCLONE (man 2 wait).
		ExitSignal: proto.Uint32(uint32(fp.stat.ExitSignal)),
	}
}

// whyNotStopped says, from /proc, what a thread that never answered
// PTRACE_INTERRUPT is doing, for the error that names it: a vfork parent
// waits for its child to exec or exit, and no signal but SIGKILL wakes it
// (kernel/fork.c wait_for_vfork_done, TASK_KILLABLE); otherwise its
// state (man 5 proc) and system call.
func whyNotStopped(pid, tid int) string {
	st, err := proc.ReadStat(tid)
	if err != nil {
		return err.Error()
	}
	sc, err := proc.ReadSyscall(pid, tid)
	if err != nil || sc.Running || sc.Nr < 0 {
		return fmt.Sprintf("it is in state %c", st.State)
	}
	if isVfork(tid, sc) {
		child := ""
		if kids, err := proc.Children(pid); err == nil && len(kids) > 0 {
			child = fmt.Sprintf(" %d", kids[len(kids)-1])
		}
		return fmt.Sprintf("it waits in vfork for its child%s to exec or exit (state %c)", child, st.State)
	}
	return fmt.Sprintf("it is in state %c in system call %d", st.State, sc.Nr)
}

// isVfork tells whether the system call a thread is blocked in is a
// vfork: vfork itself, or clone or clone3 with CLONE_VFORK in their flags
// (the first argument, or the first field of struct clone_args, man 2
// clone).
func isVfork(tid int, sc proc.Syscall) bool {
	switch sc.Nr {
	case unix.SYS_VFORK:
		return true
	case unix.SYS_CLONE:
		return sc.Args[0]&unix.CLONE_VFORK != 0
	case unix.SYS_CLONE3:
		var flags [8]byte
		if ptrace.ReadMemory(tid, sc.Args[0], flags[:]) != nil {
			return false
		}
		return binary.LittleEndian.Uint64(flags[:])&unix.CLONE_VFORK != 0
	}
	return false
}
