//go:build linux

// Package ptrace is the only code in gocr that calls ptrace(2).
//
// A tracee answers only the thread that attached it (man 2 ptrace: "tracees
// are attached to a specific thread of the tracer"), and the Go scheduler
// moves goroutines between threads at will, so every request goes through one
// goroutine that is locked to its OS thread for its whole life: Tracer.
// Call sites read t.Do(func() { err = ... }) or use the methods below, which
// do that themselves.
//
// Memory is read and written with process_vm_readv/writev (ReadMemory,
// WriteMemory), which need neither a stop nor the tracer thread.
package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Tracer owns one OS thread that issues every ptrace(2) and waitpid(2) call.
type Tracer struct {
	tid       atomic.Int64 // the tracer thread, set before the first request
	reqs      chan func()
	done      chan struct{}
	closeOnce sync.Once
	// sigchld wakes a wait: the kernel sends the tracer SIGCHLD at every
	// stop and exit of a tracee (kernel/signal.c do_notify_parent_cldstop,
	// do_notify_parent), so gocr can wait with WNOHANG and a deadline
	// instead of in a waitpid nothing could cut short.
	sigchld chan os.Signal
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), done: make(chan struct{}), sigchld: make(chan os.Signal, 1)}
	signal.Notify(t.sigchld, unix.SIGCHLD)
	go t.loop()
	return t
}

func (t *Tracer) loop() {
	// Never unlocked: when loop returns, the runtime terminates this thread
	// instead of reusing it, and the kernel detaches every tracee still
	// attached to it (kernel/ptrace.c exit_ptrace, called from exit_notify),
	// so a forgotten tracee is released rather than left stopped forever
	// under a thread that now runs unrelated goroutines.
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread is the one the runtime does not terminate: it
		// parks it instead when a goroutine locked to it ends
		// (runtime.LockOSThread), and its tracees would stay attached.
		// Serve from another thread: while this goroutine holds the
		// main thread, the new one cannot be scheduled on it.
		moved := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(moved)
			t.serve()
		}()
		<-moved
		runtime.UnlockOSThread()
		return
	}
	t.serve()
}

// serve answers requests on the locked thread until Close.
func (t *Tracer) serve() {
	t.tid.Store(int64(unix.Gettid()))
	defer close(t.done)
	for f := range t.reqs {
		f()
	}
}

// Do runs f on the tracer thread and returns when f has returned.
//
// Called from the tracer thread itself (inside another Do), it runs f
// inline, so a caller can batch many Tracer calls into one hand-off:
// waking the locked thread and being woken back costs about 5 µs on one CPU
// and 15–40 µs across the two CPUs of this VM (BenchmarkDo), more than the
// ptrace work of a GETREGSET. A locked thread runs only its own goroutine
// (runtime.LockOSThread), so comparing thread IDs is exact.
func (t *Tracer) Do(f func()) {
	if int64(unix.Gettid()) == t.tid.Load() {
		f()
		return
	}
	ack := make(chan struct{})
	t.reqs <- func() {
		defer close(ack)
		f()
	}
	<-ack
}

// Close stops the tracer thread. Tracees still attached are detached by the
// kernel when the thread exits; Close does not wait for that to be observable.
// Do after Close panics.
func (t *Tracer) Close() {
	t.closeOnce.Do(func() {
		close(t.reqs)
		<-t.done
		signal.Stop(t.sigchld)
	})
}

// seizeOptions are the only options gocr sets. Each one changes what the
// tracer sees, never what the tracee does:
//   - PTRACE_O_TRACESYSGOOD marks syscall-stops with SIGTRAP|0x80 so they
//     cannot be confused with a real SIGTRAP delivered to the tracee (man 2
//     ptrace, "Syscall-stops").
//
// Deliberately not set: PTRACE_O_TRACEFORK/VFORK/CLONE (would auto-attach and
// stop new children, changing their scheduling and making us responsible for
// them), PTRACE_O_TRACEEXEC (without it a seized tracee gets no extra stop
// after execve: PTRACE_SEIZE suppresses the legacy SIGTRAP, man 2 ptrace
// "execve(2) under ptrace"), PTRACE_O_EXITKILL (a crash of gocr must leave the
// job running, not kill it; only a restore's own processes are seized with
// it, SeizeExitKill), PTRACE_O_TRACEEXIT (adds a stop on the exit
// path).
const seizeOptions = unix.PTRACE_O_TRACESYSGOOD

