//go:build linux && amd64

package ptrace

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStopTaskOfStoppedTask: a task stopped by a signal when it is seized
// reports the group-stop, and is left with no trap pending: resumed, it
// runs (rather than trapping again at once, which would have been a
// PTRACE_INTERRUPT sent after the seize had trapped it already). Detached,
// it is stopped again.
func TestStopTaskOfStoppedTask(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	if err := unix.Kill(tg.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, tg.pid, 'T')
	tr := newTracer(t)
	if err := tr.Seize(tg.pid); err != nil {
		t.Fatal(err)
	}
	st, err := tr.StopTaskReport(context.Background(), tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.GroupStop != int(unix.SIGSTOP) || len(st.Signals) != 0 {
		t.Fatalf("StopTaskReport of a stopped task: %+v, want group-stop SIGSTOP and no signals", st)
	}
	if err := tr.Cont(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	var (
		s  Stop
		ok bool
	)
	tr.Do(func() { s, ok, err = waitNoHang(tg.pid) })
	if err != nil || ok {
		t.Fatalf("resumed after the seize of a stopped task, it stopped again at once: %v %v", s, err)
	}
	if _, err := tr.StopTask(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, tg.pid, 'T')
}

// TestEnterGroupStop: a process made to stop through ptrace stops before a
// signal already pending for it is handled, stays stopped once detached,
// and handles that signal after SIGCONT.
func TestEnterGroupStop(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := tr.EnterGroupStop(tg.pid, int(unix.SIGSTOP)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, tg.pid, 'T')
	tg.quiet(300 * time.Millisecond)
	if st := stateOf(tg.pid); st != 'T' {
		t.Fatalf("pid %d in state %c 300 ms after the stop, want T", tg.pid, st)
	}
	if err := unix.Kill(tg.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	tg.expect("HANDLED 1 ", 5*time.Second)
}

func stateOf(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return '?'
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return '?'
}

func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if stateOf(pid) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d in state %c, want %c", pid, stateOf(pid), want)
}

// TestPassGate: a thread stopped by ptrace into a group-stop and set at
// the release gate (its stdin the lifeline), the commit's byte written, is
// run through the gate by PassGate: its fd closed, its own signal mask
// back, still attached; detached, it stops, and after SIGCONT it goes on
// from its nanosleep. Without the byte, PassGate says so: the gate ends
// the process with status 1.
func TestPassGate(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		committed bool
	}{{"nanosleep", true}, {"novdso-nanosleep", true}, {"nanosleep", false}} {
		t.Run(fmt.Sprintf("%s,committed=%v", tc.mode, tc.committed), func(t *testing.T) {
			tg := startTarget(t, tc.mode)
			settle()
			tr := newTracer(t)
			seizeStop(t, tr, tg.pid)
			mask, err := tr.GetSigmask(tg.pid)
			if err != nil {
				t.Fatal(err)
			}
			in, err := tr.PrepareInjection(tg.pid)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.EnterGroupStop(tg.pid, int(unix.SIGSTOP)); err != nil {
				t.Fatal(err)
			}
			if _, err := in.Gate(0); err != nil {
				t.Fatal(err)
			}
			if !tc.committed {
				tg.stdin.Close()
				if err := tr.PassGate(tg.pid); err == nil {
					t.Fatal("PassGate without the commit's byte: no error")
				}
				if err := tr.Detach(tg.pid, 0); err != nil {
					t.Fatal(err)
				}
				var ws unix.WaitStatus
				if _, err := unix.Wait4(tg.pid, &ws, 0, nil); err != nil {
					t.Fatal(err)
				}
				if !ws.Exited() || ws.ExitStatus() != 1 {
					t.Fatalf("after the gate's end of file: wait status %#x, want exit status 1", uint32(ws))
				}
				return
			}
			if _, err := tg.stdin.Write([]byte{CommitByte}); err != nil {
				t.Fatal(err)
			}
			if err := tr.PassGate(tg.pid); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/fd/0", tg.pid)); !os.IsNotExist(err) {
				t.Fatalf("fd 0, the gate's, open after PassGate (%v)", err)
			}
			if got, err := tr.GetSigmask(tg.pid); err != nil || got != mask {
				t.Fatalf("signal mask after PassGate %#x (%v), want its own %#x", got, err, mask)
			}
			if err := tr.Detach(tg.pid, 0); err != nil {
				t.Fatal(err)
			}
			waitState(t, tg.pid, 'T')
			if err := unix.Kill(tg.pid, unix.SIGCONT); err != nil {
				t.Fatal(err)
			}
			tg.expect("OK", 5*time.Second)
		})
	}
}
