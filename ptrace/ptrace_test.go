//go:build linux && amd64

package ptrace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

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

func TestSyscallError(t *testing.T) {
	if err := SyscallError(42); err != nil {
		t.Errorf("SyscallError(42) = %v", err)
	}
	if err := SyscallError(-int64(unix.ENOENT)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("SyscallError(-ENOENT) = %v, want ENOENT", err)
	}
	// mmap returns addresses that look negative as int64 but are not errors.
	if err := SyscallError(-5000); err != nil {
		t.Errorf("SyscallError(-5000) = %v, want nil", err)
	}
}

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

func TestSeizeNonexistent(t *testing.T) {
	needRoot(t)
	tr := newTracer(t)
	// pid_max is 32768 here; a pid above it never exists.
	err := tr.Seize(1 << 22)
	if !errors.Is(err, unix.ESRCH) {
		t.Fatalf("Seize(nonexistent) = %v, want ESRCH", err)
	}
}

// TestNanosleepRestart: a tracee stopped inside clock_nanosleep shows the
// restart_block code; writing its registers back unchanged at the event stop
// lets the sleep complete without EINTR.
func TestNanosleepRestart(t *testing.T) {
	tg := startTarget(t, "nanosleep")
	start := time.Now()
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	regs, err := tr.GetRegs(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	// glibc 2.36 implements nanosleep with clock_nanosleep.
	if regs.Orig_rax != unix.SYS_CLOCK_NANOSLEEP && regs.Orig_rax != unix.SYS_NANOSLEEP {
		t.Errorf("orig_rax = %d, want clock_nanosleep or nanosleep", int64(regs.Orig_rax))
	}
	if got := int64(regs.Rax); got != -int64(ERESTART_RESTARTBLOCK) {
		t.Errorf("rax = %d, want -ERESTART_RESTARTBLOCK (-516)", got)
	}
	if err := tr.SetRegs(tg.pid, &regs); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	tg.expect("OK", 5*time.Second)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("nanosleep(2s) returned after %v", d)
	}
}

// injectGetpid injects a few getpids and checks they return the target's pid.
func injectGetpid(t *testing.T, tr *Tracer, pid int) {
	t.Helper()
	insn, err := FindSyscallInsn(pid)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ret, err := tr.InjectSyscall(pid, insn, unix.SYS_GETPID)
		if err != nil {
			t.Fatal(err)
		}
		if ret != int64(pid) {
			t.Fatalf("injected getpid = %d, want %d", ret, pid)
		}
	}
	// An error return comes back as -errno.
	ret, err := tr.InjectSyscall(pid, insn, unix.SYS_CLOSE, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := SyscallError(ret); !errors.Is(err, unix.EBADF) {
		t.Fatalf("injected close(-1) = %d (%v), want EBADF", ret, err)
	}
}

// interruptedRestore stops a target blocked in a syscall, checks the restart
// code, injects syscalls, returns to the event stop and restores the
// registers, then detaches.
func interruptedRestore(t *testing.T, tg *target, wantNr uint64, wantErr unix.Errno) {
	t.Helper()
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Orig_rax != wantNr || int64(saved.Rax) != -int64(wantErr) {
		t.Fatalf("at event stop orig_rax=%d rax=%d, want %d and %d", int64(saved.Orig_rax), int64(saved.Rax), wantNr, -int64(wantErr))
	}
	injectGetpid(t, tr, tg.pid)
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
}

func TestReadRestartAfterInjection(t *testing.T) {
	tg := startTarget(t, "read")
	interruptedRestore(t, tg, unix.SYS_READ, ERESTARTSYS)
	tg.quiet(300 * time.Millisecond) // still blocked in read
	if _, err := tg.stdin.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := tg.expect("READ", 5*time.Second), "READ 6 hello"; got != want {
		t.Fatalf("target printed %q, want %q", got, want)
	}
}

func TestPauseRestartAfterInjection(t *testing.T) {
	tg := startTarget(t, "pause")
	interruptedRestore(t, tg, unix.SYS_PAUSE, ERESTARTNOHAND)
	tg.quiet(300 * time.Millisecond) // pause restarted, no spurious return
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// pause returns -1 EINTR once the handler ran, exactly once.
	if got, want := tg.expect("PAUSE", 5*time.Second), fmt.Sprintf("PAUSE -1 %d 1", unix.EINTR); got != want {
		t.Fatalf("target printed %q, want %q", got, want)
	}
}

