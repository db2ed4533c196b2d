//go:build linux

package ptrace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

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
// a dump pays for every thread it stops. While it polls, stops send no
// SIGCHLD at all (stopsignal_linux.go).
const spinFor = 200 * time.Microsecond

// wait returns tid's next state change. It polls with WNOHANG and sleeps
// until the next SIGCHLD, the deadline or ctx's end: stops send SIGCHLD
// from before the last poll on, and SIGCHLD is drained before each poll,
// so a change after the poll always wakes it.
//
// Precondition: called on the tracer thread.
func (t *Tracer) wait(tid int, w waitFor) (Stop, error) {
	var done <-chan struct{}
	if w.ctx != nil {
		done = w.ctx.Done()
	}
	var timer *time.Timer
	spinUntil := time.Now().Add(spinFor)
	sleeping := false
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
		if !sleeping {
			// Stops send SIGCHLD from now on; one that came before
			// did not, and the next poll finds it.
			wake, err := sleepOnStops()
			if err != nil {
				return Stop{}, fmt.Errorf("waitpid %d: %w", tid, err)
			}
			defer wake()
			sleeping = true
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
