//go:build linux

package restorer

import (
	"errors"
	"fmt"

	"github.com/gocr/gocr/ptrace"
)

// A process dumped stopped by job control is released otherwise than a
// running one: its group-stop was entered before its threads were set at
// the gate (finish), and a thread detached then would stop right there,
// in the gate's read, every signal blocked and its lifeline fd open,
// until continued; a second dump would find that fd, and its parent's
// view of its mask would be gocr's. Instead its threads stay attached
// across the commit and gocr runs each through the gate itself
// (ptrace.Tracer.PassGate), so that each enters the stop with its own
// registers, mask and fds, exactly as dumped, and no instruction of its
// own run.
//
// Should gocr die before the commit, such a thread is killed with it
// (PTRACE_O_EXITKILL), but in the moment between holdStopped and the
// commit's write, when it is detached at the gate and, the group-stop in
// effect, stops there; once continued it reads end of file and its
// process exits, as every other process of the restore. Should gocr die
// after the commit, it stops in the gate or past it and goes through once
// continued: the job runs (TestStoppedJobGocrKilledInRelease).

// gateOrder lists the threads of the processes of gated that are stopped
// by job control (stopped) or not, children first, each leader last.
func gateOrder(gated []gatedProc, stopped bool) []int {
	var tids []int
	for i := len(gated) - 1; i >= 0; i-- {
		g := gated[i]
		if g.stopped != stopped {
			continue
		}
		for j := len(g.tids) - 1; j >= 0; j-- {
			tids = append(tids, g.tids[j])
		}
	}
	return tids
}

// holdStopped makes each thread of a stopped process, attached at the
// gate, outlive gocr's death: without PTRACE_O_EXITKILL the kernel
// detaches it rather than killing it, which after the commit would end
// a process of a job that runs. It comes right before the commit.
func holdStopped(t *ptrace.Tracer, gated []gatedProc) error {
	for _, tid := range gateOrder(gated, true) {
		if err := t.KeepOnExit(tid); err != nil {
			return err
		}
	}
	return nil
}

// releaseStopped runs each thread of a stopped process through the gate,
// the commit's byte being in its lifeline, and then detaches them all:
// each enters the group-stop (kernel/ptrace.c __ptrace_unlink keeps it
// pending for a thread detached while it is in effect) on its way back
// to user space, before its first instruction. A thread that could not
// be run through is detached all the same: it stops in the gate and goes
// through once continued.
func releaseStopped(t *ptrace.Tracer, gated []gatedProc) error {
	var errs []error
	for _, g := range gated {
		if !g.stopped {
			continue
		}
		for _, tid := range g.tids {
			if err := t.PassGate(tid); err != nil {
				errs = append(errs, fmt.Errorf("pid %d: %w", g.pid, err))
			}
		}
	}
	if err := t.DetachAll(gateOrder(gated, true)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stopped processes: %w", err)
	}
	return nil
}
