//go:build linux && amd64

package ptrace

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Signals around a stop: the mask and pending queues as ptrace shows them,
// and signals dequeued while gocr stops a task or injects a syscall, which
// must be given back, not delivered or lost.

// TestSignalState: the blocked mask reads and writes (SIGKILL cannot be
// blocked), and the private and shared pending queues are read with their
// siginfo without being dequeued; after the detach the target receives
// them in the kernel's order.
func TestSignalState(t *testing.T) {
	tg := startTarget(t, "sigqueue")
	var sigrtmin int
	if _, err := fmt.Sscanf(tg.ready, "READY sigrtmin=%d", &sigrtmin); err != nil {
		t.Fatalf("parse %q: %v", tg.ready, err)
	}
	rtmin := unix.Signal(sigrtmin)
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)

	mask, err := tr.GetSigmask(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	want := sigbit(unix.SIGUSR1) | sigbit(unix.SIGUSR2) | sigbit(rtmin)
	if mask != want {
		t.Errorf("sigmask = %#x, want %#x", mask, want)
	}
	// SIGKILL and SIGSTOP cannot be blocked; the kernel drops them.
	if err := tr.SetSigmask(tg.pid, mask|sigbit(unix.SIGWINCH)|sigbit(unix.SIGKILL)); err != nil {
		t.Fatal(err)
	}
	if got, err := tr.GetSigmask(tg.pid); err != nil || got != mask|sigbit(unix.SIGWINCH) {
		t.Errorf("after SetSigmask: %#x, %v; want %#x", got, err, mask|sigbit(unix.SIGWINCH))
	}
	if err := tr.SetSigmask(tg.pid, mask); err != nil {
		t.Fatal(err)
	}

	type sig struct {
		Signo int
		Value uint64
	}
	decode := func(infos [][SiginfoSize]byte) []sig {
		var out []sig
		for _, si := range infos {
			s := sig{Signo: SiginfoSigno(si)}
			if SiginfoCode(si) == -1 { // SI_QUEUE carries a value
				s.Value = SiginfoValue(si)
			}
			out = append(out, s)
		}
		return out
	}
	shared, err := tr.PeekSiginfo(tg.pid, true)
	if err != nil {
		t.Fatal(err)
	}
	wantShared := []sig{{sigrtmin, 1}, {sigrtmin, 2}, {sigrtmin, 3}, {int(unix.SIGUSR1), 0}}
	if diff := cmp.Diff(wantShared, decode(shared)); diff != "" {
		t.Errorf("shared queue (-want +got):\n%s", diff)
	}
	private, err := tr.PeekSiginfo(tg.pid, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sig{{int(unix.SIGUSR2), 0}}, decode(private)); diff != "" {
		t.Errorf("private queue (-want +got):\n%s", diff)
	}

	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.stdin.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		l := tg.expect("", 5*time.Second)
		if l == "DONE" {
			break
		}
		lines = append(lines, l)
	}
	// Private queue first, then shared by signal number, RT in queue order
	// (kernel/signal.c dequeue_signal, next_signal).
	wantLines := []string{
		"PENDING 1 1 1",
		fmt.Sprintf("GOT %d 0", unix.SIGUSR2),
		fmt.Sprintf("GOT %d 0", unix.SIGUSR1),
		fmt.Sprintf("GOT %d 1", sigrtmin),
		fmt.Sprintf("GOT %d 2", sigrtmin),
		fmt.Sprintf("GOT %d 3", sigrtmin),
	}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("target after detach (-want +got):\n%s", diff)
	}
}

// TestStopTaskKeepsSignal: a signal the tracee dequeues while StopTask waits
// is returned, not delivered, and Requeue gives it back with its siginfo.
func TestStopTaskKeepsSignal(t *testing.T) {
	tg, tr := seizedInSignalStop(t)
	infos, err := tr.StopTaskInfo(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, si := range infos {
		got = append(got, SiginfoSigno(si))
	}
	if diff := cmp.Diff([]int{int(unix.SIGUSR1)}, got); diff != "" {
		t.Fatalf("StopTask pending (-want +got):\n%s", diff)
	}
	if err := tr.Requeue(tg.pid, infos); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	// Exactly one delivery, with the sender's siginfo (SI_USER from us),
	// not the tracee's own.
	want := fmt.Sprintf("HANDLED 1 pid=%d code=0", os.Getpid())
	if l := tg.expect("HANDLED", 5*time.Second); l != want {
		t.Fatalf("target printed %q, want %q", l, want)
	}
	tg.quiet(200 * time.Millisecond)
}

// TestStopTaskSimpleResend: the plain way to give a signal back, by number.
func TestStopTaskSimpleResend(t *testing.T) {
	tg, tr := seizedInSignalStop(t)
	pending, err := tr.StopTask(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{int(unix.SIGUSR1)}, pending); diff != "" {
		t.Fatalf("StopTask pending (-want +got):\n%s", diff)
	}
	for _, s := range pending {
		if err := unix.Tgkill(tg.pid, tg.pid, unix.Signal(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	tg.expect("HANDLED 1 ", 5*time.Second)
	tg.quiet(200 * time.Millisecond)
}

// TestDetachSignalFromEventStopIsDropped records the kernel behaviour that
// makes Requeue necessary: PTRACE_DETACH's signal is ignored at
// PTRACE_EVENT_STOP.
func TestDetachSignalFromEventStopIsDropped(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	if err := tr.Detach(tg.pid, int(unix.SIGUSR1)); err != nil {
		t.Fatal(err)
	}
	tg.quiet(300 * time.Millisecond)
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	tg.expect("HANDLED 1 ", 5*time.Second)
}

// TestInjectionBlocksSignals: a signal sent while system calls are
// injected is not taken from the thread (every signal is blocked while
// they run); once Finish puts the mask back and the thread is released,
// it is delivered, exactly once, with its sender's siginfo.
func TestInjectionBlocksSignals(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	in, err := tr.PrepareInjection(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Syscall(unix.SYS_GETPID); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ret, err := in.Syscall(unix.SYS_GETPID)
	if err != nil || ret != int64(tg.pid) {
		t.Fatalf("getpid = %d, %v; want %d", ret, err, tg.pid)
	}
	if err := in.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	tg.expect(fmt.Sprintf("HANDLED 1 pid=%d code=0", os.Getpid()), 5*time.Second)
	tg.quiet(200 * time.Millisecond)
}

// seizedInSignalStop starts the handler target, seizes it and sends it
// SIGUSR1, then waits until it has dequeued the signal and sits in its
// signal-delivery-stop (state t, man 5 proc): a StopTask then must take
// the signal from it, which a fixed sleep would leave to chance.
func seizedInSignalStop(t *testing.T) (*target, *Tracer) {
	t.Helper()
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	if err := tr.Seize(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitState(t, tg.pid, 't')
	return tg, tr
}
