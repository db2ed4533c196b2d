//go:build linux

package restorer

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestDescribeStatus: a wait status reads as a user would say it, the
// signal named once, by its name.
func TestDescribeStatus(t *testing.T) {
	for _, c := range []struct {
		ws   unix.WaitStatus // wait(2) status word: exit code << 8, or the signal (| 0x80 for a core)
		want string
	}{
		{3 << 8, "exit status 3"},
		{unix.WaitStatus(unix.SIGKILL), "killed by SIGKILL"},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, "killed by SIGSEGV (core dumped)"},
		{unix.WaitStatus(40), "killed by signal 40"},
	} {
		if got := describeStatus(c.ws); got != c.want {
			t.Errorf("describeStatus(%#x) = %q, want %q", uint32(c.ws), got, c.want)
		}
	}
}
