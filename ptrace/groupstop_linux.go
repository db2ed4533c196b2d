//go:build linux

package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrStopDiscarded means the kernel discarded the stop signal instead of
// stopping the process: SIGTSTP, SIGTTIN and SIGTTOU do nothing to a
// process in an orphaned process group (kernel/signal.c get_signal,
// is_current_pgrp_orphaned; man 7 credentials).
var ErrStopDiscarded = errors.New("the kernel discards this stop signal in an orphaned process group")

// EnterGroupStop puts the process of thread tid into a group-stop by stop
// signal sig, as sig's default action does (man 7 signal), and as seen
// through ptrace (man 2 ptrace, "Group-stop"): tid is sent sig, takes it
// in a signal-delivery-stop, is resumed with it, and the kernel starts the
// group-stop, recording sig as the signal its parent's waitpid reports
// (kernel/signal.c do_signal_stop). tid ends in the group-stop's event
// stop; every other thread, in its own ptrace-stop, is marked to stop, and
// each enters the stop as it is detached (kernel/ptrace.c __ptrace_unlink
// keeps a pending group-stop), so none runs an instruction in between.
// The parent is told, as of any stop, once the last thread stops.
//
// tid is given a mask blocking every other signal meanwhile, so it takes
// sig before any signal already pending, and gets its mask back after.
// A PTRACE_INTERRUPT is pending while sig is delivered: if the kernel
// discards sig (ErrStopDiscarded), tid traps there instead of returning to
// user space.
//
// Precondition: every thread of the process is seized and in an event
// stop, tid's registers being such that resuming it from there is safe.
func (t *Tracer) EnterGroupStop(tid, sig int) error {
	var err error
	t.Do(func() { err = t.enterGroupStop(tid, sig) })
	if err != nil {
		return fmt.Errorf("stop thread %d by %v: %w", tid, unix.Signal(sig), err)
	}
	return nil
}

func (t *Tracer) enterGroupStop(tid, sig int) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("invalid signal %d", sig)
	}
	tgid, err := tgidOf(tid)
	if err != nil {
		return err
	}
	mask, err := getSigmask(tid)
	if err != nil {
		return fmt.Errorf("ptrace getsigmask: %w", err)
	}
	if err := setSigmask(tid, ^(uint64(1) << (sig - 1))); err != nil {
		return fmt.Errorf("ptrace setsigmask: %w", err)
	}
	if err := unix.Tgkill(tgid, tid, unix.Signal(sig)); err != nil {
		return fmt.Errorf("tgkill: %w", err)
	}
	if err := cont(tid, 0); err != nil {
		return err
	}
	for {
		s, err := t.waitBounded(tid, "the stop signal's delivery")
		if err != nil {
			return err
		}
		if s.Kind == SignalStop && s.Sig == sig {
			break
		}
		switch s.Kind {
		case EventStop, SyscallStop:
			// A trap left pending: it carries nothing.
			if err := cont(tid, 0); err != nil {
				return err
			}
		case Exited, Killed:
			return &ExitError{Tid: tid, Stop: s}
		default:
			return &UnexpectedStopError{Tid: tid, Op: "deliver the stop signal", Stop: s}
		}
	}
	if err := interrupt(tid); err != nil {
		return err
	}
	if err := cont(tid, sig); err != nil {
		return err
	}
	s, err := t.waitBounded(tid, "the group-stop")
	switch {
	case err != nil:
		return err
	case s.Kind == Exited || s.Kind == Killed:
		return &ExitError{Tid: tid, Stop: s}
	case s.Kind != EventStop:
		return &UnexpectedStopError{Tid: tid, Op: "enter the group-stop", Stop: s}
	case groupStop(s) != sig:
		return ErrStopDiscarded
	}
	if err := setSigmask(tid, mask); err != nil {
		return fmt.Errorf("ptrace setsigmask: %w", err)
	}
	return nil
}

// KeepOnExit clears PTRACE_O_EXITKILL (SeizeExitKill) of the seized
// thread tid: should gocr die while tid is attached, the kernel detaches
// it instead of killing it (kernel/ptrace.c exit_ptrace), and a pending
// or completed group-stop holds it stopped (__ptrace_unlink).
//
// Precondition: tid is in a ptrace-stop.
func (t *Tracer) KeepOnExit(tid int) error {
	var err error
	t.Do(func() { err = ptraceInt(unix.PTRACE_SETOPTIONS, tid, 0, seizeOptions) })
	if err != nil {
		return fmt.Errorf("ptrace setoptions %d: %w", tid, err)
	}
	return nil
}

// PassGate runs thread tid, set at the release gate (Injection.Gate)
// and still attached, through it once the commit's byte is in its
// lifeline: read, close, rt_sigreturn, stepping from syscall-stop to
// syscall-stop (PTRACE_SYSCALL), until the exit of its rt_sigreturn,
// where it holds its own registers and signal mask again, its lifeline
// fd closed, and has not run an instruction of its own. It stays there,
// in that syscall-exit-stop: a group-stop in effect stops it as it is
// then detached (kernel/ptrace.c __ptrace_unlink), before it returns to
// user space. The group-stop's report on the way (a PTRACE_EVENT_STOP) is
// resumed past; a stop signal the gate could not block (SIGSTOP) is
// delivered. The gate reading end of file calls exit_group: an error.
//
// Precondition: tid is in a ptrace-stop at the gate's first instruction.
func (t *Tracer) PassGate(tid int) error {
	var err error
	t.Do(func() { err = t.passGate(tid) })
	if err != nil {
		return fmt.Errorf("thread %d through the release gate: %w", tid, err)
	}
	return nil
}

// Syscall-stop kinds of struct ptrace_syscall_info
// (include/uapi/linux/ptrace.h).
const (
	syscallInfoEntry = 1
	syscallInfoExit  = 2
)

func (t *Tracer) passGate(tid int) error {
	var last uint64
	sig := 0
	for {
		if err := ptraceInt(unix.PTRACE_SYSCALL, tid, 0, uintptr(sig)); err != nil {
			return fmt.Errorf("ptrace syscall: %w", err)
		}
		sig = 0
		s, err := t.waitBounded(tid, "the release gate's calls")
		if err != nil {
			return err
		}
		switch s.Kind {
		case EventStop:
		case SignalStop:
			sig = s.Sig
		case SyscallStop:
			op, nr, err := syscallStopOp(tid)
			if err != nil {
				return fmt.Errorf("ptrace get_syscall_info: %w", err)
			}
			switch {
			case op == syscallInfoEntry && nr == unix.SYS_EXIT_GROUP:
				return fmt.Errorf("the gate read no commit byte")
			case op == syscallInfoEntry:
				last = nr
			case op == syscallInfoExit && last == unix.SYS_RT_SIGRETURN:
				return nil
			}
		case Exited, Killed:
			return &ExitError{Tid: tid, Stop: s}
		default:
			return &UnexpectedStopError{Tid: tid, Op: "pass the release gate", Stop: s}
		}
	}
}
