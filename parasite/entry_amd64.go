//go:build linux && amd64

package parasite

import (
	"github.com/gocr/gocr/ptrace"
)

// EFLAGS bits a thread must not carry into the region's code
// (arch/x86/include/uapi/asm/processor-flags.h).
const (
	eflagsTF = 1 << 8  // X86_EFLAGS_TF: trap after every instruction, it would single-step us
	eflagsDF = 1 << 10 // X86_EFLAGS_DF: must be clear on function entry (x86-64 psABI 3.2.1)
)

// noSyscall in orig_rax tells the kernel the thread is in no system call,
// so none is restarted on its way out of the ptrace stop
// (arch/x86/kernel/signal.c arch_do_signal_or_restart).
const noSyscall = ^uint64(0)

// enterBlob sets r, the infected thread's registers, to start the blob at
// its entry with rdi = the control block, on the parasite's own stack
// (parasite/c/parasite.c parasite_entry).
func enterBlob(r *ptrace.Regs, base uint64) {
	enter(r, base)
	r.Rsp = base + stackOff + stackSize
	r.Rdi = base + ctlOff
	r.Rax = 0
}

// enterThreadStub sets r, another thread's registers, to run the
// thread-state stub on the thread's own stack with the arguments
// parasite/c/abi.h gives it: rdi = its struct parasite_thread_state, rsi =
// the done counter, rdx = the lifeline's read end, r8 = its rt_sigframe.
func enterThreadStub(r *ptrace.Regs, base, state, frame uint64, lifeline int64) {
	enter(r, base+threadStubOff)
	r.Rdi = state
	r.Rsi = base + threadsDoneOff
	r.Rdx = uint64(lifeline)
	r.R8 = frame
}

func enter(r *ptrace.Regs, pc uint64) {
	r.Rip = pc
	r.Orig_rax = noSyscall
	r.Eflags &^= eflagsDF | eflagsTF
}
