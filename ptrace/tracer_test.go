//go:build linux && amd64

package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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
	if got := decodeStop(unix.WaitStatus(unix.SIGKILL)).String(); got != "killed by SIGKILL" {
		t.Errorf("a process killed by SIGKILL reads %q", got)
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

// TestStopTaskBounded: a vfork parent waits where PTRACE_INTERRUPT cannot
// reach it (state D until its child execs or exits). StopTask gives up
// after stopTimeout with a *TimeoutError, StopTaskContext as soon as its
// context ends; once the tracer is closed, the parent is untraced and runs
// on when its child exits.
func TestStopTaskBounded(t *testing.T) {
	defer func(d time.Duration) { stopTimeout = d }(stopTimeout)
	stopTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		stop func(tr *Tracer, pid int) error
		max  time.Duration
	}{
		{"Timeout", func(tr *Tracer, pid int) error {
			_, err := tr.StopTask(pid)
			var te *TimeoutError
			if !errors.As(err, &te) || te.Tid != pid {
				return fmt.Errorf("StopTask = %v, want a *TimeoutError for %d", err, pid)
			}
			return nil
		}, time.Second},
		{"Context", func(tr *Tracer, pid int) error {
			stopTimeout = time.Minute
			why := errors.New("the test gave up")
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(100*time.Millisecond, func() { cancel(why) })
			_, err := tr.StopTaskContext(ctx, pid)
			if !errors.Is(err, why) {
				return fmt.Errorf("StopTaskContext = %v, want it to end with %q", err, why)
			}
			return nil
		}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startTarget(t, "vfork")
			settle()
			if st := procStatus(t, tg.pid, "State"); !strings.HasPrefix(st, "D") {
				t.Fatalf("vfork parent %d is in state %q, want D", tg.pid, st)
			}
			tr := NewTracer()
			if err := tr.Seize(tg.pid); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := tc.stop(tr, tg.pid)
			took := time.Since(start)
			tr.Close()
			if err != nil {
				t.Fatal(err)
			}
			if took > tc.max {
				t.Fatalf("StopTask took %v, want at most %v", took, tc.max)
			}
			// The kernel detaches when the tracer thread has exited,
			// which Close does not wait for.
			deadline := time.Now().Add(2 * time.Second)
			for tp := procStatus(t, tg.pid, "TracerPid"); tp != "0"; tp = procStatus(t, tg.pid, "TracerPid") {
				if time.Now().After(deadline) {
					t.Fatalf("vfork parent %d still traced by %s 2 s after the tracer closed", tg.pid, tp)
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := tg.stdin.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
			tg.expect("PARENT 1", 5*time.Second)
		})
	}
}

// procStatus is the value of one "Key:\tvalue" line of /proc/PID/status.
func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return ""
}
