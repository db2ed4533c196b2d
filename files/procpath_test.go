//go:build linux

package files

import (
	"strings"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestProcOwner: the /proc directory a file belongs to, a process's or,
// under task/TID/, a thread's, and its name in messages.
func TestProcOwner(t *testing.T) {
	for _, c := range []struct{ path, owner, name string }{
		{"/proc/12/stat", "/proc/12", "process 12"},
		{"/proc/12", "/proc/12", "process 12"},
		{"/proc/12/task", "/proc/12", "process 12"},
		{"/proc/12/task/13", "/proc/12/task/13", "thread 13 of process 12"},
		{"/proc/12/task/13/status", "/proc/12/task/13", "thread 13 of process 12"},
		{"/proc/12/net/tcp", "/proc/12", "process 12"},
	} {
		if got := procOwner(c.path); got != c.owner {
			t.Errorf("procOwner(%q) = %q, want %q", c.path, got, c.owner)
		}
		if got := ownerName(procOwner(c.path)); got != c.name {
			t.Errorf("ownerName(procOwner(%q)) = %q, want %q", c.path, got, c.name)
		}
	}
}

// TestCheckOutsideProcRefuses: an image without the start time, or a
// restore on another boot, never reopens a /proc file of a process
// outside the dump: neither can tell that PID is still that process.
func TestCheckOutsideProcRefuses(t *testing.T) {
	fd := func(start uint64) *gocrpb.Fd {
		return &gocrpb.Fd{Fd: 5, File: &gocrpb.FileRef{Path: "/proc/1/status"},
			Kind: &gocrpb.Fd_Path{Path: &gocrpb.PathFd{ProcPid: 1, ProcStartTime: start}}}
	}
	for _, c := range []struct {
		fd       *gocrpb.Fd
		sameBoot bool
		want     string
	}{
		{fd(0), true, "older gocr"},
		{fd(1), false, "another boot"},
		{fd(1 << 60), true, "another process has its PID now"},
	} {
		err := CheckOutsideProc(c.fd, c.sameBoot)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "fd 5 is /proc/1/status") {
			t.Errorf("CheckOutsideProc(start %d, same boot %v) = %v, want an error saying %q", c.fd.GetPath().GetProcStartTime(), c.sameBoot, err, c.want)
		}
	}
}
