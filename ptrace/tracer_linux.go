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
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
)

// Tracer owns one OS thread that issues every ptrace(2) and waitpid(2) call.
type Tracer struct {
	tid       atomic.Int64 // the tracer thread, set before the first request
	reqs      chan func()
	done      chan struct{}
	closeOnce sync.Once
	// sigchld wakes a wait: the kernel sends the tracer SIGCHLD at every
	// exit of a tracee, and at its stops while a wait sleeps
	// (stopsignal_linux.go), so gocr can wait with WNOHANG and a deadline
	// instead of in a waitpid nothing could cut short.
	sigchld chan os.Signal
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), done: make(chan struct{}), sigchld: make(chan os.Signal, 1)}
	signal.Notify(t.sigchld, unix.SIGCHLD)
	tracerOpened()
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
		tracerClosed()
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
// the tracer thread. A restore's threads are released into the gate
// (Injection.Gate), where they wait for its commit: gocr dying meanwhile
// ends the detached ones there (end of file) and the others with
// SeizeExitKill.
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
			testhook.KillNth(testhook.KillInRelease)
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
