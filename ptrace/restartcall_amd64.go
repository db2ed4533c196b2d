//go:build linux && amd64

package ptrace

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// A thread stopped while it waits in a system call that keeps its
// deadline in the kernel's restart block (nanosleep, clock_nanosleep,
// poll, futex wait with a timeout) resumes in restart_syscall(2) when it
// runs on: the kernel backs its rip up over the syscall instruction and
// puts __NR_restart_syscall in rax (arch/x86/kernel/signal.c
// arch_do_signal_or_restart), leaving every argument register as the
// original call had it. A restored thread has no restart block (a fresh
// task's is do_no_restart_syscall, kernel/signal.c), nor has a thread
// after rt_sigreturn (arch/x86/kernel/signal_64.c sets it there too), so
// such a thread must restart the original call instead, whose number
// only its code still shows.

// RestartedCall is the system call a thread stopped in restart_syscall(2)
// was originally in, found as the `mov $NR, %eax` right before its
// syscall instruction (glibc's wrappers and Go's runtime load the number
// just so: b8 imm32, 0f 05). ok is false when the code says nothing
// certain (or cannot be read: execute-only memory), or names a call that
// never leaves a restart block. A thread in any other call gets its own
// orig_rax.
func RestartedCall(tid int, r *Regs) (nr uint64, ok bool) {
	if r.Orig_rax != unix.SYS_RESTART_SYSCALL {
		return r.Orig_rax, true
	}
	const movLen = 5 // b8 imm32: mov $imm32, %eax
	if r.Rip < movLen+syscallInsnLen {
		return 0, false
	}
	code := make([]byte, movLen+syscallInsnLen)
	if ReadMemory(tid, r.Rip-uint64(len(code)), code) != nil {
		return 0, false
	}
	if code[0] != 0xb8 || code[5] != 0x0f || code[6] != 0x05 {
		return 0, false
	}
	switch nr := uint64(binary.LittleEndian.Uint32(code[1:5])); nr {
	// The calls that set a restart block: kernel/time/hrtimer.c
	// hrtimer_nanosleep (nanosleep, clock_nanosleep, and through
	// kernel/time/posix-timers.c its other clocks: posix-cpu-timers.c,
	// alarmtimer.c), fs/select.c do_sys_poll (poll; ppoll and select
	// keep their deadline in user memory), kernel/futex/waitwake.c
	// futex_wait (a wait with a timeout).
	case unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_POLL, unix.SYS_FUTEX:
		return nr, true
	}
	return 0, false
}

// SleepRemainder makes r, a thread stopped in a relative nanosleep or
// clock_nanosleep that was given a pointer for the time left, sleep only
// what was left when it was stopped, should the call be restarted from
// scratch: on the way out of an interrupted relative sleep the kernel
// writes the time left there before it returns -ERESTART_RESTARTBLOCK
// (kernel/time/hrtimer.c do_nanosleep, nanosleep_copyout), so it serves
// as the request too. A sleep given no such pointer restarts in full:
// longer than asked, never shorter (nanosleep(2) allows a sleep to run
// long). Absolute sleeps end in -ERESTARTNOHAND and restart exactly
// as they are.
func SleepRemainder(r *Regs) {
	if int64(r.Rax) != -int64(ERESTART_RESTARTBLOCK) {
		return
	}
	switch r.Orig_rax {
	case unix.SYS_NANOSLEEP: // (req, rem)
		if r.Rsi != 0 {
			r.Rdi = r.Rsi
		}
	case unix.SYS_CLOCK_NANOSLEEP: // (clockid, flags, req, rem)
		if r.Rsi&unix.TIMER_ABSTIME == 0 && r.R10 != 0 {
			r.Rdx = r.R10
		}
	}
}
