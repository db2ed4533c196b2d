//go:build linux

package ptrace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// StopTask interrupts a seized tracee and waits until it is in
// PTRACE_EVENT_STOP. Signals that the tracee dequeued on the way
// (signal-delivery-stops) are real signals: they are suppressed so that no
// handler runs while gocr works, and returned so the caller can send them
// again before detaching. StopTaskInfo returns their full siginfo.
func (t *Tracer) StopTask(tid int) (pending []int, err error) {
	infos, err := t.StopTaskInfo(tid)
	for _, si := range infos {
		pending = append(pending, SiginfoSigno(si))
	}
	return pending, err
}

// StopTaskInfo is StopTask returning the siginfo of each suppressed signal,
// in the order the tracee dequeued them.
func (t *Tracer) StopTaskInfo(tid int) ([][SiginfoSize]byte, error) {
	return t.StopTaskContext(context.Background(), tid)
}

// StopTaskContext is StopTaskInfo that also gives up when ctx ends, as
// long as the tracee has not begun to stop (no signal was taken from it
// yet): a caller that has seized a thread running its own code may let
// it go at any time. A tracee left so, like one that timed out, still has
// the interrupt pending and stops at its next chance; detaching it then,
// or the end of the tracer thread (which detaches every tracee and clears
// its pending traps, kernel/ptrace.c exit_ptrace, __ptrace_unlink), lets
// it run on as it was.
func (t *Tracer) StopTaskContext(ctx context.Context, tid int) ([][SiginfoSize]byte, error) {
	st, err := t.StopTaskReport(ctx, tid)
	return st.Signals, err
}

// Stopped is what StopTaskReport found on the way to the event stop.
type Stopped struct {
	// Signals the tracee dequeued on the way, suppressed, as
	// StopTaskInfo returns them.
	Signals [][SiginfoSize]byte
	// GroupStop is the signal of the group-stop the tracee's process is
	// in or entering (stopped by SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU),
	// or 0. A seized tracee reports it as the signal of its event stop,
	// SIGTRAP when there is none (man 2 ptrace, "Group-stop";
	// kernel/signal.c do_jobctl_trap).
	GroupStop int
}

// StopTaskReport is StopTaskContext returning the siginfo of each
// suppressed signal and the group-stop the tracee is in, if any.
//
// A task already stopped by a signal when it is seized is trapped by
// PTRACE_SEIZE itself: it is in its event stop, reported, when the call
// returns (kernel/ptrace.c ptrace_attach waits for JOBCTL_TRAPPING to
// clear). A PTRACE_INTERRUPT then would stay pending and trap it again
// the next time it is resumed, before it runs a single instruction, so
// that stop is taken as it is.
//
// Precondition: tid is seized.
func (t *Tracer) StopTaskReport(ctx context.Context, tid int) (Stopped, error) {
	var (
		st  Stopped
		err error
	)
	t.Do(func() {
		var first *Stop
		s, ok, werr := waitNoHang(tid)
		if werr != nil {
			err = fmt.Errorf("stop task: %w", werr)
			return
		}
		if ok && s.Kind == EventStop {
			st.GroupStop = groupStop(s)
			return
		}
		if ok {
			first = &s
		}
		if err = interrupt(tid); err != nil {
			return
		}
		var last Stop
		last, st.Signals, err = t.awaitEventStop(ctx, tid, "stop task", first)
		if err == nil {
			st.GroupStop = groupStop(last)
		}
	})
	return st, err
}

// groupStop is the group-stop signal an event stop reports, or 0.
func groupStop(s Stop) int {
	if s.Sig == int(unix.SIGTRAP) {
		return 0
	}
	return s.Sig
}

// waitNoHang returns tid's state change if it has one to report now; ok
// says whether it had.
//
// Precondition: called on the tracer thread.
func waitNoHang(tid int) (s Stop, ok bool, err error) {
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Stop{}, false, fmt.Errorf("waitpid %d: %w", tid, err)
		}
		if wpid != tid {
			return Stop{}, false, nil
		}
		return decodeStop(ws), true, nil
	}
}

// waitBounded is wait for what, at most stopTimeout.
//
// Precondition: called on the tracer thread.
func (t *Tracer) waitBounded(tid int, what string) (Stop, error) {
	return t.wait(tid, waitFor{what: what, until: time.Now().Add(stopTimeout)})
}

// waitEventStop waits until tid reports PTRACE_EVENT_STOP, suppressing and
// collecting any signal-delivery-stop on the way. A PTRACE_INTERRUPT must
// already be pending: it stays pending across those stops (the kernel keeps
// JOBCTL_TRAP_STOP set until the trap is taken, kernel/signal.c), so resuming
// with PTRACE_CONT(0) leads straight into the event stop, before any further
// signal is dequeued (get_signal handles jobctl traps before dequeueing).
//
// It waits at most stopTimeout, and until ctx ends only as long as it
// has taken no signal: once one is taken, the thread is
// stopping and must be let stop, or the signal would be lost.
//
// Precondition: called on the tracer thread.
func (t *Tracer) waitEventStop(ctx context.Context, tid int, op string) ([][SiginfoSize]byte, error) {
	_, infos, err := t.awaitEventStop(ctx, tid, op, nil)
	return infos, err
}

