//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Layout of the x86-64 rt_sigframe (arch/x86/include/asm/sigframe.h):
// pretcode, then struct ucontext (arch/x86/include/uapi/asm/ucontext.h:
// uc_flags, uc_link, uc_stack, uc_mcontext = struct sigcontext_64 of 256
// bytes, uc_sigmask), then siginfo; the xsave area (fpstate) anywhere
// 64-byte aligned, pointed at by sigcontext.fpstate.
const (
	// SigframeUc is where struct ucontext starts in the frame, after
	// pretcode: rt_sigreturn wants rsp there (arch/x86/kernel/signal_64.c
	// rt_sigreturn: frame = sp - sizeof(long)).
	SigframeUc = 8
	// SigframeUcStack is uc_stack, after uc_flags and uc_link.
	SigframeUcStack = 24
	frUcFlags       = SigframeUc
	frMcontext      = 48
	frSigmask       = 48 + 256
	frFpstate       = 512

	// struct sigcontext_64 (arch/x86/include/uapi/asm/sigcontext.h):
	// r8..r15, di, si, bp, bx, dx, ax, cx, sp, ip, flags as u64 from 0,
	// then cs, gs, fs, ss as u16 from scSegments, and the fpstate pointer.
	scSegments = 144
	scFpstate  = 184

	// uc_flags (arch/x86/include/uapi/asm/ucontext.h): the frame has an
	// xsave area, and ss is saved and must be restored as it is.
	ucFpXstate        = 0x1 // UC_FP_XSTATE
	ucSigcontextSS    = 0x2 // UC_SIGCONTEXT_SS
	ucStrictRestoreSS = 0x4 // UC_STRICT_RESTORE_SS
	ucFlags           = ucFpXstate | ucSigcontextSS | ucStrictRestoreSS

	// struct _fpx_sw_bytes in the xsave area's software-reserved bytes,
	// and the second magic right after the xsave data
	// (arch/x86/include/uapi/asm/sigcontext.h).
	fpxSwOff          = XstateSwReservedOffset
	fpxSwSize         = 48
	fpxSwExtendedSize = 4
	fpxSwXfeatures    = 8
	fpxSwXstateSize   = 16
	fpXstMagic1       = 0x46505853 // FP_XSTATE_MAGIC1
	fpXstMagic2       = 0x46505845 // FP_XSTATE_MAGIC2
	fpXstMagic2Size   = 4          // FP_XSTATE_MAGIC2_SIZE
)

// SigframeAlign is the alignment a frame needs: the xsave area's (Intel
// SDM vol. 1, 13.4), which frFpstate keeps when the frame itself has it.
const SigframeAlign = 64

// SigframeLen is the length of the frame Sigframe builds around xsave.
func SigframeLen(xsave []byte) int {
	return frFpstate + len(xsave) + fpXstMagic2Size
}

// Sigframe builds the frame that rt_sigreturn(2) turns back into the
// thread as gocr found it: registers, extended state, signal mask. The
// kernel ignores orig_rax on sigreturn (restore_sigcontext sets it to -1),
// so a system call the freeze interrupted is restarted here the way
// arch_do_signal_or_restart would have: back up over the syscall
// instruction, with the call's number again. A call with a restart block
// is restarted from scratch too: sigreturn resets the block
// (restore_sigcontext sets restart_block.fn to do_no_restart_syscall), so
// restart_syscall would fail with EINTR: a thread already in
// restart_syscall must come with the original call's number in orig_rax
// (RestartedCall), and a sleep restarts with what was left of it
// (SleepRemainder).
//
// uc_stack is left zero, which rt_sigreturn's restore_altstack always
// leaves the thread's alternate stack alone for: it passes uc_stack to
// do_sigaltstack and ignores every error but EFAULT
// (kernel/signal.c restore_altstack), and do_sigaltstack refuses a stack
// of size 0, below MINSIGSTKSZ, with ENOMEM before it changes anything;
// a stack equal to the current one is no change either. The parasite
// fills in the real one all the same (parasite/c/parasite.c self_cure).
//
// at is where the frame will be in the thread, SigframeAlign-aligned.
func Sigframe(r *Regs, xsave []byte, mask uint64, at uint64) ([]byte, error) {
	if at%SigframeAlign != 0 {
		return nil, fmt.Errorf("signal frame at %#x is not %d-byte aligned", at, SigframeAlign)
	}
	regs := *r
	if int64(regs.Orig_rax) >= 0 {
		switch unix.Errno(-int64(regs.Rax)) {
		case ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK:
			SleepRemainder(&regs)
			regs.Rax = regs.Orig_rax
			regs.Rip -= syscallInsnLen
		}
	}
	f := make([]byte, SigframeLen(xsave))
	le := binary.LittleEndian
	le.PutUint64(f[frUcFlags:], ucFlags)
	// uc_stack is filled in by the parasite (its current sigaltstack).
	sc := f[frMcontext:]
	for i, v := range []uint64{regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15,
		regs.Rdi, regs.Rsi, regs.Rbp, regs.Rbx, regs.Rdx, regs.Rax, regs.Rcx, regs.Rsp, regs.Rip, regs.Eflags} {
		le.PutUint64(sc[8*i:], v)
	}
	for i, v := range []uint64{regs.Cs, regs.Gs, regs.Fs, regs.Ss} {
		le.PutUint16(sc[scSegments+2*i:], uint16(v))
	}
	le.PutUint64(sc[scFpstate:], at+frFpstate)
	le.PutUint64(f[frSigmask:], mask)

	fp := f[frFpstate:]
	copy(fp, xsave)
	sw := fp[fpxSwOff : fpxSwOff+fpxSwSize]
	clear(sw)
	le.PutUint32(sw, fpXstMagic1)
	le.PutUint32(sw[fpxSwExtendedSize:], uint32(len(xsave)+fpXstMagic2Size))
	le.PutUint64(sw[fpxSwXfeatures:], XCR0(xsave))
	le.PutUint32(sw[fpxSwXstateSize:], uint32(len(xsave)))
	le.PutUint32(fp[len(xsave):], fpXstMagic2)
	return f, nil
}
