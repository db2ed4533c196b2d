//go:build linux

package files

import (
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestLinkInheritsStdio: fds 0 to 2 reopened by path on a file of
// LinkOptions.Stdio become inherited stdio, in every process; a file that
// is also open as another fd, or locked, stays reopened by its path, as
// does a file not given and a stdio fd of another kind.
func TestLinkInheritsStdio(t *testing.T) {
	path := func(fd int32, dev, ino uint64) *gocrpb.Fd {
		return &gocrpb.Fd{Fd: fd, SharedWith: -1, File: &gocrpb.FileRef{Path: "/out", Dev: dev, Ino: ino},
			Kind: &gocrpb.Fd_Path{Path: &gocrpb.PathFd{Type: gocrpb.PathFd_REGULAR}}}
	}
	locked := path(2, 1, 30)
	locked.Locks = []*gocrpb.FileLock{{}}
	other := &gocrpb.Fd{Fd: 0, SharedWith: -1, File: &gocrpb.FileRef{Dev: 1, Ino: 10},
		Kind: &gocrpb.Fd_Eventfd{Eventfd: &gocrpb.EventfdFd{}}}
	parent := &gocrpb.Files{Pid: 1, Fds: []*gocrpb.Fd{other, path(1, 1, 20), path(2, 1, 20), path(5, 1, 21)}}
	child := &gocrpb.Files{Pid: 2, Fds: []*gocrpb.Fd{path(0, 1, 21), path(1, 1, 20), locked, path(3, 1, 40)}}
	stdio := []FileID{{1, 10}, {1, 20}, {1, 21}, {1, 30}}
	if err := Link([]*gocrpb.Files{parent, child}, LinkOptions{Stdio: stdio}); err != nil {
		t.Fatal(err)
	}
	want := map[*gocrpb.Fd]string{
		parent.Fds[0]: "eventfd", // another kind
		parent.Fds[1]: "inherit", // on a given file
		parent.Fds[2]: "inherit",
		parent.Fds[3]: "path", // fd 5: not stdio, and keeps its file from being inherited
		child.Fds[0]:  "path",
		child.Fds[1]:  "inherit",
		child.Fds[2]:  "path", // locked
		child.Fds[3]:  "path", // not given
	}
	for _, table := range []*gocrpb.Files{parent, child} {
		for _, fd := range table.Fds {
			if got := KindName(fd); got != want[fd] {
				t.Errorf("pid %d fd %d: kind %s, want %s", table.Pid, fd.Fd, got, want[fd])
			}
		}
	}
}
