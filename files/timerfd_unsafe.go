//go:build linux

package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setTicks sets a timerfd's unread expirations (TFD_IOC_SET_TICKS).
func setTicks(fd int, ticks uint64) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tfdIocSetTicks, uintptr(unsafe.Pointer(&ticks)))
	if e != 0 {
		return e
	}
	return nil
}
