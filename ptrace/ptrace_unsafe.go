//go:build linux

package ptrace

// Every unsafe conversion of the package lives here (and in
// regs_amd64_unsafe.go): the raw ptrace(2) entry points that take a pointer,
// and process_vm_readv/writev. The pointer-to-uintptr conversions appear in
// the Syscall6 call expressions themselves, which is what keeps the pointed-to
// memory alive and unmoved for the duration of the call (package unsafe, rule 4).

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawPtrace issues a ptrace request whose data is a pointer and whose addr
// is an integer (a regset note, a size).
//
// Precondition: called on the tracer thread.
func rawPtrace(req int, tid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// rawPtracePtrs issues a ptrace request whose addr and data are both
// pointers, and returns the raw result (PTRACE_PEEKSIGINFO returns a count).
//
// Precondition: called on the tracer thread.
func rawPtracePtrs(req int, tid int, addr, data unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), uintptr(addr), uintptr(data), 0, 0)
	if e != 0 {
		return r, e
	}
	return r, nil
}

// ptraceInt issues a ptrace request whose addr and data are plain integers
// (PTRACE_SEIZE options, a signal number for PTRACE_CONT/DETACH/SYSCALL).
//
// Precondition: called on the tracer thread.
func ptraceInt(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// getRegset reads regset note into [p, p+size) and returns the length the
// kernel filled in: PTRACE_GETREGSET updates iov_len to the regset's real
// size (man 2 ptrace, PTRACE_GETREGSET).
//
// Precondition: called on the tracer thread; the tracee is in a ptrace-stop.
func getRegset(tid int, note int, p unsafe.Pointer, size int) (int, error) {
	iov := unix.Iovec{Base: (*byte)(p)}
	iov.SetLen(size)
	if err := rawPtrace(unix.PTRACE_GETREGSET, tid, uintptr(note), unsafe.Pointer(&iov)); err != nil {
		return 0, err
	}
	return int(iov.Len), nil
}

// setRegset writes [p, p+size) to regset note.
//
// Precondition: called on the tracer thread; the tracee is in a ptrace-stop.
func setRegset(tid int, note int, p unsafe.Pointer, size int) error {
	iov := unix.Iovec{Base: (*byte)(p)}
	iov.SetLen(size)
	return rawPtrace(unix.PTRACE_SETREGSET, tid, uintptr(note), unsafe.Pointer(&iov))
}

func getRegsetBytes(tid int, note int, buf []byte) (int, error) {
	return getRegset(tid, note, unsafe.Pointer(unsafe.SliceData(buf)), len(buf))
}

func setRegsetBytes(tid int, note int, buf []byte) error {
	return setRegset(tid, note, unsafe.Pointer(unsafe.SliceData(buf)), len(buf))
}

// getSigmask and setSigmask pass sizeof(sigset_t) == 8 as addr; the kernel
// refuses any other size with EINVAL (kernel/ptrace.c, PTRACE_GETSIGMASK).
func getSigmask(tid int) (uint64, error) {
	var m uint64
	err := rawPtrace(unix.PTRACE_GETSIGMASK, tid, 8, unsafe.Pointer(&m))
	return m, err
}

func setSigmask(tid int, m uint64) error {
	return rawPtrace(unix.PTRACE_SETSIGMASK, tid, 8, unsafe.Pointer(&m))
}

// getSiginfo copies the tracee's last_siginfo; the kernel writes the full
// 128-byte user siginfo_t (kernel/ptrace.c ptrace_getsiginfo + copy_siginfo_to_user).
func getSiginfo(tid int) ([SiginfoSize]byte, error) {
	var si [SiginfoSize]byte
	err := rawPtrace(unix.PTRACE_GETSIGINFO, tid, 0, unsafe.Pointer(&si))
	return si, err
}

// peeksiginfoArgs is struct ptrace_peeksiginfo_args
// (include/uapi/linux/ptrace.h): __u64 off; __u32 flags; __s32 nr.
type peeksiginfoArgs struct {
	off   uint64
	flags uint32
	nr    int32
}

// peekSiginfo copies up to len(buf) queued siginfos starting at queue
// position off and returns how many it copied; 0 means the queue ends
// before off (kernel/ptrace.c ptrace_peek_siginfo).
func peekSiginfo(tid int, off uint64, flags uint32, buf [][SiginfoSize]byte) (int, error) {
	args := peeksiginfoArgs{off: off, flags: flags, nr: int32(len(buf))}
	n, err := rawPtracePtrs(unix.PTRACE_PEEKSIGINFO, tid, unsafe.Pointer(&args), unsafe.Pointer(unsafe.SliceData(buf)))
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// rseqConfiguration is struct ptrace_rseq_configuration
// (include/uapi/linux/ptrace.h): __u64 rseq_abi_pointer; __u32 rseq_abi_size;
// __u32 signature; __u32 flags; __u32 pad.
type rseqConfiguration struct {
	abiPointer uint64
	abiSize    uint32
	signature  uint32
	flags      uint32
	pad        uint32
}

func getRseqConfig(tid int) (rseqConfiguration, error) {
	var c rseqConfiguration
	// addr is the size of the caller's buffer; the kernel copies
	// min(addr, sizeof(conf)) and returns that size (kernel/ptrace.c
	// ptrace_get_rseq_configuration).
	err := rawPtrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(c), unsafe.Pointer(&c))
	return c, err
}

// ReadMemory fills buf from the address space of pid at addr with
// process_vm_readv(2). It needs no ptrace stop and no tracer thread; the
// caller needs PTRACE_MODE_ATTACH_REALCREDS over pid (man 2 process_vm_readv).
// A short read (part of the range unmapped) is an error wrapping unix.EFAULT.
func ReadMemory(pid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: unsafe.SliceData(buf)}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return &memoryError{op: "read", pid: pid, addr: addr, len: len(buf), err: err}
	}
	if n != len(buf) {
		return &memoryError{op: "read", pid: pid, addr: addr, len: len(buf), done: n, err: unix.EFAULT}
	}
	return nil
}

