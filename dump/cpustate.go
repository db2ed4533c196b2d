//go:build linux && amd64

package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// Special x86 CPU state of a process that the restorer does not set
// again: refused, one line naming it. ioperm(2)'s bitmap is read per
// thread from its regset (checkThreadIOPerm); iopl(2)'s level is the
// thread's iopl_emul (arch/x86/kernel/ioport.c), which nothing shows, and
// needs CAP_SYS_RAWIO. Kernels without CONFIG_X86_IOPL_IOPERM, such as
// Debian's, refuse both calls.

// Kernel constants (arch/x86/include/uapi/asm/prctl.h; the xsave
// feature numbers of arch/x86/include/asm/fpu/types.h).
const (
	archGetXcompPerm = 0x1022
	// xfeatureXtileData is the one xsave feature a process must ask
	// permission for (ARCH_REQ_XCOMP_PERM): Documentation/arch/x86/
	// xstate.rst.
	xfeatureXtileData = 18
)

// checkCPUState refuses a process with state the restorer would not give
// back: tagged addresses (LAM), or permission for dynamically enabled
// xsave features (AMX); an LDT is refused once the parasite's injection
// has read it (checkLDT). xcr0 is the xsave features the kernel enables. A
// signal an injected call dequeues joins fr.sigs, which the caller
// records.
func checkCPUState(t *ptrace.Tracer, fr *frozenProc, status *proc.Status, xcr0 uint64) error {
	// untag_mask is the mm's, all ones until the process enables LAM
	// with ARCH_ENABLE_TAGGED_ADDR (arch/x86/kernel/process_64.c
	// prctl_enable_tagged_addr; shown by arch_proc_pid_thread_features).
	if status.HasUntagMask && status.UntagMask != ^uint64(0) {
		return fmt.Errorf("the process uses tagged addresses (LAM, untag_mask %#x), which gocr cannot restore", status.UntagMask)
	}
	if xcr0&(1<<xfeatureXtileData) != 0 {
		if err := checkXcompPerm(t, fr); err != nil {
			return err
		}
	}
	return nil
}

// checkLDT refuses a process with an LDT, from what the parasite's
// modify_ldt(0, NULL, 1) returned (parasite.State.LDT): 0 without one,
// -EFAULT with one (arch/x86/kernel/ldt.c read_ldt), -ENOSYS on a kernel
// without CONFIG_MODIFY_LDT_SYSCALL, where no process can have one (the
// call is the only way to make an LDT). Asked by the parasite as part of
// its state, it costs no injected call of its own: each is several
// round trips with the frozen thread.
func checkLDT(ret int32) error {
	if ret == 0 || ret == -int32(unix.ENOSYS) {
		return nil
	}
	return fmt.Errorf("the process has an LDT (modify_ldt returned %d), which gocr cannot restore", ret)
}

// checkXcompPerm refuses a process that was given permission for AMX
// tile data (ARCH_REQ_XCOMP_PERM): the permission is the process's
// (arch/x86/kernel/fpu/xstate.c xstate_request_perm) and a restored
// process would get SIGILL at its next tile instruction.
// ARCH_GET_XCOMP_PERM writes the permitted features to memory: the
// injection's scratch bytes below the leader's red zone, which no code of
// the process may rely on (a signal frame would overwrite them too).
func checkXcompPerm(t *ptrace.Tracer, fr *frozenProc) error {
	var perm [8]byte
	ret, err := injectQuery(t, fr, unix.SYS_ARCH_PRCTL, func(scratch uint64) []uint64 {
		return []uint64{archGetXcompPerm, scratch}
	}, func(scratch uint64) error {
		return ptrace.ReadMemory(fr.pid, scratch, perm[:])
	})
	if err == nil {
		err = ptrace.SyscallError(ret)
	}
	if err != nil {
		return fmt.Errorf("read its AMX permission (ARCH_GET_XCOMP_PERM): %w", err)
	}
	// Only tile data is asked for; the rest of the mask is the default
	// (XFEATURE_MASK_USER_DYNAMIC, arch/x86/include/asm/fpu/xstate.h).
	if binary.LittleEndian.Uint64(perm[:])&(1<<xfeatureXtileData) != 0 {
		return errors.New("the process has permission for AMX tile data (ARCH_REQ_XCOMP_PERM), which gocr cannot restore")
	}
	return nil
}

// checkThreadIOPerm refuses a thread given I/O port permissions with
// ioperm(2): the restorer does not give them back, and its next in/out
// instruction would fault.
func checkThreadIOPerm(t *ptrace.Tracer, tid int) error {
	has, err := t.HasIOBitmap(tid)
	if err != nil {
		return err
	}
	if has {
		return errors.New("it has I/O port permissions (ioperm), which gocr cannot restore")
	}
	return nil
}

// checkProtectionKeys refuses memory tagged with a protection key other
// than the default 0 (pkey_mprotect, man 7 pkeys): mappings are restored
// without their keys, and the allocated keys are not read. PKRU itself
// comes back with the xsave area.
func checkProtectionKeys(maps []proc.Mapping) error {
	for _, m := range maps {
		if m.ProtectionKey != 0 {
			return fmt.Errorf("mapping %#x-%#x %s has protection key %d (pkey_mprotect), which gocr cannot restore", m.Start, m.End, m.Path, m.ProtectionKey)
		}
	}
	return nil
}

// injectQuery runs one system call in the frozen leader of fr, through
// a ptrace.Injection (so the leader gets back its own state even should
// gocr die meanwhile), with the arguments args gives for the injection's
// scratch memory; after, if set, reads the result from that memory
// before the leader is put back. Signals it dequeued meanwhile join the
// leader's caught ones, recorded and given back like those of the freeze.
func injectQuery(t *ptrace.Tracer, fr *frozenProc, nr uint64, args func(scratch uint64) []uint64, after func(scratch uint64) error) (int64, error) {
	tid := fr.pid
	keep := func(err error) error {
		var sp *ptrace.SignalsPendingError
		if errors.As(err, &sp) {
			fr.sigs[tid] = append(fr.sigs[tid], sp.Signals...)
			return nil
		}
		return err
	}
	in, err := t.PrepareInjection(tid)
	if err != nil {
		return 0, err
	}
	ret, err := in.Syscall(nr, args(in.Scratch)...)
	err = keep(err)
	if err == nil && after != nil {
		err = after(in.Scratch)
	}
	// Back to where the freeze left it, whatever the call did.
	if ferr := keep(in.Finish()); ferr != nil && err == nil {
		err = ferr
	}
	return ret, err
}
