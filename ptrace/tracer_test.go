//go:build linux && amd64

package ptrace

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The tracer itself: stops decoded from wait statuses, the one thread every
// ptrace call runs on, seizing and stopping tasks.

// TestDecodeStop: each kind of wait status the tracer meets decodes to the
// right Stop.
func TestDecodeStop(t *testing.T) {
	// Wait statuses as the kernel builds them (man 2 ptrace, man 2 waitpid).
	stopped := func(sig, event int) unix.WaitStatus { return unix.WaitStatus(event<<16 | sig<<8 | 0x7f) }
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want Stop
	}{
		{stopped(int(unix.SIGTRAP), unix.PTRACE_EVENT_STOP), Stop{Kind: EventStop, Sig: int(unix.SIGTRAP), Event: unix.PTRACE_EVENT_STOP}},
		{stopped(int(unix.SIGSTOP), unix.PTRACE_EVENT_STOP), Stop{Kind: EventStop, Sig: int(unix.SIGSTOP), Event: unix.PTRACE_EVENT_STOP}},
		{stopped(int(unix.SIGUSR1), 0), Stop{Kind: SignalStop, Sig: int(unix.SIGUSR1)}},
		{stopped(int(unix.SIGTRAP), 0), Stop{Kind: SignalStop, Sig: int(unix.SIGTRAP)}},
		{stopped(int(unix.SIGTRAP)|0x80, 0), Stop{Kind: SyscallStop, Sig: int(unix.SIGTRAP) | 0x80}},
		{stopped(int(unix.SIGTRAP), unix.PTRACE_EVENT_CLONE), Stop{Kind: OtherEventStop, Sig: int(unix.SIGTRAP), Event: unix.PTRACE_EVENT_CLONE}},
		{unix.WaitStatus(3 << 8), Stop{Kind: Exited}},
		{unix.WaitStatus(unix.SIGKILL), Stop{Kind: Killed, Sig: int(unix.SIGKILL)}},
	} {
		tc.want.Status = tc.ws
		got := decodeStop(tc.ws)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("decodeStop(%#x) (-want +got):\n%s", uint32(tc.ws), diff)
		}
		if got.String() == "" {
			t.Errorf("decodeStop(%#x).String() empty", uint32(tc.ws))
		}
	}
}

// TestDoRunsOnOneThread: every Do runs on the tracer's one OS thread, and a
// nested Do runs inline instead of deadlocking.
func TestDoRunsOnOneThread(t *testing.T) {
	tr := newTracer(t)
	var first int
	tr.Do(func() { first = unix.Gettid() })
	for range 100 {
		var tid int
		tr.Do(func() { tid = unix.Gettid() })
		if tid != first {
			t.Fatalf("Do ran on thread %d, then %d", first, tid)
		}
	}
	// Nested Do runs inline instead of deadlocking.
	var inner int
	done := make(chan struct{})
	go func() {
		tr.Do(func() { tr.Do(func() { inner = unix.Gettid() }) })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("nested Do deadlocked")
	}
	if inner != first {
		t.Fatalf("nested Do ran on thread %d, want %d", inner, first)
	}
}

// TestSeizeNonexistent: seizing a PID with no process behind it is ESRCH.
func TestSeizeNonexistent(t *testing.T) {
	needRoot(t)
	tr := newTracer(t)
	// pid_max is 32768 here; a pid above it never exists.
	err := tr.Seize(1 << 22)
	if !errors.Is(err, unix.ESRCH) {
		t.Fatalf("Seize(nonexistent) = %v, want ESRCH", err)
	}
}

// TestStopTaskExited: StopTask of a task killed meanwhile fails with ESRCH.
func TestStopTaskExited(t *testing.T) {
	tg := startTarget(t, "pause")
	tr := newTracer(t)
	if err := tr.Seize(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tg.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err := tr.StopTask(tg.pid)
	var ee *ExitError
	if !errors.As(err, &ee) || !errors.Is(err, unix.ESRCH) {
		// Interrupt itself may race with the kill and fail with ESRCH.
		if !errors.Is(err, unix.ESRCH) {
			t.Fatalf("StopTask of killed task = %v, want *ExitError / ESRCH", err)
		}
	}
}

// BenchmarkDo is the cost of one round trip to the tracer thread, the floor
// under every Tracer method.
func BenchmarkDo(b *testing.B) {
	tr := newTracer(b)
	for b.Loop() {
		tr.Do(func() {})
	}
}
