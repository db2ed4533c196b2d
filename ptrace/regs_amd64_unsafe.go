//go:build linux && amd64

package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Regs is the x86-64 general-purpose register file, struct user_regs_struct
// (arch/x86/include/asm/user_64.h), the NT_PRSTATUS regset.
type Regs = unix.PtraceRegs

// regsSize is sizeof(struct user_regs_struct): 27 u64 fields.
const regsSize = int(unsafe.Sizeof(Regs{}))

func getRegs(tid int) (Regs, error) {
	var r Regs
	n, err := getRegset(tid, unix.NT_PRSTATUS, unsafe.Pointer(&r), regsSize)
	if err != nil {
		return Regs{}, err
	}
	if n != regsSize {
		return Regs{}, regsSizeError(n)
	}
	return r, nil
}

func setRegs(tid int, r *Regs) error {
	return setRegset(tid, unix.NT_PRSTATUS, unsafe.Pointer(r), regsSize)
}
