//go:build linux && amd64

package parasite

import (
	"encoding/binary"
	"fmt"

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

	// uc_flags: UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
	// (arch/x86/include/uapi/asm/ucontext.h).
	ucFlags = 0x1 | 0x2 | 0x4

	// struct _fpx_sw_bytes in the xsave area's software-reserved bytes at
	// 464, and the second magic right after the xsave data
	// (arch/x86/include/uapi/asm/sigcontext.h).
	fpxSwOff    = 464
	fpXstMagic1 = 0x46505853
	fpXstMagic2 = 0x46505845
)

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
	if at%64 != 0 {
		return nil, fmt.Errorf("signal frame at %#x is not 64-byte aligned", at)
	}
	if frFpstate+len(xsave)+4 > frameMaxLen {
		return nil, fmt.Errorf("xsave area of %d bytes does not fit the signal frame", len(xsave))
	}
	regs := *r
	if int64(regs.Orig_rax) >= 0 {
		switch -int64(regs.Rax) {
		case 512, 513, 514, 516: // ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK
			regs.Rax = regs.Orig_rax
			regs.Rip -= 2
		}
	}
	f := make([]byte, frFpstate+len(xsave)+4)
	le := binary.LittleEndian
	le.PutUint64(f[frUcFlags:], ucFlags)
	// uc_stack is filled in by the parasite (its current sigaltstack).
	sc := f[frMcontext:]
	for i, v := range []uint64{regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15,
		regs.Rdi, regs.Rsi, regs.Rbp, regs.Rbx, regs.Rdx, regs.Rax, regs.Rcx, regs.Rsp, regs.Rip, regs.Eflags} {
		le.PutUint64(sc[8*i:], v)
	}
	// cs, gs, fs, ss: u16 each at 144.
	le.PutUint16(sc[144:], uint16(regs.Cs))
	le.PutUint16(sc[146:], uint16(regs.Gs))
	le.PutUint16(sc[148:], uint16(regs.Fs))
	le.PutUint16(sc[150:], uint16(regs.Ss))
	le.PutUint64(sc[184:], at+frFpstate) // fpstate
	le.PutUint64(f[frSigmask:], mask)

	fp := f[frFpstate:]
	copy(fp, xsave)
	sw := fp[fpxSwOff:]
	for i := range sw[:48] {
		sw[i] = 0
	}
	le.PutUint32(sw[0:], fpXstMagic1)
	le.PutUint32(sw[4:], uint32(len(xsave)+4)) // extended_size
	le.PutUint64(sw[8:], ptrace.XCR0(xsave))   // xfeatures
	le.PutUint32(sw[16:], uint32(len(xsave)))  // xstate_size
	le.PutUint32(fp[len(xsave):], fpXstMagic2)
	return f, nil
}
