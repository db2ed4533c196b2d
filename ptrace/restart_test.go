//go:build linux && amd64

package ptrace

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A syscall the tracee was blocked in when it was stopped restarts after the
// tracer ran its own syscalls in it, as if nothing happened.

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

// interruptedRestore stops a target blocked in a syscall, checks the restart
// code, injects syscalls, returns to the event stop and restores the
// registers (Injection.Finish), then detaches.
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
	if err := injectGetpid(t, tr, tg.pid).Finish(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
}

// TestReadRestartAfterInjection: a read(2) of an empty pipe, interrupted by
// the stop (-ERESTARTSYS), stays blocked after injected syscalls and
// restored registers, then reads what is written.
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

// TestPauseRestartAfterInjection: the same for pause(2) (-ERESTARTNOHAND):
// it returns once, after a handler ran.
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
			in := injectGetpid(t, tr, tg.pid)
			if err := tr.SetSigmask(tg.pid, in.Mask()); err != nil {
				t.Fatal(err)
			}
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

// TestSleepRemainder: a relative sleep given a pointer for the time left
// restarts with it as its request; anything else is left alone.
func TestSleepRemainder(t *testing.T) {
	errno := func(e unix.Errno) uint64 { return uint64(-int64(e)) }
	blocked := errno(ERESTART_RESTARTBLOCK)
	for _, c := range []struct {
		name     string
		in, want Regs
	}{
		{"nanosleep with rem", Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: blocked, Rdi: 0x1000, Rsi: 0x2000},
			Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: blocked, Rdi: 0x2000, Rsi: 0x2000}},
		{"nanosleep without rem", Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: blocked, Rdi: 0x1000},
			Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: blocked, Rdi: 0x1000}},
		{"clock_nanosleep relative with rem", Regs{Orig_rax: unix.SYS_CLOCK_NANOSLEEP, Rax: blocked, Rdi: 1, Rdx: 0x1000, R10: 0x2000},
			Regs{Orig_rax: unix.SYS_CLOCK_NANOSLEEP, Rax: blocked, Rdi: 1, Rdx: 0x2000, R10: 0x2000}},
		{"clock_nanosleep absolute", Regs{Orig_rax: unix.SYS_CLOCK_NANOSLEEP, Rax: blocked, Rsi: unix.TIMER_ABSTIME, Rdx: 0x1000, R10: 0x2000},
			Regs{Orig_rax: unix.SYS_CLOCK_NANOSLEEP, Rax: blocked, Rsi: unix.TIMER_ABSTIME, Rdx: 0x1000, R10: 0x2000}},
		{"poll", Regs{Orig_rax: unix.SYS_POLL, Rax: blocked, Rdi: 0x1000, Rsi: 1, Rdx: 3000},
			Regs{Orig_rax: unix.SYS_POLL, Rax: blocked, Rdi: 0x1000, Rsi: 1, Rdx: 3000}},
		{"not a restart block", Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: errno(ERESTARTNOHAND), Rdi: 0x1000, Rsi: 0x2000},
			Regs{Orig_rax: unix.SYS_NANOSLEEP, Rax: errno(ERESTARTNOHAND), Rdi: 0x1000, Rsi: 0x2000}},
	} {
		r := c.in
		SleepRemainder(&r)
		if r != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, r, c.want)
		}
	}
}
