//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrIA32 is GetRegs's error for a thread running 32-bit code: the
// kernel answers NT_PRSTATUS in the layout of the mode the thread runs
// in, struct user_regs_struct32 for a 32-bit one (arch/x86/kernel/ptrace.c
// task_user_regset_view, user_64bit_mode; arch/x86/include/asm/user32.h),
// whatever the tracer's.
var ErrIA32 = errors.New("the thread runs 32-bit (ia32) code")

// regs32Size is sizeof(struct user_regs_struct32): 17 32-bit registers.
const regs32Size = 17 * 4

// regsSizeError is the error for an NT_PRSTATUS answer of n bytes where
// regsSize were wanted.
func regsSizeError(n int) error {
	if n == regs32Size {
		return ErrIA32
	}
	return &sizeError{what: "NT_PRSTATUS", want: regsSize, got: n}
}

// GetRegs reads the general-purpose registers (PTRACE_GETREGSET NT_PRSTATUS).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) GetRegs(tid int) (Regs, error) {
	var (
		r   Regs
		err error
	)
	t.Do(func() { r, err = getRegs(tid) })
	if err != nil {
		return Regs{}, fmt.Errorf("ptrace getregset %d NT_PRSTATUS: %w", tid, err)
	}
	return r, nil
}

// SetRegs writes the general-purpose registers (PTRACE_SETREGSET NT_PRSTATUS).
// orig_rax is written too, which is what decides whether the kernel's
// syscall-restart logic applies on resume (see ReturnToEventStop).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) SetRegs(tid int, r *Regs) error {
	var err error
	t.Do(func() { err = setRegs(tid, r) })
	if err != nil {
		return fmt.Errorf("ptrace setregset %d NT_PRSTATUS: %w", tid, err)
	}
	return nil
}

// xstateBufSize bounds the XSAVE area. The standard (non-compacted) format
// the kernel uses for ptrace is at most the CPUID.(EAX=0DH,ECX=0):EBX size of
// the enabled features, about 2.7 KiB with AVX-512 and 11 KiB with AMX
// tiles; 16 KiB covers both without CPUID (which Go cannot issue without
// assembly). The kernel trims iov_len to the real size
// (arch/x86/kernel/fpu/regset.c xstateregs_get, fpu_user_cfg.max_size).
const xstateBufSize = 16 << 10

// Offsets in the standard-format XSAVE image (Intel SDM vol. 1, 13.4;
// arch/x86/include/asm/user.h struct user_xstateregs).
const (
	// XstateLegacySize is the FXSAVE-compatible legacy region.
	XstateLegacySize = 512
	// XstateXMMOffset is xmm0 in the legacy region (16 bytes per register).
	XstateXMMOffset = 160
	// XstateSwReservedOffset is i387.sw_reserved, where the kernel's ptrace
	// image stores xstate_fx_sw_bytes; word 0 (USER_XSTATE_XCR0_WORD) is
	// XCR0 (arch/x86/include/asm/user.h, arch/x86/kernel/fpu/xstate.c
	// update_regset_xstate_info).
	XstateSwReservedOffset = 464
	// XstateHeaderOffset is the XSAVE header; its first u64 is xstate_bv.
	XstateHeaderOffset = 512
	// XstateExtendedOffset is where the extended components start
	// (component 2, AVX ymm upper halves, in the standard format).
	XstateExtendedOffset = 576
)

// Xstate feature bits in XCR0 and xstate_bv (arch/x86/include/asm/fpu/types.h
// enum xfeature).
const (
	XfeatureFP  = 1 << 0
	XfeatureSSE = 1 << 1
	XfeatureYMM = 1 << 2
)

// GetXstate returns the tracee's XSAVE image in standard format
// (PTRACE_GETREGSET NT_X86_XSTATE), exactly as long as the kernel's image.
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) GetXstate(tid int) ([]byte, error) {
	var (
		xs  []byte
		err error
	)
	t.Do(func() { xs, err = getXstate(tid) })
	return xs, err
}

// Precondition: called on the tracer thread; see GetXstate.
func getXstate(tid int) ([]byte, error) {
	buf := make([]byte, xstateBufSize)
	n, err := getRegsetBytes(tid, unix.NT_X86_XSTATE, buf)
	if err != nil {
		return nil, fmt.Errorf("ptrace getregset %d NT_X86_XSTATE: %w", tid, err)
	}
	if n < XstateExtendedOffset {
		return nil, fmt.Errorf("ptrace getregset %d NT_X86_XSTATE: %w", tid, &sizeError{what: "xstate", want: XstateExtendedOffset, got: n})
	}
	return buf[:n:n], nil
}

// Snapshot is what a dump reads of every stopped thread through ptrace.
type Snapshot struct {
	Regs    Regs
	Xstate  []byte
	Sigmask uint64
	Pending [][SiginfoSize]byte // the thread's private queue, in order
	Rseq    RseqConfig
}

// Snapshot reads a thread's registers, xstate, blocked mask, private
// pending signals and rseq registration in one round trip to the tracer
// thread (with thousands of threads the round trips, not the calls, were
// the cost).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) Snapshot(tid int) (Snapshot, error) {
	var (
		s   Snapshot
		err error
	)
	t.Do(func() {
		if s.Regs, err = getRegs(tid); err != nil {
			err = fmt.Errorf("ptrace getregset %d NT_PRSTATUS: %w", tid, err)
			return
		}
		if s.Xstate, err = getXstate(tid); err != nil {
			return
		}
		if s.Sigmask, err = getSigmask(tid); err != nil {
			err = fmt.Errorf("ptrace getsigmask %d: %w", tid, err)
			return
		}
		if s.Pending, err = peekAll(tid, false); err != nil {
			return
		}
		s.Rseq, err = rseqConfig(tid)
	})
	return s, err
}

// SetXstate writes an XSAVE image back (PTRACE_SETREGSET NT_X86_XSTATE). The
// kernel wants exactly the size GetXstate returned (EFAULT otherwise) and
// refuses with EINVAL an xstate_bv naming features outside XCR0 or nonzero
// reserved header bytes (arch/x86/kernel/fpu/regset.c xstateregs_set,
// xstate.c copy_uabi_to_xstate / validate_user_xstate_header).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) SetXstate(tid int, xs []byte) error {
	var err error
	t.Do(func() { err = setRegsetBytes(tid, unix.NT_X86_XSTATE, xs) })
	if err != nil {
		return fmt.Errorf("ptrace setregset %d NT_X86_XSTATE (%d bytes): %w", tid, len(xs), err)
	}
	return nil
}

// XstateBV returns xstate_bv, the components present in the image (the rest
// are in their init state). It returns 0 for an image too short to hold a
// header.
func XstateBV(xs []byte) uint64 {
	if len(xs) < XstateHeaderOffset+8 {
		return 0
	}
	return binary.LittleEndian.Uint64(xs[XstateHeaderOffset:])
}

// XCR0 returns the feature mask the kernel enabled for user space, which it
// stores in the sw_reserved bytes of every ptrace xstate image. An image
// restored on a machine whose XCR0 lacks any of its xstate_bv bits cannot be
// loaded there.
func XCR0(xs []byte) uint64 {
	if len(xs) < XstateSwReservedOffset+8 {
		return 0
	}
	return binary.LittleEndian.Uint64(xs[XstateSwReservedOffset:])
}
