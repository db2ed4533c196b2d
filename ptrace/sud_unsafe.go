//go:build linux

package ptrace

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sudConfig is struct ptrace_sud_config (include/uapi/linux/ptrace.h),
// what PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG (Linux 6.11) reads.
type sudConfig struct {
	mode, selector, offset, len uint64
}

// SyscallUserDispatch returns the mode of thread tid's syscall user
// dispatch (PR_SYS_DISPATCH_OFF, 0, when off; man 2
// PR_SET_SYSCALL_USER_DISPATCH). A kernel older than 6.11 cannot tell:
// it fails with EIO, an unknown request (kernel/ptrace.c).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) SyscallUserDispatch(tid int) (uint64, error) {
	var (
		c   sudConfig
		err error
	)
	// addr is the size of the caller's struct (kernel/entry/syscall_user_dispatch.c
	// syscall_user_dispatch_get_config).
	t.Do(func() { err = rawPtrace(unix.PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG, tid, unsafe.Sizeof(c), unsafe.Pointer(&c)) })
	if err != nil {
		return 0, fmt.Errorf("ptrace get_syscall_user_dispatch_config %d: %w", tid, err)
	}
	return c.mode, nil
}
