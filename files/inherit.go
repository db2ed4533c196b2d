//go:build linux

package files

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// inheritKind is stdio joined to something outside the dump (a terminal,
// the shell's pipe): the restore connects its own stdio in its place. No
// fd matches it by itself: Collect gives it to stdio no other kind takes,
// the pipe kind to a pipe whose other end is outside the dump, and the pty
// kind to a slave whose master is outside, when it is the process's
// controlling terminal (a shell job's terminal, at any fd number: that one
// gets the terminal the restore runs on).
type inheritKind struct{}

func init() { register(inheritKind{}) }

func (inheritKind) Name() string { return "inherit" }

func (inheritKind) Match(*Entry) bool { return false }

func (inheritKind) Dump(_ *Entry, fd *gocrpb.Fd) error {
	setInherit(fd)
	return nil
}

// setInherit turns fd into inherited stdio: it has no file of its own to
// share or link.
func setInherit(fd *gocrpb.Fd) {
	fd.Kind = &gocrpb.Fd_Inherit{Inherit: &gocrpb.InheritFd{}}
	fd.File, fd.SharedWith, fd.SharedPid = nil, -1, 0
}

func (inheritKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	var give *os.File
	switch {
	case fd.Fd >= 0 && int(fd.Fd) <= unix.Stderr:
		give = s.Stdio[fd.Fd]
	case fd.GetInherit().GetTerminal():
		give = restoreTerminal(s.Stdio)
		if give == nil {
			return 0, errors.New("it was the job's terminal, and gocr restore runs on none to give it")
		}
	}
	if give == nil {
		return 0, errors.New("nothing to connect it to")
	}
	if len(fd.Locks) > 0 {
		return 0, errors.New("it held locks, but the restore gives it another file")
	}
	// A dup, so closing ours later leaves gocr's stdio alone.
	f, err := dupFd(give.Fd(), fd.Description)
	if err != nil {
		return 0, err
	}
	return s.Add(f), nil
}

// restoreTerminal is the first of the restore's stdio that is a terminal.
func restoreTerminal(stdio [3]*os.File) *os.File {
	for _, f := range stdio {
		if f != nil && IsTerminal(int(f.Fd())) {
			return f
		}
	}
	return nil
}

// IsTerminal tells whether fd is a terminal: TCGETS succeeds only on one
// (man 3 isatty).
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// FileID names a file by its device and inode (stat(2)).
type FileID struct{ Dev, Ino uint64 }

// inheritStdio turns fds 0 to 2 that are reopened by path on one of the
// files of stdio into inherited stdio: the restore gives its own standard
// files in their place, as it does for a terminal or a pipe from outside.
// A file that a process also has open as another fd, or holds a lock on,
// is left to be reopened by its path: given another file in place of its
// stdio, that fd would no longer share the open file with it.
func inheritStdio(tables []*gocrpb.Files, stdio []FileID) {
	if len(stdio) == 0 {
		return
	}
	given := map[FileID]bool{}
	for _, f := range stdio {
		given[f] = true
	}
	of := func(fd *gocrpb.Fd) (FileID, bool) {
		if fd.File == nil || KindName(fd) != "path" {
			return FileID{}, false
		}
		id := FileID{fd.File.Dev, fd.File.Ino}
		return id, given[id]
	}
	keep := map[FileID]bool{}
	for _, table := range tables {
		for _, fd := range table.Fds {
			if id, ok := of(fd); ok && (fd.Fd > int32(unix.Stderr) || len(fd.Locks) > 0) {
				keep[id] = true
			}
		}
	}
	for _, table := range tables {
		for _, fd := range table.Fds {
			if id, ok := of(fd); ok && !keep[id] {
				setInherit(fd)
			}
		}
	}
}
