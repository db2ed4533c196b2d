//go:build linux

package files

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// pathKind is a file reopened by its path: a regular file, a directory or
// a character device (/dev/null, /dev/zero, ...), with its flags, at its
// offset.
type pathKind struct{}

func init() { register(pathKind{}) }

func (pathKind) Name() string { return "path" }

func (pathKind) Match(e *Entry) bool {
	switch e.Type() {
	case unix.S_IFREG:
		return e.OnPath() && !IsMemfdPath(e.Target)
	case unix.S_IFDIR:
		return e.OnPath()
	case unix.S_IFCHR:
		return strings.HasPrefix(e.Target, "/dev/") && e.OnPath() && !isTTY(e.Stat)
	}
	return false
}

func (pathKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	t := gocrpb.PathFd_REGULAR
	switch e.Type() {
	case unix.S_IFDIR:
		t = gocrpb.PathFd_DIRECTORY
	case unix.S_IFCHR:
		t = gocrpb.PathFd_CHARDEV
	}
	fd.Kind = &gocrpb.Fd_Path{Path: &gocrpb.PathFd{Type: t}}
	return nil
}

func (pathKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	if fd.File == nil {
		return 0, errors.New("no file in the image")
	}
	// Flags as dumped, minus those that only act at creation.
	flags := int(fd.Flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
	nfd, err := unix.Open(fd.File.Path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", fd.File.Path, err)
	}
	n := s.AddFd(nfd, fd.File.Path)
	t := fd.GetPath().GetType()
	if t == gocrpb.PathFd_REGULAR || (t == gocrpb.PathFd_DIRECTORY && fd.Pos != 0) {
		if _, err := unix.Seek(nfd, fd.Pos, unix.SEEK_SET); err != nil {
			return 0, fmt.Errorf("seek %s to %d: %w", fd.File.Path, fd.Pos, err)
		}
	}
	return n, nil
}

// isTTY: terminal majors are 4 (tty), 5 (/dev/tty, ptmx) and 136-143
// (Unix98 pts), Documentation/admin-guide/devices.txt.
func isTTY(st unix.Stat_t) bool {
	major := unix.Major(st.Rdev)
	return major == 4 || major == 5 || (major >= 136 && major <= 143)
}