// WriteMemory copies buf into the address space of pid at addr with
// process_vm_writev(2). Unlike PTRACE_POKEDATA it honours page protections:
// read-only mappings (code, the vDSO) fail with EFAULT.
func WriteMemory(pid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: unsafe.SliceData(buf)}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		return &memoryError{op: "write", pid: pid, addr: addr, len: len(buf), err: err}
	}
	if n != len(buf) {
		return &memoryError{op: "write", pid: pid, addr: addr, len: len(buf), done: n, err: unix.EFAULT}
	}
	return nil
}

// syscallStopOp returns, at a syscall-stop, whether it is a syscall's
// entry or its exit (PTRACE_SYSCALL_INFO_ENTRY 1, _EXIT 2) and, at an
// entry, the call's number: struct ptrace_syscall_info's op is its first
// byte and entry.nr the word at offset 24 (include/uapi/linux/ptrace.h,
// PTRACE_GET_SYSCALL_INFO, Linux 5.3).
func syscallStopOp(tid int) (op uint8, nr uint64, err error) {
	var info [88]byte
	if err := rawPtrace(unix.PTRACE_GET_SYSCALL_INFO, tid, uintptr(len(info)), unsafe.Pointer(&info)); err != nil {
		return 0, 0, err
	}
	nr = uint64(info[24]) | uint64(info[25])<<8 | uint64(info[26])<<16 | uint64(info[27])<<24 |
		uint64(info[28])<<32 | uint64(info[29])<<40 | uint64(info[30])<<48 | uint64(info[31])<<56
	return info[0], nr, nil
}

// sigchldAction is rt_sigaction(SIGCHLD, act, old) (man 2 rt_sigaction;
// sigsetsize 8, the kernel's sigset_t on x86-64).
func sigchldAction(act, old *kernelSigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
