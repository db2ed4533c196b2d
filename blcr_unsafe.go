//go:build linux

package main

import (
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as the rt_sigaction system call
// takes it on x86-64 (arch/x86/include/uapi/asm/signal.h: handler, flags,
// restorer, mask).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// dieLike ends gocr killed by sig, as the job it waited for was
// (cr_restart(1)): whoever waits for cr_restart sees the same end. The Go
// runtime catches every signal and ignores most of those not asked for
// (os/signal, "Default behavior of signals in Go programs"), so the
// default action is set back with rt_sigaction(2) itself. gocr dumps no
// core of its own: the job's was dumped already, if any.
func dieLike(sig unix.Signal) {
	// The mask and the signal are of this thread.
	runtime.LockOSThread()
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	dfl := kernelSigaction{} // SIG_DFL is 0 (include/uapi/asm-generic/signal-defs.h)
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(sig) - 1)
	unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	unix.Tgkill(os.Getpid(), unix.Gettid(), sig)
	time.Sleep(time.Second)
	os.Exit(128 + int(sig))
}
