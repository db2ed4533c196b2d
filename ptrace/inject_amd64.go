//go:build linux && amd64

package ptrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// syscallInsnLen is the length of the x86-64 `syscall` instruction (0f 05);
// after it the kernel reports rip = insn + 2 at both syscall-stops.
const syscallInsnLen = 2

// maxSyscallErrno bounds the range of raw syscall returns that are -errno
// (include/linux/err.h MAX_ERRNO).
const maxSyscallErrno = 4095

// SyscallError turns the raw return value of an injected syscall into an
// error: nil for a success, otherwise a unix.Errno usable with errors.Is.
// Kernel-internal values such as -ERESTARTSYS (512) come back as
// unix.Errno(512); they only reach user space when a syscall is interrupted
// and not restarted.
func SyscallError(ret int64) error {
	if ret < 0 && ret >= -maxSyscallErrno {
		return unix.Errno(-ret)
	}
	return nil
}

// InjectSyscall makes the tracee execute syscall nr with args (at most six,
// in rdi, rsi, rdx, r10, r8, r9, per the x86-64 syscall ABI) using the
// `syscall` instruction at address insn in its address space, and returns
// the raw rax (negative = -errno, see SyscallError).
//
// It sets orig_rax to -1 so that, when the tracee leaves the event stop
// inside get_signal, arch_do_signal_or_restart (arch/x86/kernel/signal.c)
// does not apply the restart of the syscall that was interrupted: that would
// move rip back by 2 and replace rax. The registers are not restored: the
// caller saves them once before the first injection and puts them back after
// ReturnToEventStop. The tracee is left in the syscall-exit-stop of the
// injected call, with rip = insn + 2.
//
// Signals the tracee dequeues meanwhile are suppressed and returned in a
// *SignalsPendingError; the return value is valid even then.
//
// Precondition: the tracee is in PTRACE_EVENT_STOP, or in the
// syscall-exit-stop of a previous injection.
func (t *Tracer) InjectSyscall(tid int, insn uint64, nr uint64, args ...uint64) (int64, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("inject syscall %d into %d: %d arguments, at most 6", nr, tid, len(args))
	}
	var (
		ret   int64
		infos [][SiginfoSize]byte
		err   error
	)
	t.Do(func() { ret, infos, err = t.injectSyscall(tid, insn, nr, args) })
	if err != nil {
		if len(infos) > 0 {
			// Do not let a failure hide signals that were taken from
			// the tracee.
			err = errors.Join(err, &SignalsPendingError{Tid: tid, Op: "inject syscall", Signals: infos})
		}
		return 0, fmt.Errorf("inject syscall %d into %d: %w", nr, tid, err)
	}
	if len(infos) > 0 {
		return ret, &SignalsPendingError{Tid: tid, Op: fmt.Sprintf("inject syscall %d", nr), Signals: infos}
	}
	return ret, nil
}

// Precondition: called on the tracer thread; see InjectSyscall.
func (t *Tracer) injectSyscall(tid int, insn uint64, nr uint64, args []uint64) (int64, [][SiginfoSize]byte, error) {
	r, err := getRegs(tid)
	if err != nil {
		return 0, nil, fmt.Errorf("ptrace getregset %d: %w", tid, err)
	}
	var a [6]uint64
	copy(a[:], args)
	r.Rip = insn
	r.Rax = nr
	r.Orig_rax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := setRegs(tid, &r); err != nil {
		return 0, nil, fmt.Errorf("ptrace setregset %d: %w", tid, err)
	}

	var infos [][SiginfoSize]byte
	for _, phase := range []string{"syscall-enter-stop", "syscall-exit-stop"} {
		if err := syscallCont(tid); err != nil {
			return 0, infos, err
		}
		si, err := t.waitSyscallStop(tid, phase)
		infos = append(infos, si...)
		if err != nil {
			return 0, infos, err
		}
	}
	r, err = getRegs(tid)
	if err != nil {
		return 0, infos, fmt.Errorf("ptrace getregset %d: %w", tid, err)
	}
	if r.Rip != insn+syscallInsnLen || r.Orig_rax != nr {
		// Somebody else's syscall: insn is not a syscall instruction, or
		// the tracee was not where the precondition says.
		return 0, infos, fmt.Errorf("stopped at rip %#x orig_rax %d, want rip %#x orig_rax %d", r.Rip, int64(r.Orig_rax), insn+syscallInsnLen, nr)
	}
	return int64(r.Rax), infos, nil
}

