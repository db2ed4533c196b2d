//go:build linux && amd64

package ptrace

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
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

// redZone is the 128 bytes below rsp that a function may use without
// moving rsp (System V AMD64 ABI 3.2.2); a signal frame goes below it.
const redZone = 128

// ScratchSize is the memory an Injection offers for a call's arguments
// (Injection.Scratch).
const ScratchSize = 256

// Injection runs system calls in a stopped thread such that the thread,
// whatever instant gocr dies at, gets back by itself exactly the state it
// had when the Injection was prepared.
//
// A tracer's death detaches its tracees, whatever stop they are in
// (kernel/ptrace.c exit_ptrace, __ptrace_detach, __ptrace_unlink wakes a
// TASK_TRACED one), and each runs on from the registers it has. So an
// injected call never runs from the thread's own registers but from a
// state that ends in rt_sigreturn: PrepareInjection writes an rt_sigframe
// of the thread (Sigframe: registers, xsave area with
// FP_XSTATE_MAGIC1/2, signal mask) below the red zone of the thread's own
// stack, where the kernel would put a signal's frame, and each call runs
// at the vDSO gadget `syscall; mov $15, %eax; syscall` (gadget_amd64.go)
// with rsp at that frame's ucontext, or, in a process without a vDSO, at
// a chain of its own code that does the same (chain_amd64.go). Detached
// before the call, in its syscall-enter-stop, in its exit stop or between
// two calls, the thread runs the call, then rt_sigreturn, which puts
// back its registers, its extended state and its mask
// (arch/x86/kernel/signal_64.c rt_sigreturn, restore_sigcontext;
// arch/x86/kernel/fpu/signal.c fpu__restore_sig). A live gocr stops the thread in the call's syscall-exit-stop, reads rax
// and moves on: the rt_sigreturn only ever runs if gocr is gone.
//
// While calls run, every signal is blocked, so no handler of the thread's
// runs and no signal is dequeued in between: PTRACE_SETSIGMASK, set only
// once the registers point at the gadget (blocked, a thread run from its
// own registers would never see a signal again; the frame holds the
// thread's own mask).
//
// Finish puts the thread back in its event stop with its own mask and,
// last, its own registers: until then a death still ends in the
// rt_sigreturn.
type Injection struct {
	t      *Tracer
	tid    int
	saved  Regs
	xstate []byte
	mask   uint64
	// gadget is the gadget's first syscall instruction; sp is rsp for
	// each call: the frame's ucontext, or the chain below the frame.
	gadget, sp uint64
	// chain is the code the calls run on in a process without a vDSO
	// (chain_amd64.go), nil with one; frameAt is where the frame is.
	chain   *codeChain
	frameAt uint64
	// Scratch is ScratchSize bytes of the thread's stack between its red
	// zone and the frame, free for a call's arguments.
	Scratch uint64
	entered bool // a call ran: the thread left its event stop
	blocked bool // every signal is blocked
}

// PrepareInjection readies tid for injected system calls: it reads the
// thread's registers, extended state and signal mask, writes its signal
// frame below the red zone of its stack and makes sure the gadget is in
// the process's vDSO (or, without one, finds the chain in its code and
// writes it below the frame). It changes nothing the thread can see; a
// failure leaves it untouched. The thread's stack needs room for the frame, as
// it would for a signal (a signal frame can be written there at any time,
// man 7 signal).
//
// Precondition: tid is in a PTRACE_EVENT_STOP; no other Injection of tid
// is in use.
func (t *Tracer) PrepareInjection(tid int) (*Injection, error) {
	return t.prepareInjection(tid, 0, 0)
}