// TestRestoreAtSyscallExitLeaksRestartErrno is the experiment behind
// ReturnToEventStop: registers written back at the syscall-exit-stop of an
// injected syscall bypass the restart logic when the tracee is simply
// resumed, and the interrupted read returns the kernel-internal ERESTARTSYS
// to user space.
//
// PTRACE_DETACH happens to hide this: __ptrace_unlink (kernel/ptrace.c)
// calls ptrace_signal_wake_up on a traced task, which sets TIF_SIGPENDING,
// so the exit path runs get_signal and then the restart logic after all.
// gocr must not rely on that (it resumes tracees with PTRACE_CONT to run the
// parasite, and a detach from a different path may not kick).
func TestRestoreAtSyscallExitLeaksRestartErrno(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resume func(tr *Tracer, pid int) error
		leaks  bool
	}{
		{"cont", func(tr *Tracer, pid int) error { return tr.Cont(pid, 0) }, true},
		{"detach", func(tr *Tracer, pid int) error { return tr.Detach(pid, 0) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startTarget(t, "read")
			settle()
			tr := newTracer(t)
			seizeStop(t, tr, tg.pid)
			saved, err := tr.GetRegs(tg.pid)
			if err != nil {
				t.Fatal(err)
			}
			injectGetpid(t, tr, tg.pid)
			if err := tr.SetRegs(tg.pid, &saved); err != nil { // wrong place, on purpose
				t.Fatal(err)
			}
			if err := tc.resume(tr, tg.pid); err != nil {
				t.Fatal(err)
			}
			if tc.leaks {
				got := tg.expect("", 5*time.Second)
				if want := fmt.Sprintf("FAIL errno %d", int(ERESTARTSYS)); got != want {
					t.Fatalf("target printed %q, want %q (the kernel behaviour ReturnToEventStop exists for)", got, want)
				}
				return
			}
			tg.quiet(300 * time.Millisecond)
			if _, err := tg.stdin.WriteString("hi\n"); err != nil {
				t.Fatal(err)
			}
			tg.expect("READ 3 hi", 5*time.Second)
		})
	}
}

