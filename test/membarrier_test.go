//go:build linux

package test

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestMembarrier: a process registered for every expedited membarrier
// command the kernel supports (global, private, core serializing, rseq)
// has the same registrations after a restore, and the private commands,
// which fail with EPERM in a process not registered, work (membarrier.c).
// The registrations are the mm's, read by the parasite with
// MEMBARRIER_CMD_GET_REGISTRATIONS and made again by the restorer.
func TestMembarrier(t *testing.T) {
	needsRoot(t)
	// MEMBARRIER_CMD_QUERY (0) lists the commands the kernel has;
	// MEMBARRIER_CMD_GET_REGISTRATIONS is 1<<9 (Linux 6.3,
	// include/uapi/linux/membarrier.h).
	cmds, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, 0, 0, 0)
	if errno != 0 || cmds&(1<<9) == 0 {
		t.Skipf("this kernel has no MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3): query %#x, %v", cmds, errno)
	}
	tg := startTarget(t, "membarrier")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
