//go:build linux

package childfds

import (
	"testing"

	"golang.org/x/sys/unix"
)

// fdFlags returns fd's descriptor flags (F_GETFD).
func fdFlags(t *testing.T, fd int) int {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("F_GETFD on fd %d: %v", fd, err)
	}
	return flags
}

// TestCloseOnExecInherited stands in for an inherited fd with one opened
// without O_CLOEXEC, as a parent that did not ask for it leaves one (Go's
// os package would add O_CLOEXEC; x/sys/unix.Open passes the flags as
// given).
func TestCloseOnExecInherited(t *testing.T) {
	inherited, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open /dev/null: %v", err)
	}
	t.Cleanup(func() { unix.Close(inherited) })
	if fdFlags(t, inherited)&unix.FD_CLOEXEC != 0 {
		t.Fatalf("fd %d opened without O_CLOEXEC is close-on-exec already; the test proves nothing", inherited)
	}
	stdio := make([]int, unix.Stderr+1)
	for fd := range stdio {
		stdio[fd] = fdFlags(t, fd)
	}

	if err := CloseOnExecInherited(); err != nil {
		t.Fatal(err)
	}

	if fdFlags(t, inherited)&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d is not close-on-exec", inherited)
	}
	for fd, want := range stdio {
		if got := fdFlags(t, fd); got != want {
			t.Errorf("fd %d flags changed from %#x to %#x; stdio must reach a child", fd, want, got)
		}
	}
}
