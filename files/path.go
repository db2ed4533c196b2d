//go:build linux

package files

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// pathKind is a file reopened by its path: a regular file, a directory or
// a character device (/dev/null, /dev/zero, ...), with its flags, at its
// offset; with O_PATH, any file named by a path (man 2 open). A path under
// /proc/PID/ is opened by the restored process itself (FixupOpen), since
// PID may be one the restore creates.
type pathKind struct{}

func init() { register(pathKind{}) }

func (pathKind) Name() string { return "path" }

func (pathKind) Match(e *Entry) bool {
	if e.Info.Flags&unix.O_PATH != 0 {
		return e.OnPath() && !IsMemfdPath(e.Target)
	}
	switch e.Type() {
	case unix.S_IFREG:
		return e.OnPath() && !IsMemfdPath(e.Target) && !isMqueue(e)
	case unix.S_IFDIR:
		return e.OnPath()
	case unix.S_IFCHR:
		return strings.HasPrefix(e.Target, "/dev/") && e.OnPath() && !isTTY(e.Stat)
	}
	return false
}

func (pathKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	t := gocrpb.PathFd_OTHER
	switch e.Type() {
	case unix.S_IFREG:
		t = gocrpb.PathFd_REGULAR
	case unix.S_IFDIR:
		t = gocrpb.PathFd_DIRECTORY
	case unix.S_IFCHR:
		t = gocrpb.PathFd_CHARDEV
	}
	fd.Kind = &gocrpb.Fd_Path{Path: &gocrpb.PathFd{Type: t, ProcPid: procPid(e.Target)}}
	return nil
}

// procPid is the PID of a path under /proc/PID/, or 0.
func procPid(path string) int32 {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n <= 0 {
		return 0
	}
	return int32(n)
}

// openFlags are the dumped flags minus those that only act when a file
// is created.
func openFlags(fd *gocrpb.Fd) int {
	return int(fd.Flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
}

// Finish opens a /proc/PID/ path inside the restored process, over the
// placeholder Open put at its number.
func (pathKind) Finish(fd *gocrpb.Fd) []Fixup {
	if fd.GetPath().GetProcPid() == 0 || fd.SharedWith >= 0 {
		return nil
	}
	return []Fixup{{Op: FixupOpen, Fd: fd.Fd, Path: fd.File.GetPath(), Flags: uint32(openFlags(fd)), Pos: fd.Pos, Cloexec: fd.Cloexec}}
}

func (pathKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	if fd.File == nil {
		return 0, errors.New("no file in the image")
	}
	if fd.GetPath().GetProcPid() != 0 {
		// A placeholder the process replaces (Finish).
		nfd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		return s.AddFd(nfd, fd.File.Path), nil
	}
	nfd, err := unix.Open(fd.File.Path, openFlags(fd)|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", fd.File.Path, err)
	}
	n := s.AddFd(nfd, fd.File.Path)
	t := fd.GetPath().GetType()
	if fd.Flags&unix.O_PATH != 0 {
		return n, nil // no offset: the file is not open (man 2 open)
	}
	if t == gocrpb.PathFd_REGULAR {
		// A file shorter than at the dump lost data the process has
		// read, written or mapped: resuming at its offset would read or
		// write past what it knew. A longer one may have been appended
		// to meanwhile (a log), as by any writer sharing it.
		var st unix.Stat_t
		if err := unix.Fstat(nfd, &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", fd.File.Path, err)
		}
		if st.Size < fd.File.Size {
			return 0, fmt.Errorf("file %s is %d bytes, shorter than the %d it had at the dump", fd.File.Path, st.Size, fd.File.Size)
		}
	}
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
