//go:build linux && amd64

package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ntX86IOPerm is NT_386_IOPERM (include/uapi/linux/elf.h): the regset of a
// thread's I/O permission bitmap, IO_BITMAP_BYTES (65536 bits / 8) long
// (arch/x86/include/asm/io_bitmap.h).
const (
	ntX86IOPerm   = 0x201
	ioBitmapBytes = 65536 / 8
)

// HasIOBitmap reports whether thread tid was given I/O port permissions
// with ioperm(2). The regset exists only in kernels built with
// CONFIG_X86_IOPL_IOPERM, and its read fails with ENXIO for a thread with
// no bitmap (arch/x86/kernel/ptrace.c ioperm_get); without the option no
// thread can have one (ioperm fails with ENOSYS) and the regset lookup
// fails with EINVAL (kernel/ptrace.c ptrace_regset). iopl(2)'s level is
// not in the bitmap (arch/x86/kernel/ioport.c: iopl_emul), and nothing
// shows it.
//
// Precondition: the thread is in a ptrace-stop.
func (t *Tracer) HasIOBitmap(tid int) (bool, error) {
	buf := make([]byte, ioBitmapBytes)
	var err error
	t.Do(func() { _, err = getRegsetBytes(tid, ntX86IOPerm, buf) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.EINVAL):
		return false, nil
	}
	return false, fmt.Errorf("ptrace getregset %d NT_386_IOPERM: %w", tid, err)
}
