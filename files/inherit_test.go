//go:build linux

package files

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

func TestParseInheritFd(t *testing.T) {
	for _, c := range []struct {
		spec string
		fd   int
		key  string
		bad  bool
	}{
		{spec: "fd[3]:pipe:[1234]", fd: 3, key: "pipe:[1234]"},
		{spec: "fd[0]:/var/log/x (deleted)", fd: 0, key: "/var/log/x (deleted)"},
		{spec: "fd[3]", bad: true},
		{spec: "fd[]:pipe:[1]", bad: true},
		{spec: "fd[-1]:pipe:[1]", bad: true},
		{spec: "3:pipe:[1]", bad: true},
		{spec: "fd[3]:", bad: true},
		{spec: "fd[99999999999]:pipe:[1]", bad: true},
	} {
		fd, key, err := ParseInheritFd(c.spec)
		if c.bad {
			if err == nil {
				t.Errorf("ParseInheritFd(%q) = %d, %q; want an error", c.spec, fd, key)
			}
			continue
		}
		if err != nil || fd != c.fd || key != c.key {
			t.Errorf("ParseInheritFd(%q) = %d, %q, %v; want %d, %q", c.spec, fd, key, err, c.fd, c.key)
		}
	}
}

// inheritTable is one process's fd table of inherit fds.
func inheritTable(fds ...*gocrpb.Fd) []*gocrpb.Files {
	return []*gocrpb.Files{{Pid: 10, Fds: fds}}
}

func inheritFd(n int32, flags uint32, key string, mode uint32, mustGive bool) *gocrpb.Fd {
	fd := &gocrpb.Fd{Fd: n, Flags: flags, Description: key, SharedWith: -1}
	setInherit(fd, mode, mustGive)
	return fd
}

// TestCheckInherited: each way a given file can fail to stand for the
// fds of its key is refused naming it, and a fitting one passes.
func TestCheckInherited(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(sv[0]), "fd 7")
	defer sock.Close()
	defer unix.Close(sv[1])
	const key = "pipe:[1]"
	reader := func(n int32, flags uint32, mustGive bool) *gocrpb.Fd {
		return inheritFd(n, flags, key, unix.S_IFIFO, mustGive)
	}
	for _, c := range []struct {
		name   string
		tables []*gocrpb.Files
		given  map[string]*os.File
		want   []string // in the error; none: no error
	}{
		{"stdio not given", inheritTable(reader(0, unix.O_RDONLY, false)), nil, nil},
		{"must give", inheritTable(reader(5, unix.O_RDONLY, true)), nil, []string{"fd 5", key, "--inherit-fd"}},
		{"given", inheritTable(reader(5, unix.O_RDONLY, true), reader(0, unix.O_RDONLY, false)), map[string]*os.File{key: r}, nil},
		{"type", inheritTable(reader(5, unix.O_RDONLY, true)), map[string]*os.File{key: sock}, []string{"fd 5", "fd 7, a socket", "a pipe"}},
		{"access", inheritTable(reader(5, unix.O_RDONLY, true)), map[string]*os.File{key: w}, []string{"fd 5", "for writing", "for reading"}},
		{"two descriptions", inheritTable(reader(0, unix.O_RDONLY, false), reader(5, unix.O_RDONLY|unix.O_NONBLOCK, true)),
			map[string]*os.File{key: r}, []string{"fd 5", "two open file descriptions"}},
		{"unused", inheritTable(reader(0, unix.O_RDONLY, false)), map[string]*os.File{key: r, "pipe:[2]": r}, []string{"pipe:[2]", "names no fd"}},
	} {
		err := CheckInherited(c.tables, c.given)
		switch {
		case len(c.want) == 0 && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case len(c.want) > 0 && err == nil:
			t.Errorf("%s: no error, want one naming %q", c.name, c.want)
		case err != nil:
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: error %q does not name %q", c.name, err, s)
				}
			}
		}
	}
}

// TestStdioNote: the note names stdio that gets the restore's own, and
// leaves out what is given, what must be given, the shell job's terminal
// and fds other than stdio.
func TestStdioNote(t *testing.T) {
	ctty := inheritFd(1, unix.O_RDWR, "/dev/pts/3", unix.S_IFCHR, false)
	ctty.GetInherit().Terminal = true
	tables := inheritTable(
		inheritFd(0, unix.O_RDONLY, "pipe:[1]", unix.S_IFIFO, false),
		ctty,
		inheritFd(2, unix.O_WRONLY, "socket:[2]", unix.S_IFSOCK, true),
		inheritFd(3, unix.O_WRONLY, "pipe:[3]", unix.S_IFIFO, false),
	)
	note := StdioNote(tables, nil)
	if !strings.Contains(note, "pid 10 fd 0 (pipe:[1])") || strings.Contains(note, "fd 1") || strings.Contains(note, "fd 2") || strings.Contains(note, "fd 3") {
		t.Errorf("note %q: want pid 10 fd 0 alone", note)
	}
	if note := StdioNote(tables, map[string]*os.File{"pipe:[1]": os.Stdin}); note != "" {
		t.Errorf("note %q with fd 0's key given, want none", note)
	}
	if note := OutsideNote(tables); !strings.Contains(note, "fd 2 (socket:[2])") || strings.Contains(note, "fd 0") {
		t.Errorf("dump note %q: want fd 2 alone", note)
	}
}

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
