//go:build linux

package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// getsockoptBytes reads a socket option of a struct into buf and returns
// the length the kernel wrote (getsockopt(2)): golang.org/x/sys/unix
// reads structs it knows only, and neither struct tcp_repair_window nor
// the window scale bits of struct tcp_info.
func getsockoptBytes(h, level, opt int, buf []byte) (int, error) {
	l := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(h), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}