func TestXstate(t *testing.T) {
	tg := startTarget(t, "xmm")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	xs, err := tr.GetXstate(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	xcr0 := XCR0(xs)
	t.Logf("xstate %d bytes, XCR0 %#x, xstate_bv %#x", len(xs), xcr0, XstateBV(xs))
	if xcr0&(XfeatureFP|XfeatureSSE) != XfeatureFP|XfeatureSSE {
		t.Errorf("XCR0 %#x lacks x87|SSE", xcr0)
	}
	var targetXCR0 uint64
	if _, err := fmt.Sscanf(tg.ready, "READY xcr0=%x", &targetXCR0); err != nil {
		t.Fatalf("parse %q: %v", tg.ready, err)
	}
	if xcr0 != targetXCR0 {
		t.Errorf("XCR0 in the ptrace image %#x, xgetbv(0) in the target %#x", xcr0, targetXCR0)
	}

	// The target loaded ymm0 = {in[0..3]}: low half in the legacy area,
	// high half in the AVX component.
	le := binary.LittleEndian
	wantLo := []uint64{0x1122334455667788, 0x99aabbccddeeff00}
	wantHi := []uint64{0x0123456789abcdef, 0xfedcba9876543210}
	gotLo := []uint64{le.Uint64(xs[XstateXMMOffset:]), le.Uint64(xs[XstateXMMOffset+8:])}
	gotHi := []uint64{le.Uint64(xs[XstateExtendedOffset:]), le.Uint64(xs[XstateExtendedOffset+8:])}
	if diff := cmp.Diff(wantLo, gotLo); diff != "" {
		t.Errorf("xmm0 in image (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantHi, gotHi); diff != "" {
		t.Errorf("ymm0 high half in image (-want +got):\n%s", diff)
	}

	// Round trip.
	if err := tr.SetXstate(tg.pid, xs); err != nil {
		t.Fatal(err)
	}
	again, err := tr.GetXstate(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(xs, again) {
		t.Fatalf("xstate changed across Set/Get of the same bytes")
	}

	// A wrong size is refused rather than half-applied.
	if err := tr.SetXstate(tg.pid, xs[:len(xs)-64]); err == nil {
		t.Errorf("SetXstate with a short image succeeded")
	}

	mod := bytes.Clone(xs)
	le.PutUint64(mod[XstateXMMOffset:], 0xa5a5a5a5a5a5a5a5)
	le.PutUint64(mod[XstateXMMOffset+8:], 0x5a5a5a5a5a5a5a5a)
	le.PutUint64(mod[XstateExtendedOffset:], 0xc3c3c3c3c3c3c3c3)
	le.PutUint64(mod[XstateExtendedOffset+8:], 0x3c3c3c3c3c3c3c3c)
	le.PutUint64(mod[XstateHeaderOffset:], XstateBV(mod)|XfeatureSSE|XfeatureYMM)
	if err := tr.SetXstate(tg.pid, mod); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	got := tg.expect("YMM0", 5*time.Second)
	if want := "YMM0 a5a5a5a5a5a5a5a5 5a5a5a5a5a5a5a5a c3c3c3c3c3c3c3c3 3c3c3c3c3c3c3c3c"; got != want {
		t.Fatalf("target saw %q, want %q", got, want)
	}
}

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

func TestRseqConfig(t *testing.T) {
	tg := startTarget(t, "pause")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	c, err := tr.GetRseqConfig(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rseq %+v", c)
	if c.AbiPointer == 0 {
		t.Errorf("AbiPointer = 0: glibc 2.35+ registers rseq for every thread")
	}
	if c.Signature != 0x53053053 { // glibc's RSEQ_SIG for x86
		t.Errorf("Signature = %#x, want 0x53053053", c.Signature)
	}
	if c.AbiSize < 32 { // sizeof(struct rseq), include/uapi/linux/rseq.h
		t.Errorf("AbiSize = %d, want >= 32", c.AbiSize)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
}

// TestStopTaskKeepsSignal: a signal the tracee dequeues while StopTask waits
// is returned, not delivered, and Requeue gives it back with its siginfo.
func TestStopTaskKeepsSignal(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	if err := tr.Seize(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Let the tracee dequeue it and sit in signal-delivery-stop.
	time.Sleep(100 * time.Millisecond)
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
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Requeue(tg.pid, insn, infos); err != nil {
		t.Fatal(err)
	}
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
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
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	if err := tr.Seize(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
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

// TestInjectSyscallKeepsSignal: a signal dequeued while an injection runs is
// reported, and the injected syscall still completes.
func TestInjectSyscallKeepsSignal(t *testing.T) {
	tg := startTarget(t, "handler")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	// Queued while stopped, dequeued by get_signal when the injection
	// resumes the tracee.
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ret, err := tr.InjectSyscall(tg.pid, insn, unix.SYS_GETPID)
	var sp *SignalsPendingError
	if !errors.As(err, &sp) {
		t.Fatalf("InjectSyscall = %d, %v; want a *SignalsPendingError", ret, err)
	}
	if ret != int64(tg.pid) {
		t.Errorf("getpid = %d, want %d", ret, tg.pid)
	}
	if len(sp.Signals) != 1 || SiginfoSigno(sp.Signals[0]) != int(unix.SIGUSR1) {
		t.Fatalf("pending = %v", sp)
	}
	if !strings.Contains(sp.Error(), "user defined signal 1") {
		t.Errorf("error text %q does not name the signal", sp.Error())
	}
	if err := tr.Requeue(tg.pid, insn, sp.Signals); err != nil {
		t.Fatal(err)
	}
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	tg.expect(fmt.Sprintf("HANDLED 1 pid=%d code=0", os.Getpid()), 5*time.Second)
}

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

func TestMemory(t *testing.T) {
	tg := startTarget(t, "pause")
	start, end, err := vdsoRange(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if insn < start || insn+2 > end {
		t.Fatalf("syscall insn %#x outside [vdso] %#x-%#x", insn, start, end)
	}
	b := make([]byte, 2)
	if err := ReadMemory(tg.pid, insn, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte{0x0f, 0x05}) {
		t.Fatalf("bytes at %#x = % x", insn, b)
	}
	// The vDSO is read-only: process_vm_writev honours that.
	if err := WriteMemory(tg.pid, insn, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("WriteMemory into [vdso] = %v, want EFAULT", err)
	}
	if err := ReadMemory(tg.pid, 0, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("ReadMemory at 0 = %v, want EFAULT", err)
	}
}

func BenchmarkInjectSyscall(b *testing.B) {
	tg := startTarget(b, "pause")
	settle()
	tr := newTracer(b)
	seizeStop(b, tr, tg.pid)
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		ret, err := tr.InjectSyscall(tg.pid, insn, unix.SYS_GETPID)
		if err != nil || ret != int64(tg.pid) {
			b.Fatalf("getpid = %d, %v", ret, err)
		}
	}
	b.StopTimer()
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		b.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
		b.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		b.Fatal(err)
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

// BenchmarkInjectSyscallBatched injects inside one Do, the way the parasite
// layer should when it runs a sequence of syscalls.
func BenchmarkInjectSyscallBatched(b *testing.B) {
	tg := startTarget(b, "pause")
	settle()
	tr := newTracer(b)
	seizeStop(b, tr, tg.pid)
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	tr.Do(func() {
		for b.Loop() {
			ret, err := tr.InjectSyscall(tg.pid, insn, unix.SYS_GETPID)
			if err != nil || ret != int64(tg.pid) {
				b.Fatalf("getpid = %d, %v", ret, err)
			}
		}
	})
	b.StopTimer()
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		b.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
		b.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		b.Fatal(err)
	}
}