// Seize attaches to thread tid without stopping it (PTRACE_SEIZE).
func (t *Tracer) Seize(tid int) error {
	var err error
	t.Do(func() { err = ptraceInt(unix.PTRACE_SEIZE, tid, 0, seizeOptions) })
	if err != nil {
		return fmt.Errorf("ptrace seize %d: %w", tid, err)
	}
	return nil
}

// SeizeExitKill is Seize with PTRACE_O_EXITKILL too: should the tracer
// thread end (gocr killed) while tid is attached, the kernel SIGKILLs it
// before detaching it (kernel/ptrace.c exit_ptrace). For processes gocr
// created itself, which must not run on from a restore that did not
// finish; DetachAll lets them go.
func (t *Tracer) SeizeExitKill(tid int) error {
	var err error
	t.Do(func() { err = ptraceInt(unix.PTRACE_SEIZE, tid, 0, seizeOptions|unix.PTRACE_O_EXITKILL) })
	if err != nil {
		return fmt.Errorf("ptrace seize %d: %w", tid, err)
	}
	return nil
}

// DetachAll detaches every thread of tids, in that order, in one pass on
// the tracer thread: with SeizeExitKill, gocr dying finds some detached
// (they run on) and the others attached (killed) only within this loop, a
// few microseconds a thread, rather than across a hand-off to the tracer
// thread for each.
//
// Precondition: every tid is in a ptrace-stop.
func (t *Tracer) DetachAll(tids []int) error {
	var err error
	t.Do(func() {
		for _, tid := range tids {
			if err = ptraceInt(unix.PTRACE_DETACH, tid, 0, 0); err != nil {
				err = fmt.Errorf("ptrace detach %d: %w", tid, err)
				return
			}
		}
	})
	return err
}

// Interrupt asks a seized tracee to enter PTRACE_EVENT_STOP (PTRACE_INTERRUPT).
// It does not wait; see StopTask.
func (t *Tracer) Interrupt(tid int) error {
	var err error
	t.Do(func() { err = interrupt(tid) })
	return err
}

func interrupt(tid int) error {
	if err := ptraceInt(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		return fmt.Errorf("ptrace interrupt %d: %w", tid, err)
	}
	return nil
}

// Cont resumes the tracee (PTRACE_CONT). A nonzero sig is delivered only
// from a signal-delivery-stop; from any other stop the kernel ignores it
// (man 2 ptrace: "a nonzero sig may simply be ignored").
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) Cont(tid, sig int) error {
	var err error
	t.Do(func() { err = cont(tid, sig) })
	return err
}

func cont(tid, sig int) error {
	if err := ptraceInt(unix.PTRACE_CONT, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace cont %d sig %d: %w", tid, sig, err)
	}
	return nil
}

func syscallCont(tid int) error {
	if err := ptraceInt(unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
		return fmt.Errorf("ptrace syscall %d: %w", tid, err)
	}
	return nil
}

// Detach releases the tracee (PTRACE_DETACH). As with Cont, sig is delivered
// only from a signal-delivery-stop or a syscall-stop; from PTRACE_EVENT_STOP
// the kernel drops it (kernel/signal.c do_jobctl_trap ignores the exit code
// ptrace_stop returns; measured: see TestDetachSignalFromEventStopIsDropped).
// To give back signals collected by StopTask, send them again (tgkill, or
// Requeue to keep their siginfo) before detaching.
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) Detach(tid, sig int) error {
	var err error
	t.Do(func() { err = ptraceInt(unix.PTRACE_DETACH, tid, 0, uintptr(sig)) })
	if err != nil {
		return fmt.Errorf("ptrace detach %d sig %d: %w", tid, sig, err)
	}
	return nil
}

// StopKind classifies what waitpid reported for a tracee.
type StopKind int

