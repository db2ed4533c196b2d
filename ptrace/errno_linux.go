//go:build linux

package ptrace

import "golang.org/x/sys/unix"

// Kernel-internal restart codes a tracee interrupted in a syscall shows in
// rax at a ptrace-stop (include/linux/errno.h). They never reach user space
// when the tracee resumes from a signal or event stop: the restart logic
// turns them into a re-executed syscall or EINTR (arch/x86/kernel/signal.c).
const (
	ERESTARTSYS           = unix.Errno(512) // restart unless a handler without SA_RESTART ran
	ERESTARTNOINTR        = unix.Errno(513) // always restart
	ERESTARTNOHAND        = unix.Errno(514) // restart only if no handler ran
	ERESTART_RESTARTBLOCK = unix.Errno(516) // restart via restart_syscall(2) and current->restart_block
)