// waitSyscallStop waits for the next syscall-stop, suppressing and
// collecting signal-delivery-stops and explaining every other stop.
//
// Precondition: called on the tracer thread after PTRACE_SYSCALL.
func (t *Tracer) waitSyscallStop(tid int, phase string) ([][SiginfoSize]byte, error) {
	var infos [][SiginfoSize]byte
	w := waitFor{what: phase, until: time.Now().Add(stopTimeout)}
	for {
		s, err := t.wait(tid, w)
		if err != nil {
			return infos, err
		}
		switch s.Kind {
		case SyscallStop:
			return infos, nil
		case SignalStop:
			// A signal unblocked in the tracee was dequeued by
			// get_signal before our syscall instruction ran. Resuming
			// with 0 discards it, and orig_rax = -1 keeps the restart
			// logic away, so rip still points at insn.
			si, err := getSiginfo(tid)
			if err != nil {
				return infos, fmt.Errorf("ptrace getsiginfo %d: %w", tid, err)
			}
			infos = append(infos, si)
		case EventStop:
			// A PTRACE_INTERRUPT or group-stop trap that was pending
			// when we resumed; it carries nothing to keep.
		case Exited, Killed:
			return infos, &ExitError{Tid: tid, Stop: s}
		default:
			return infos, &UnexpectedStopError{Tid: tid, Op: "wait for " + phase, Stop: s}
		}
		if err := syscallCont(tid); err != nil {
			return infos, err
		}
	}
}

// Requeue sends signals that gocr suppressed (from StopTaskInfo or a
// *SignalsPendingError) back to the tracee with their original siginfo, by
// making the tracee call rt_tgsigqueueinfo on itself: only a task queueing
// to itself may use a kernel si_code (>= 0) or SI_TKILL (kernel/signal.c
// do_rt_tgsigqueueinfo), so tgkill or rt_sigqueueinfo from gocr could not
// reproduce a SIGCHLD's or a SIGSEGV's siginfo. The siginfo is written
// below the tracee's red zone, memory the ABI lets a signal frame clobber at
// any time.
//
// Like InjectSyscall it leaves the registers changed; the caller restores
// them after ReturnToEventStop.
//
// Precondition: as InjectSyscall.
func (t *Tracer) Requeue(tid int, insn uint64, infos [][SiginfoSize]byte) error {
	if len(infos) == 0 {
		return nil
	}
	tgid, err := tgidOf(tid)
	if err != nil {
		return fmt.Errorf("requeue signals to %d: %w", tid, err)
	}
	regs, err := t.GetRegs(tid)
	if err != nil {
		return fmt.Errorf("requeue signals to %d: %w", tid, err)
	}
	// 128 bytes of red zone (System V AMD64 ABI 3.2.2), then the siginfo,
	// 16-byte aligned.
	addr := (regs.Rsp - 128 - SiginfoSize) &^ 15
	for _, si := range infos {
		if err := WriteMemory(tid, addr, si[:]); err != nil {
			return fmt.Errorf("requeue signal %d to %d: %w", SiginfoSigno(si), tid, err)
		}
		ret, err := t.InjectSyscall(tid, insn, unix.SYS_RT_TGSIGQUEUEINFO, uint64(tgid), uint64(tid), uint64(SiginfoSigno(si)), addr)
		if err == nil {
			err = SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("requeue signal %d to %d: rt_tgsigqueueinfo: %w", SiginfoSigno(si), tid, err)
		}
	}
	return nil
}

// tgidOf reads the thread group of a thread from /proc/TID/status.
func tgidOf(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no Tgid line", tid)
}

// FindSyscallInsn returns the address of a `syscall` instruction (0f 05) in
// the [vdso] of pid. The vDSO's fallback paths make real syscalls, and every
// process that has not unmapped it has one; the bytes decode as `syscall`
// wherever rip points at them, aligned to an instruction boundary or not.
func FindSyscallInsn(pid int) (uint64, error) {
	start, end, err := vdsoRange(pid)
	if err != nil {
		return 0, fmt.Errorf("find syscall instruction in %d: %w", pid, err)
	}
	buf := make([]byte, end-start)
	if err := ReadMemory(pid, start, buf); err != nil {
		return 0, fmt.Errorf("find syscall instruction in %d: %w", pid, err)
	}
	i := bytes.Index(buf, []byte{0x0f, 0x05})
	if i < 0 {
		return 0, fmt.Errorf("find syscall instruction in %d: no 0f 05 in [vdso] %#x-%#x", pid, start, end)
	}
	return start + uint64(i), nil
}

// vdsoRange finds the [vdso] line of /proc/PID/maps (man 5 proc_pid_maps).
func vdsoRange(pid int) (start, end uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, " [vdso]") {
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			return 0, 0, fmt.Errorf("/proc/%d/maps: bad range %q", pid, rng)
		}
		if start, err = strconv.ParseUint(lo, 16, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/maps: %w", pid, err)
		}
		if end, err = strconv.ParseUint(hi, 16, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/maps: %w", pid, err)
		}
		return start, end, nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/maps: %w", pid, err)
	}
	return 0, 0, fmt.Errorf("/proc/%d/maps: no [vdso] mapping", pid)
}
