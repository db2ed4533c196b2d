//go:build linux

package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// getsockoptLen calls getsockopt(2) with optlen l, which may differ from
// len(buf) (SO_GET_FILTER counts in instructions) or be 0 with no buffer
// (to ask a size without reading, TCP_SAVED_SYN), and returns the optlen
// the kernel wrote back.
func getsockoptLen(h, level, opt int, buf []byte, l uint32) (uint32, error) {
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(h), uintptr(level), uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return l, e
	}
	return l, nil
}
