//go:build linux && amd64

package parasite

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/ptrace"
)

// Layout of the x86-64 rt_sigframe (arch/x86/include/asm/sigframe.h):
// pretcode, then struct ucontext (arch/x86/include/uapi/asm/ucontext.h:
// uc_flags, uc_link, uc_stack, uc_mcontext = struct sigcontext_64 of 256
// bytes, uc_sigmask), then siginfo; the xsave area (fpstate) anywhere
// 64-byte aligned, pointed at by sigcontext.fpstate.
const (
	frUcFlags   = 8
	frUcStack   = 24
	frMcontext  = 48
	frSigmask   = 48 + 256
	frFpstate   = 512
	frameMaxLen = stackSize - 32<<10 // the parasite's stack keeps the rest

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
	fpxSwOff          = ptrace.XstateSwReservedOffset
	fpxSwSize         = 48
	fpxSwExtendedSize = 4
	fpxSwXfeatures    = 8
	fpxSwXstateSize   = 16
	fpXstMagic1       = 0x46505853 // FP_XSTATE_MAGIC1
	fpXstMagic2       = 0x46505845 // FP_XSTATE_MAGIC2
	fpXstMagic2Size   = 4          // FP_XSTATE_MAGIC2_SIZE
)

// xsaveAlign is the alignment the xsave area needs (Intel SDM vol. 1,
// 13.4); frFpstate keeps it when the frame itself has it.
const xsaveAlign = 64

// syscallInsnLen is the length of the x86-64 syscall instruction (0f 05),
// which a restarted system call backs up over.
const syscallInsnLen = 2

// sigframeLen is the length of the frame sigframe builds around xsave.
func sigframeLen(xsave []byte) int {
	return frFpstate + len(xsave) + fpXstMagic2Size
}

// sigframe builds the frame that rt_sigreturn(2) turns back into the
// thread as gocr found it: registers, extended state, signal mask. The
// kernel ignores orig_rax on sigreturn (restore_sigcontext sets it to -1),
// so a system call the freeze interrupted is restarted here the way
// arch_do_signal_or_restart would have: back up over the syscall
// instruction, with the call's number again. A call with a restart block
// is restarted from scratch too: sigreturn resets the block
// (restore_sigcontext sets restart_block.fn to do_no_restart_syscall), so
// restart_syscall would fail with EINTR.
func sigframe(r *ptrace.Regs, xsave []byte, mask uint64, at uint64) ([]byte, error) {
	if at%xsaveAlign != 0 {
		return nil, fmt.Errorf("signal frame at %#x is not %d-byte aligned", at, xsaveAlign)
	}
	if sigframeLen(xsave) > frameMaxLen {
		return nil, fmt.Errorf("xsave area of %d bytes does not fit the signal frame", len(xsave))
	}
	regs := *r
	if int64(regs.Orig_rax) >= 0 {
		switch unix.Errno(-int64(regs.Rax)) {
		case ptrace.ERESTARTSYS, ptrace.ERESTARTNOINTR, ptrace.ERESTARTNOHAND, ptrace.ERESTART_RESTARTBLOCK:
			regs.Rax = regs.Orig_rax
			regs.Rip -= syscallInsnLen
		}
	}
	f := make([]byte, sigframeLen(xsave))
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
	le.PutUint64(sw[fpxSwXfeatures:], ptrace.XCR0(xsave))
	le.PutUint32(sw[fpxSwXstateSize:], uint32(len(xsave)))
	le.PutUint32(fp[len(xsave):], fpXstMagic2)
	return f, nil
}
