//go:build linux

package dump

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// getRobustList reads another thread's robust futex list head and length
// (man 2 get_robust_list); allowed to a tracer (PTRACE_MODE_READ).
func getRobustList(tid int) (head, length uint64, err error) {
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid),
		uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&length)))
	if e != 0 {
		return 0, 0, e
	}
	return head, length, nil
}
