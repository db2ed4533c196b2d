//go:build linux

package dump

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// schedCoreCookie reads thread tid's core scheduling cookie
// (PR_SCHED_CORE_GET writes it to the address in arg5, man 2
// PR_SCHED_CORE). EINVAL: a kernel without CONFIG_SCHED_CORE.
func schedCoreCookie(tid int) (uint64, error) {
	var cookie uint64
	_, _, errno := unix.Syscall6(unix.SYS_PRCTL, prSchedCore, prSchedCoreGet, uintptr(tid), pidtypePid,
		uintptr(unsafe.Pointer(&cookie)), 0)
	if errno != 0 {
		return 0, errno
	}
	return cookie, nil
}