const (
	// EventStop is PTRACE_EVENT_STOP: the stop PTRACE_INTERRUPT asks for,
	// or a group-stop of a seized tracee (Sig is then the stop signal).
	EventStop StopKind = iota
	// SignalStop is a signal-delivery-stop: Sig has been dequeued and will
	// be lost unless it is passed back on resume or sent again.
	SignalStop
	// SyscallStop is a syscall-enter- or syscall-exit-stop (reported as
	// SIGTRAP|0x80 thanks to PTRACE_O_TRACESYSGOOD).
	SyscallStop
	// OtherEventStop is any other PTRACE_EVENT_* stop; Event says which.
	OtherEventStop
	// Exited means the task exited; Status.ExitStatus() has the code.
	Exited
	// Killed means the task was killed by signal Sig.
	Killed
)

var stopKindNames = [...]string{"event-stop", "signal-delivery-stop", "syscall-stop", "other-event-stop", "exited", "killed"}

func (k StopKind) String() string {
	if k >= 0 && int(k) < len(stopKindNames) {
		return stopKindNames[k]
	}
	return fmt.Sprintf("StopKind(%d)", int(k))
}

// Stop is one waitpid report, decoded as man 2 ptrace describes.
type Stop struct {
	Kind   StopKind
	Sig    int // stop signal, delivered signal, or killing signal
	Event  int // PTRACE_EVENT_* from status>>16, for EventStop and OtherEventStop
	Status unix.WaitStatus
}

func (s Stop) String() string {
	switch s.Kind {
	case Exited:
		return fmt.Sprintf("exited with status %d", s.Status.ExitStatus())
	case Killed:
		return "killed by " + signalName(s.Sig)
	case EventStop, OtherEventStop:
		return fmt.Sprintf("%v (event %#x, %s)", s.Kind, s.Event, signalName(s.Sig))
	default:
		return fmt.Sprintf("%v (%s)", s.Kind, signalName(s.Sig&0x7f))
	}
}

// signalName names a signal as SIGKILL: a unix.Signal prints as its
// description ("killed"), which after "killed by" says nothing.
func signalName(sig int) string {
	if name := unix.SignalName(unix.Signal(sig)); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", sig)
}

// decodeStop classifies a wait status (man 2 ptrace, "Stopped states").
func decodeStop(ws unix.WaitStatus) Stop {
	s := Stop{Status: ws}
	switch {
	case ws.Exited():
		s.Kind = Exited
	case ws.Signaled():
		s.Kind, s.Sig = Killed, int(ws.Signal())
	case ws.Stopped():
		// The stop signal is status>>8 & 0xff and the PTRACE_EVENT_* is
		// status>>16 (man 2 ptrace). unix.WaitStatus.StopSignal masks
		// nothing off, so decode by hand to keep the 0x80 TRACESYSGOOD bit.
		s.Sig = int(ws>>8) & 0xff
		s.Event = int(ws>>16) & 0xff
		switch {
		case s.Sig == int(unix.SIGTRAP)|0x80:
			s.Kind = SyscallStop
		case s.Event == unix.PTRACE_EVENT_STOP:
			s.Kind = EventStop
		case s.Event != 0:
			s.Kind = OtherEventStop
		default:
			s.Kind = SignalStop
		}
	default:
		// WIFCONTINUED is only reported with WCONTINUED, which we never
		// pass; treat anything else as an event we do not understand.
		s.Kind = OtherEventStop
	}
	return s
}

// stopTimeout bounds every wait for a tracee (a variable only so tests
// can shorten it). A thread answers PTRACE_INTERRUPT, or finishes a
// system call gocr injected, within microseconds, unless it sleeps where
// no signal wakes it: a vfork parent waits for its child to exec or exit
// (kernel/fork.c wait_for_vfork_done, TASK_KILLABLE), a task in D state
// waits on a hung file system. Those may wait for good, and gocr must not
// wait with them.
var stopTimeout = 5 * time.Second

