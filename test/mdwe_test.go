//go:build linux

package test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMdwe: a process under memory-deny-write-execute (PR_SET_MDWE) is
// dumped, which the parasite's region must allow, and restored with the
// same flags, set after every mapping the restorer makes: each of three
// processes with its own, one of them without (mdwe.c). /proc shows
// nothing of it, so the targets check PR_GET_MDWE and the kernel's
// refusal of a writable and executable mapping themselves.
func TestMdwe(t *testing.T) {
	needsRoot(t)
	// PR_GET_MDWE: EINVAL on a kernel before 6.3 (kernel/sys.c).
	if _, err := unix.PrctlRetInt(unix.PR_GET_MDWE, 0, 0, 0, 0); errors.Is(err, unix.EINVAL) {
		t.Skip("this kernel has no PR_SET_MDWE (Linux 6.3)")
	}
	tg := startTarget(t, "mdwe")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