// awaitEventStop is waitEventStop returning the event stop. first, if not
// nil, is a stop of tid already waited for: it is handled before waiting.
//
// Precondition: called on the tracer thread.
func (t *Tracer) awaitEventStop(ctx context.Context, tid int, op string, first *Stop) (Stop, [][SiginfoSize]byte, error) {
	var infos [][SiginfoSize]byte
	w := waitFor{what: "stop after PTRACE_INTERRUPT", until: time.Now().Add(stopTimeout), ctx: ctx}
	for {
		if len(infos) > 0 {
			w.ctx = context.Background()
		}
		var s Stop
		if first != nil {
			s, first = *first, nil
		} else {
			var err error
			if s, err = t.wait(tid, w); err != nil {
				return s, infos, fmt.Errorf("%s: %w", op, err)
			}
		}
		switch s.Kind {
		case EventStop:
			return s, infos, nil
		case SignalStop:
			si, err := getSiginfo(tid)
			if err != nil {
				return s, infos, fmt.Errorf("%s: ptrace getsiginfo %d: %w", op, tid, err)
			}
			infos = append(infos, si)
			if err := cont(tid, 0); err != nil {
				return s, infos, fmt.Errorf("%s: %w", op, err)
			}
		case SyscallStop:
			// Left over from a PTRACE_SYSCALL; PTRACE_CONT stops syscall
			// tracing and the pending interrupt still traps.
			if err := cont(tid, 0); err != nil {
				return s, infos, fmt.Errorf("%s: %w", op, err)
			}
		case Exited, Killed:
			return s, infos, &ExitError{Tid: tid, Stop: s}
		default:
			return s, infos, &UnexpectedStopError{Tid: tid, Op: op, Stop: s}
		}
	}
}

// SignalsPendingError reports signals the tracee dequeued during an
// operation that otherwise succeeded. gocr suppressed them; the caller owns
// them now and must send them again (see Requeue) or they are lost.
type SignalsPendingError struct {
	Tid     int
	Op      string
	Signals [][SiginfoSize]byte
}

func (e *SignalsPendingError) Error() string {
	sigs := make([]unix.Signal, len(e.Signals))
	for i, si := range e.Signals {
		sigs[i] = unix.Signal(SiginfoSigno(si))
	}
	return fmt.Sprintf("%s %d: suppressed signals %v must be re-sent", e.Op, e.Tid, sigs)
}

// ReturnToEventStop moves a tracee from a syscall-exit-stop back into
// PTRACE_EVENT_STOP without it executing a user instruction: the pending
// PTRACE_INTERRUPT sets TIF_SIGPENDING, so the return-to-user path enters
// get_signal, which takes the jobctl trap first (kernel/entry/common.c
// exit_to_user_mode_loop, kernel/signal.c get_signal).
//
// Why: registers written at an event stop pass through the syscall-restart
// logic on resume (arch/x86/kernel/signal.c arch_do_signal_or_restart runs
// after get_signal returns), so restoring an interrupted syscall's registers
// (rax=-ERESTART*, orig_rax=nr) there restarts it exactly as if gocr had never
// been there. Registers written at a syscall-exit-stop skip that logic and,
// resumed with PTRACE_CONT, the tracee sees -ERESTART* as its return value
// (measured: read(2) returned -1 with errno 512; see
// TestRestoreAtSyscallExitLeaksRestartErrno). PTRACE_DETACH happens to mask
// the bug because __ptrace_unlink sets TIF_SIGPENDING (kernel/ptrace.c
// ptrace_signal_wake_up), but nothing else gives that guarantee.
//
// If signals are dequeued on the way they are suppressed and returned in a
// *SignalsPendingError; the tracee is in the event stop all the same.
//
// Precondition: the tracee is in a syscall-exit-stop (or any ptrace-stop).
func (t *Tracer) ReturnToEventStop(tid int) error {
	var (
		infos [][SiginfoSize]byte
		err   error
	)
	t.Do(func() {
		if err = interrupt(tid); err != nil {
			return
		}
		if err = cont(tid, 0); err != nil {
			return
		}
		infos, err = t.waitEventStop(context.Background(), tid, "return to event stop")
	})
	if err != nil {
		return err
	}
	if len(infos) > 0 {
		return &SignalsPendingError{Tid: tid, Op: "return to event stop", Signals: infos}
	}
	return nil
}
