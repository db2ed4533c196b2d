//go:build linux

package parasite

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The control words live in memory shared with the target; the parasite
// reads and writes them with C11 atomics, so gocr must use atomics too.

func word(b []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[off]))
}

func loadUint32(b []byte, off int) uint32 { return atomic.LoadUint32(word(b, off)) }

func storeUint32(b []byte, off int, v uint32) { atomic.StoreUint32(word(b, off), v) }

// futexWait uses the shared (non-private) futex op: the word is in a
// MAP_SHARED memfd mapping, keyed by inode and offset across both
// processes (man 2 futex, "FUTEX_PRIVATE_FLAG").
func futexWait(b []byte, off int, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word(b, off))), 0 /* FUTEX_WAIT */, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}
