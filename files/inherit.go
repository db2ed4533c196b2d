//go:build linux

package files

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// inheritKind is stdio joined to something outside the dump (a terminal,
// the shell's pipe): the restore connects its own stdio in its place. No
// fd matches it by itself: Collect gives it to stdio no other kind takes,
// and the pipe kind to a pipe whose other end is outside the dump.
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
	if fd.Fd < 0 || int(fd.Fd) > unix.Stderr || s.Stdio[fd.Fd] == nil {
		return 0, errors.New("nothing to connect it to")
	}
	if len(fd.Locks) > 0 {
		return 0, errors.New("it held locks, but the restore gives it another file")
	}
	// A dup, so closing ours later leaves gocr's stdio alone.
	f, err := dupFd(s.Stdio[fd.Fd].Fd(), fd.Description)
	if err != nil {
		return 0, err
	}
	return s.Add(f), nil
}
