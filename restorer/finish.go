//go:build linux

package restorer

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/ptrace"
)

// finish removes the restorer from every process and gives every thread
// its dumped registers, extended state and signal mask, then releases
// them all; a process dumped stopped (job control) is released into a
// stop by the same signal. All threads of a process are stopped before
// the restorer's code, which they are parked in, goes.
// host gives the TID gocr sees each dumped TID by (another one in a new
// PID namespace).
func finish(ctx context.Context, procs []*proc, shared []byte, host func(int32) int) error {
	t := ptrace.NewTracer()
	defer t.Close()
	// On failure the caller kills the processes, which ends the tracing.
	// Should gocr die instead, every thread still attached is killed
	// with it (SeizeExitKill): a process finished here but not yet
	// released must not run on while the others, parked, end on the
	// lifeline's EOF.
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		pid := host(pr.task.Pid)
		for _, th := range pr.task.Threads {
			tid := host(th.Tid)
			if err := t.SeizeExitKill(tid); err != nil {
				return fmt.Errorf("seize pid %d thread %d: %w", pid, tid, err)
			}
			if _, err := t.StopTaskContext(ctx, tid); err != nil {
				return fmt.Errorf("stop pid %d thread %d: %w", pid, tid, err)
			}
		}
		off := int(pr.plan.offset)
		base := binary.LittleEndian.Uint64(shared[off+offRestorerBase:])
		size := binary.LittleEndian.Uint64(shared[off+offRestorerSize:])
		lifeline := int32(binary.LittleEndian.Uint32(shared[off+offLifelineFd:]))
		// The restorer goes before the lifeline: should gocr die in
		// between, the process returns to the restorer's park
		// (ptrace.Injection) and ends, on the lifeline's EOF while the
		// restorer is there, by a fault once it is gone.
		in, err := t.PrepareInjection(pid)
		if err != nil {
			return err
		}
		ret, err := in.Syscall(unix.SYS_MUNMAP, base, size)
		if err == nil {
			err = ptrace.SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("pid %d: unmap restorer: %w", pid, err)
		}
		ret, err = in.Syscall(unix.SYS_CLOSE, uint64(lifeline))
		if err == nil {
			err = ptrace.SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("pid %d: close the lifeline: %w", pid, err)
		}
		if err := in.Finish(); err != nil {
			return err
		}
		// A process dumped stopped by job control stops again, by the
		// same signal, before its threads run any of its code: each
		// enters the stop as it is released below.
		if sig := int(pr.task.StopSignal); sig != 0 {
			if err := t.EnterGroupStop(pid, sig); err != nil {
				return fmt.Errorf("pid %d: stop it again: %w", pid, err)
			}
		}
		for _, th := range pr.task.Threads {
			tid := host(th.Tid)
			regs := ptrace.RegsFromProto(th.Regs)
			restartSyscall(&regs)
			if err := t.SetRegs(tid, &regs); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			if err := t.SetXstate(tid, th.Xsave); err != nil {
				return fmt.Errorf("pid %d thread %d: set extended registers: %w", pid, tid, err)
			}
			if err := t.SetSigmask(tid, th.Sigmask); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
		}
	}
	testhook.PauseContext(ctx, testhook.PauseBeforeRelease)
	if err := stopped(ctx); err != nil {
		return err
	}
	// Release them together, children first, each leader last, in one
	// pass (DetachAll): the commit of the restore.
	var tids []int
	for i := len(procs) - 1; i >= 0; i-- {
		pr := procs[i]
		if pr.plan == nil {
			continue
		}
		for j := len(pr.task.Threads) - 1; j >= 0; j-- {
			tids = append(tids, host(pr.task.Threads[j].Tid))
		}
	}
	if err := t.DetachAll(tids); err != nil {
		return fmt.Errorf("release the restored processes: %w", err)
	}
	return nil
}

// restartSyscall prepares a thread dumped inside an interrupted system
// call. Registers set at a ptrace event stop go through the kernel's
// restart logic on resume (arch/x86/kernel/signal.c
// arch_do_signal_or_restart): -ERESTARTSYS, -ERESTARTNOINTR and
// -ERESTARTNOHAND re-execute the call, as they would have in the dumped
// process. -ERESTART_RESTARTBLOCK would call restart_syscall, whose
// restart block lived in the old kernel task and is gone (a fresh task's is
// do_no_restart_syscall: -EINTR); restarting the original call with its
// original arguments instead is what the program can tell apart least.
func restartSyscall(r *ptrace.Regs) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	if int64(r.Rax) == -int64(ptrace.ERESTART_RESTARTBLOCK) {
		restart := -int64(ptrace.ERESTARTNOINTR)
		r.Rax = uint64(restart)
	}
}
