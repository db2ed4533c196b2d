//go:build linux

package callbacks

import (
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wake wakes every thread waiting on the word at b[off:] (FUTEX_WAKE,
// shared: libgocr waits on it in its own mapping of the page, man 2 futex).
func wake(b []byte, off int) {
	_ = b[off+3] // bounds: the whole word lies in b
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&b[off])), 1 /* FUTEX_WAKE */, math.MaxInt32, 0, 0, 0)
}