// TimeoutError reports that a tracee did not reach the state gocr waited
// for within stopTimeout. The tracee may still get there: any request
// gocr makes of it then fails with ESRCH until it does.
type TimeoutError struct {
	Tid     int
	Awaited string // what gocr waited for
	After   time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("thread %d: no %s within %v", e.Tid, e.Awaited, e.After)
}

// Wait waits for the next state change of tid (waitpid(tid, __WALL);
// __WALL so that threads other than the leader are reported, man 2
// waitpid), at most stopTimeout.
func (t *Tracer) Wait(tid int) (Stop, error) {
	var (
		s   Stop
		err error
	)
	t.Do(func() { s, err = t.wait(tid, waitFor{what: "state change", until: time.Now().Add(stopTimeout)}) })
	return s, err
}

// waitFor is what a wait waits for: its name for a TimeoutError, its
// deadline, and what may end it early (nil: nothing, as Background).
type waitFor struct {
	what  string
	until time.Time
	ctx   context.Context
}

// spinFor is how long a wait polls, yielding the CPU in between, before it
// sleeps until a SIGCHLD: most stops come within tens of microseconds, and
// waking through the signal costs about as much again (two more hand-offs
// between threads: the runtime's signal goroutine, then this one), which
// a dump pays for every thread it stops.
const spinFor = 200 * time.Microsecond

// wait returns tid's next state change. It polls with WNOHANG and sleeps
// until the next SIGCHLD, the deadline or ctx's end: SIGCHLD is drained
// before each poll, so a change after the poll always wakes it.
//
// Precondition: called on the tracer thread.
func (t *Tracer) wait(tid int, w waitFor) (Stop, error) {
	var done <-chan struct{}
	if w.ctx != nil {
		done = w.ctx.Done()
	}
	var timer *time.Timer
	spinUntil := time.Now().Add(spinFor)
	for {
		select {
		case <-t.sigchld:
		default:
		}
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			// The Go runtime preempts threads with SIGURG.
			continue
		}
		if err != nil {
			return Stop{}, fmt.Errorf("waitpid %d: %w", tid, err)
		}
		if wpid == tid {
			return decodeStop(ws), nil
		}
		if time.Now().Before(spinUntil) {
			// Lets the tracee run here, should it share this CPU.
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		left := time.Until(w.until)
		if left <= 0 {
			return Stop{}, &TimeoutError{Tid: tid, Awaited: w.what, After: stopTimeout}
		}
		if timer == nil {
			timer = time.NewTimer(left)
			defer timer.Stop()
		}
		select {
		case <-t.sigchld:
		case <-timer.C:
		case <-done:
			return Stop{}, fmt.Errorf("thread %d: waiting for a %s: %w", tid, w.what, context.Cause(w.ctx))
		}
	}
}

// ExitError reports that a tracee exited or was killed while we waited for
// it to stop. It matches errors.Is(err, unix.ESRCH): the task is gone.
type ExitError struct {
	Tid  int
	Stop Stop
}

func (e *ExitError) Error() string { return fmt.Sprintf("task %d %v", e.Tid, e.Stop) }
func (e *ExitError) Unwrap() error { return unix.ESRCH }

// UnexpectedStopError reports a stop that an operation cannot continue from.
type UnexpectedStopError struct {
	Tid  int
	Op   string
	Stop Stop
}

func (e *UnexpectedStopError) Error() string {
	return fmt.Sprintf("%s %d: unexpected %v", e.Op, e.Tid, e.Stop)
}

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

type sizeError struct {
	what      string
	want, got int
}

func (e *sizeError) Error() string {
	return fmt.Sprintf("%s: kernel returned %d bytes, want %d", e.what, e.got, e.want)
}

type memoryError struct {
	op        string
	pid       int
	addr      uint64
	len, done int
	err       error
}

func (e *memoryError) Error() string {
	if e.done != 0 {
		return fmt.Sprintf("process_vm_%sv %d at %#x (%d bytes): short, %d done: %v", e.op, e.pid, e.addr, e.len, e.done, e.err)
	}
	return fmt.Sprintf("process_vm_%sv %d at %#x (%d bytes): %v", e.op, e.pid, e.addr, e.len, e.err)
}

func (e *memoryError) Unwrap() error { return e.err }
