//go:build linux

// Package sharedword reads, writes and waits on 32-bit words in memory
// gocr shares with another process (the parasite's control block, the
// restore plan's state words). The other side uses C11 atomics and shared
// futexes, so gocr must use atomics and the shared (non-private) futex ops:
// the word is in a MAP_SHARED memfd mapping, keyed by inode and offset in
// both processes (man 2 futex, "FUTEX_PRIVATE_FLAG").
package sharedword

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func word(b []byte, off int) *uint32 {
	_ = b[off+3] // bounds: the whole word lies in b
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// Load reads the word at b[off:].
func Load(b []byte, off int) uint32 { return atomic.LoadUint32(word(b, off)) }

// Store writes the word at b[off:].
func Store(b []byte, off int, v uint32) { atomic.StoreUint32(word(b, off), v) }

// Wait sleeps while the word at b[off:] is val, at most timeout (FUTEX_WAIT).
func Wait(b []byte, off int, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word(b, off))), 0 /* FUTEX_WAIT */, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}