// PrepareInjectionOn is PrepareInjection for a thread whose alternate
// signal stack is [lo, hi) (hi 0: none): the scratch memory and the
// signal frame go at its top, where the kernel puts the frame of a
// handler with SA_ONSTACK (arch/x86/kernel/signal.c get_sigframe),
// unless the thread is on it already or it has no room for them; else
// below its stack pointer, as PrepareInjection. A program whose signals
// all run on the sigaltstack may have no room below its stack pointer:
// a Go goroutine's stack is a few KiB, an xsave area alone up to 11 KiB.
//
// Precondition: as PrepareInjection; [lo, hi) is the thread's to write
// and not in use.
func (t *Tracer) PrepareInjectionOn(tid int, lo, hi uint64) (*Injection, error) {
	return t.prepareInjection(tid, lo, hi)
}

func (t *Tracer) prepareInjection(tid int, lo, hi uint64) (*Injection, error) {
	in := &Injection{t: t, tid: tid}
	var err error
	t.Do(func() {
		if in.saved, err = getRegs(tid); err != nil {
			err = fmt.Errorf("ptrace getregset %d: %w", tid, err)
			return
		}
		if in.xstate, err = getXstate(tid); err != nil {
			err = fmt.Errorf("ptrace getregset %d NT_X86_XSTATE: %w", tid, err)
			return
		}
		if in.mask, err = getSigmask(tid); err != nil {
			err = fmt.Errorf("ptrace getsigmask %d: %w", tid, err)
			return
		}
		in.gadget, err = placeGadget(tid)
		if errors.Is(err, errNoVdso) {
			if in.chain, err = findChain(tid); err == nil {
				in.gadget = in.chain.syscallRet
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("prepare injection into %d: %w", tid, err)
	}
	// Red zone, scratch, frame, from the top down: a signal handler that
	// runs on the gadget (only before the mask is set) puts its own frame
	// below the gadget's rsp minus a red zone, under both.
	top := in.saved.Rsp - redZone
	room := uint64(ScratchSize + 16 + SigframeLen(in.xstate) + SigframeAlign + chainRoom)
	if rsp := in.saved.Rsp; hi > lo && hi-lo >= room && (rsp < lo || rsp >= hi) {
		top = hi &^ 15
	}
	in.Scratch = (top - ScratchSize) &^ 15
	frameAt := (in.Scratch - uint64(SigframeLen(in.xstate))) &^ (SigframeAlign - 1)
	// The frame is for a thread that leaves through rt_sigreturn, which
	// ends its restart block: it restarts the original call.
	frameRegs := in.saved
	if nr, ok := RestartedCall(tid, &frameRegs); ok {
		frameRegs.Orig_rax = nr
	}
	frame, err := Sigframe(&frameRegs, in.xstate, in.mask, frameAt)
	if err != nil {
		return nil, fmt.Errorf("prepare injection into %d: %w", tid, err)
	}
	in.frameAt, in.sp = frameAt, frameAt+SigframeUc
	if in.chain != nil {
		// The chain's last word is the frame's pretcode.
		c := in.chain.callChain()
		copy(frame, c[len(c)-8:])
		frame = append(c[:len(c)-8], frame...)
		frameAt -= uint64(len(c) - 8)
		in.sp = frameAt
	}
	if err := WriteMemory(tid, frameAt, frame); err != nil {
		return nil, fmt.Errorf("prepare injection into %d: no room for a signal frame below its stack pointer %#x: %w", tid, in.saved.Rsp, err)
	}
	return in, nil
}

// Regs, Xstate and Mask are the thread's registers, extended state (as
// GetXstate) and signal mask as PrepareInjection found them.
func (in *Injection) Regs() Regs     { return in.saved }
func (in *Injection) Xstate() []byte { return in.xstate }
func (in *Injection) Mask() uint64   { return in.mask }

// Entry is where every injected call starts and the rsp it starts with.
// Code of the thread's own that jumps to rip with rsp = sp, the call's
// number in rax and its arguments in rdi, rsi, rdx, r10, r8, r9, runs that
// call and then rt_sigreturn into the thread as PrepareInjection found it,
// traced or not: the way out of code gocr put in the process (a parasite
// whose tracer is gone) that leaves nothing of that code behind. The
// frame and, without a vDSO, the chain stay on the thread's stack until
// the Injection is done with, as every call needs them.
func (in *Injection) Entry() (rip, sp uint64) { return in.gadget, in.sp }

// Syscall makes the thread execute system call nr with args (at most six,
// in rdi, rsi, rdx, r10, r8, r9, per the x86-64 syscall ABI) and returns
// the raw rax (negative = -errno, see SyscallError). The thread is left in
// the call's syscall-exit-stop.
//
// orig_rax is -1 so that, when the thread leaves its event stop (inside
// get_signal, maybe interrupted in a call of its own),
// arch_do_signal_or_restart (arch/x86/kernel/signal.c) restarts nothing:
// that would move rip back by 2 and replace rax.
//
// Signals the thread dequeues meanwhile (there can be none once the mask
// is set: only one that was already on its way) are suppressed and
// returned in a *SignalsPendingError; the return value is valid even then.
//
// Precondition: the thread is in its event stop or in the exit stop of a
// previous call, and Finish was not called.
func (in *Injection) Syscall(nr uint64, args ...uint64) (int64, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("inject syscall %d into %d: %d arguments, at most 6", nr, in.tid, len(args))
	}
	var (
		ret   int64
		infos [][SiginfoSize]byte
		err   error
	)
	in.t.Do(func() { ret, infos, err = in.syscall(nr, args) })
	if err != nil {
		if len(infos) > 0 {
			// Do not let a failure hide signals that were taken from
			// the tracee.
			err = errors.Join(err, &SignalsPendingError{Tid: in.tid, Op: "inject syscall", Signals: infos})
		}
		return 0, fmt.Errorf("inject syscall %d into %d: %w", nr, in.tid, err)
	}
	if len(infos) > 0 {
		return ret, &SignalsPendingError{Tid: in.tid, Op: fmt.Sprintf("inject syscall %d", nr), Signals: infos}
	}
	return ret, nil
}

// Hold sets the thread to make system call nr with args, and then
// rt_sigreturn to its own state, should it be released before Finish
// (gocr's death detaches it), without running the call now: the thread
// stays in its event stop. A call that blocks (a timed wait) keeps the
// thread from running its own code for that long after gocr's death.
// Finish undoes it.
//
// Precondition: the thread is in its event stop, no call made yet.
func (in *Injection) Hold(nr uint64, args ...uint64) error {
	if len(args) > 6 {
		return fmt.Errorf("hold %d in syscall %d: %d arguments, at most 6", in.tid, nr, len(args))
	}
	var err error
	in.t.Do(func() {
		err = in.arm(nr, args)
		// It has not left its event stop: Finish only puts the mask
		// and registers back.
		in.entered = false
	})
	if err != nil {
		return fmt.Errorf("hold %d in syscall %d: %w", in.tid, nr, err)
	}
	return nil
}

// Gate sets the thread to wait, once released (detached, or by gocr's
// death), for the commit of a restore on fd, its own read end of a pipe
// only gocr writes (the lifeline), at the release gate, every signal
// blocked: a byte read (CommitByte), it closes fd and rt_sigreturns into
// the state PrepareInjection found, which its signal frame holds; end of
// file (gocr gone without the commit) or an error, its whole process
// exits (exit_group, status 1). The gate is code in the vDSO's padding
// (gadget_amd64.go), or, in a process without a vDSO, a chain of the
// process's own code on its stack (codeChain.gateChain). The thread
// stays in its event stop until released, and leaves by the gate: no
// Finish.
//
// A stop signal meanwhile (SIGSTOP cannot be blocked) interrupts the
// read, which restarts once the process is continued: pipe_read returns
// -ERESTARTSYS, which the kernel turns into a restart for a thread with
// no handler to run (fs/pipe.c pipe_read, arch/x86/kernel/signal.c
// arch_do_signal_or_restart).
//
// It returns where the gate is (GateSite).
//
// Precondition: the thread is in its event stop, no call made yet.
func (in *Injection) Gate(fd int) (site GateSite, err error) {
	in.t.Do(func() {
		r := in.saved
		r.Rax = unix.SYS_READ
		r.Orig_rax = ^uint64(0)
		r.Rdi, r.Rsi, r.Rdx = uint64(fd), in.Scratch, 1
		if in.chain == nil {
			if site.Read, err = placeGate(in.tid); err != nil {
				return
			}
			site.code = [][2]uint64{{site.Read, site.Read + uint64(len(gate))}}
			r.Rip, r.Rsp = site.Read, in.sp
		} else {
			c := in.chain
			at := in.frameAt + 8 - gateChainLen
			if err = WriteMemory(in.tid, at, c.gateChain()); err != nil {
				err = fmt.Errorf("write the release gate's chain: %w", err)
				return
			}
			site.Read = c.syscallRet
			site.code = [][2]uint64{{c.syscallRet, c.syscallRet + uint64(len(seqSyscallRet))},
				{c.popRax, c.popRax + uint64(len(seqPopRax))}, {c.popRdi, c.popRdi + uint64(len(seqPopRdi))}}
			site.stack = [2]uint64{at, in.frameAt + SigframeUc}
			r.Rip, r.Rsp, r.Rsi = site.Read, at, at+gateSlotOff
		}
		if err = setRegs(in.tid, &r); err != nil {
			err = fmt.Errorf("ptrace setregset %d: %w", in.tid, err)
			return
		}
		if err = setSigmask(in.tid, ^uint64(0)); err != nil {
			err = fmt.Errorf("ptrace setsigmask %d: %w", in.tid, err)
		}
	})
	if err != nil {
		return GateSite{}, fmt.Errorf("set %d at the release gate: %w", in.tid, err)
	}
	return site, nil
}

// GateSite is where a thread set at a release gate (Injection.Gate) is
// until it goes through.
type GateSite struct {
	// Read is the gate's syscall instruction that reads the lifeline: a
	// thread waiting for the commit shows rip Read+2, in read(2).
	Read uint64
	// code is the gate's code; stack, for a chain gate, the range
	// [lo, hi] its rsp stays in until the rt_sigreturn, whose rsp is hi.
	code  [][2]uint64
	stack [2]uint64
}

// Holds reports whether a thread at pc with stack pointer sp may still be
// in the gate: a thread whose pc is out of the gate's code, or, for a
// chain gate, whose sp is out of the chain (the job's own code may run
// the same bytes, but not on that stack), has gone through.
func (g GateSite) Holds(pc, sp uint64) bool {
	if g.stack[1] != 0 && (sp < g.stack[0] || sp > g.stack[1]) {
		return false
	}
	for _, c := range g.code {
		if pc >= c[0] && pc < c[1] {
			return true
		}
	}
	return false
}

// Precondition: called on the tracer thread; see Syscall.
func (in *Injection) syscall(nr uint64, args []uint64) (int64, [][SiginfoSize]byte, error) {
	if err := in.arm(nr, args); err != nil {
		return 0, nil, err
	}
	testhook.PauseNth(testhook.PauseInjectedSyscallSet)
	var infos [][SiginfoSize]byte
	for _, phase := range []string{"syscall-enter-stop", "syscall-exit-stop"} {
		si, err := in.step(phase)
		infos = append(infos, si...)
		if err != nil {
			return 0, infos, err
		}
		if phase == "syscall-enter-stop" {
			testhook.PauseNth(testhook.PauseInjectedSyscallEntered)
		}
	}
	r, err := getRegs(in.tid)
	if err != nil {
		return 0, infos, fmt.Errorf("ptrace getregset %d: %w", in.tid, err)
	}
	if r.Rip != in.gadget+syscallInsnLen || r.Orig_rax != nr {
		// Somebody else's syscall: the tracee was not where the
		// precondition says.
		return 0, infos, fmt.Errorf("stopped at rip %#x orig_rax %d, want rip %#x orig_rax %d", r.Rip, int64(r.Orig_rax), in.gadget+syscallInsnLen, nr)
	}
	return int64(r.Rax), infos, nil
}

// arm sets the thread's registers for call nr at the gadget, then blocks
// every signal if that is not done yet.
//
// Precondition: called on the tracer thread; see Syscall.
func (in *Injection) arm(nr uint64, args []uint64) error {
	r := in.saved
	var a [6]uint64
	copy(a[:], args)
	r.Rip = in.gadget
	r.Rsp = in.sp
	r.Rax = nr
	r.Orig_rax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := setRegs(in.tid, &r); err != nil {
		return fmt.Errorf("ptrace setregset %d: %w", in.tid, err)
	}
	in.entered = true
	if !in.blocked {
		// PTRACE_SETSIGMASK leaves SIGKILL and SIGSTOP out itself
		// (kernel/ptrace.c ptrace_request).
		if err := setSigmask(in.tid, ^uint64(0)); err != nil {
			return fmt.Errorf("ptrace setsigmask %d: %w", in.tid, err)
		}
		in.blocked = true
	}
	return nil
}

// step resumes the thread to its next syscall-stop, phase.
//
// Precondition: called on the tracer thread, the thread armed.
func (in *Injection) step(phase string) ([][SiginfoSize]byte, error) {
	if err := syscallCont(in.tid); err != nil {
		return nil, err
	}
	return in.t.waitSyscallStop(in.tid, phase)
}

// Finish puts the thread back in its event stop, then its signal mask,
// then its registers as PrepareInjection found them; a caller that
// changed its extended state puts that back before (SetXstate), while the
// registers still lead to the rt_sigreturn. Every step is tried; the
// errors are joined, a *SignalsPendingError among them if signals had to
// be suppressed on the way.
//
// Precondition: the thread is in its event stop or a call's exit stop.
func (in *Injection) Finish() error {
	var errs []error
	if in.entered {
		if err := in.t.ReturnToEventStop(in.tid); err != nil {
			errs = append(errs, err)
		}
		in.entered = false
	}
	if in.blocked {
		if err := in.t.SetSigmask(in.tid, in.mask); err != nil {
			errs = append(errs, err)
		}
		in.blocked = false
	}
	if err := in.t.SetRegs(in.tid, &in.saved); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
// into the Injection's scratch memory. The signals stay pending (the
// Injection blocks them) until the thread runs with its own mask again.
// The thread ends in its event stop with its registers and mask as they
// were.
//
// Precondition: tid is in a PTRACE_EVENT_STOP.
func (t *Tracer) Requeue(tid int, infos [][SiginfoSize]byte) (err error) {
	if len(infos) == 0 {
		return nil
	}
	tgid, err := tgidOf(tid)
	if err != nil {
		return fmt.Errorf("requeue signals to %d: %w", tid, err)
	}
	in, err := t.PrepareInjection(tid)
	if err != nil {
		return fmt.Errorf("requeue signals to %d: %w", tid, err)
	}
	defer func() {
		if ferr := in.Finish(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("requeue signals to %d: %w", tid, ferr))
		}
	}()
	for _, si := range infos {
		if err := WriteMemory(tid, in.Scratch, si[:]); err != nil {
			return fmt.Errorf("requeue signal %d to %d: %w", SiginfoSigno(si), tid, err)
		}
		ret, err := in.Syscall(unix.SYS_RT_TGSIGQUEUEINFO, uint64(tgid), uint64(tid), uint64(SiginfoSigno(si)), in.Scratch)
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
	return 0, 0, fmt.Errorf("/proc/%d/maps: %w", pid, errNoVdso)
}
