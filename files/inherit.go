//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// inheritKind is an fd joined to something outside the dump (a terminal,
// the shell's pipe, a logger's socket). It is recorded with a key naming
// that file as /proc/PID/fd shows it ("pipe:[INODE]", "socket:[INODE]", a
// path), and the restore gives the file `--inherit-fd fd[N]:KEY` names,
// gocr restore's own fd N, as CRIU does. Without one, stdio on a pipe or
// a pty gets gocr restore's own stdio, which the restore says in one line,
// another fd on a pipe a pipe whose other end is closed, said likewise;
// anything else (must_give) is refused. No fd matches this kind by
// itself: Collect gives it to stdio no other kind takes, the pipe kind to
// a pipe whose other end is outside the dump (pipeoutside.go), the unix socket kind to
// stdio on a socket it would not restore, and the pty kind to a slave
// whose master is outside, when it is the process's controlling terminal
// (a shell job's terminal, at any fd number: that one gets the terminal
// the restore runs on).
type inheritKind struct{}

func init() { register(inheritKind{}) }

func (inheritKind) Name() string { return "inherit" }

func (inheritKind) Match(*Entry) bool { return false }

func (inheritKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	setInherit(fd, e.Type(), true)
	return nil
}

// setInherit turns fd into one joined outside the dump, of file type mode
// (S_IFMT): it has no file of its own to share or link. mustGive: gocr
// restore's own stdio cannot stand in for it.
func setInherit(fd *gocrpb.Fd, mode uint32, mustGive bool) {
	fd.Kind = &gocrpb.Fd_Inherit{Inherit: &gocrpb.InheritFd{Key: fd.Description, Mode: mode, MustGive: mustGive}}
	fd.File, fd.SharedWith, fd.SharedPid = nil, -1, 0
}

// inheritKey is the key an inherited fd is given by: an image from before
// keys were recorded has only the description, which is the same text.
func inheritKey(fd *gocrpb.Fd) string {
	if k := fd.GetInherit().GetKey(); k != "" {
		return k
	}
	return fd.Description
}

func (inheritKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	if len(fd.Locks) > 0 {
		return 0, errors.New("it held locks, but the restore gives it another file")
	}
	if g := s.Given[inheritKey(fd)]; g != nil {
		return giveInherited(s, fd, g)
	}
	var give *os.File
	switch in := fd.GetInherit(); {
	case in.GetMustGive():
		return 0, fmt.Errorf("%s is outside the dump: give it with --inherit-fd fd[N]:%s", inheritKey(fd), inheritKey(fd))
	case fd.Fd >= 0 && int(fd.Fd) <= unix.Stderr:
		give = s.Stdio[fd.Fd]
	case in.LikeStdio != nil && in.GetLikeStdio() <= 2:
		give = s.Stdio[in.GetLikeStdio()]
	case in.GetClosedPipe() != nil:
		return openClosedPipe(s, fd)
	case in.GetTerminal():
		give = restoreTerminal(s.Stdio)
		if give == nil {
			return 0, errors.New("it was the job's terminal, and gocr restore runs on none to give it")
		}
	}
	if give == nil {
		return 0, errors.New("nothing to connect it to")
	}
	// A dup, so closing ours later leaves gocr's stdio alone.
	f, err := dupFd(give.Fd(), fd.Description)
	if err != nil {
		return 0, err
	}
	return s.Add(f), nil
}

type givenKey string

// giveInherited gives fd the file --inherit-fd names for its key, with
// the fd's dumped status flags (CheckInherited checked its type and access
// mode). Status flags belong to the open file description (man 2 fcntl,
// "File status flags"), which whoever gave it to gocr may share: the
// description is the job's from then on, as it was at the dump, so it gets
// the job's flags. A failed restore puts the flags it had back.
func giveInherited(s *Sources, fd *gocrpb.Fd, g *os.File) (int32, error) {
	_, err := once(s, givenKey(inheritKey(fd)), func() (struct{}, error) {
		return struct{}{}, setGivenFlags(s, g, fd.Flags)
	})
	if err != nil {
		return 0, err
	}
	f, err := dupFd(g.Fd(), fd.Description)
	if err != nil {
		return 0, err
	}
	return s.Add(f), nil
}

// setGivenFlags sets the status flags F_SETFL can set (fs/fcntl.c
// SETFL_MASK, O_ASYNC aside: no kind dumps it) of g to those in flags.
func setGivenFlags(s *Sources, g *os.File, flags uint32) error {
	cur, err := unix.FcntlInt(g.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("%s: F_GETFL: %w", g.Name(), err)
	}
	want := cur&^pipeStatusFlags | int(flags)&pipeStatusFlags
	if want == cur {
		return nil
	}
	if _, err := unix.FcntlInt(g.Fd(), unix.F_SETFL, want); err != nil {
		return fmt.Errorf("%s: set status flags %#o: %w", g.Name(), want&pipeStatusFlags, err)
	}
	s.OnUndo(func() { unix.FcntlInt(g.Fd(), unix.F_SETFL, cur) })
	return nil
}

// inheritSpec is --inherit-fd's argument: fd[N]:KEY.
var inheritSpec = regexp.MustCompile(`^fd\[([0-9]+)\]:(.+)$`)

// ParseInheritFd reads an --inherit-fd argument, fd[N]:KEY: gocr
// restore's own fd N is given to every fd of the dump that KEY names.
func ParseInheritFd(spec string) (int, string, error) {
	m := inheritSpec.FindStringSubmatch(spec)
	if m == nil {
		return 0, "", fmt.Errorf("--inherit-fd %q: want fd[N]:KEY, KEY as the dump names the fd (gocr show), e.g. fd[3]:pipe:[1234]", spec)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n > 1<<30 {
		return 0, "", fmt.Errorf("--inherit-fd %q: fd %s out of range", spec, m[1])
	}
	return n, m[2], nil
}

// CheckInherited checks, before the restore creates anything, that every
// fd joined outside the dump that gocr's stdio cannot stand in for is
// given (--inherit-fd), that each given file is of the type the fd was,
// with its access mode, and that every key given names an fd of the dump.
func CheckInherited(tables []*gocrpb.Files, given map[string]*os.File) error {
	first := map[string]*gocrpb.Fd{}
	for _, table := range tables {
		for _, fd := range table.Fds {
			in := fd.GetInherit()
			if in == nil {
				continue
			}
			key := inheritKey(fd)
			g := given[key]
			if g == nil {
				if in.GetMustGive() {
					return fmt.Errorf("restore pid %d: fd %d (%s) was connected outside the dump, and gocr restore's own stdio cannot stand in for it: give it with --inherit-fd fd[N]:%s",
						table.Pid, fd.Fd, key, key)
				}
				continue
			}
			if err := checkGiven(g, fd); err != nil {
				return fmt.Errorf("restore pid %d: fd %d (%s): --inherit-fd gives %s, %w", table.Pid, fd.Fd, key, g.Name(), err)
			}
			if f, ok := first[key]; ok && f.Flags != fd.Flags {
				// Two open file descriptions of one outside file:
				// one given file cannot be both.
				return fmt.Errorf("restore pid %d: fd %d (%s) has status flags %#o, another fd of %s %#o: they were two open file descriptions, and --inherit-fd gives one",
					table.Pid, fd.Fd, key, fd.Flags, key, f.Flags)
			}
			first[key] = fd
		}
	}
	for key, g := range given {
		if first[key] == nil {
			return fmt.Errorf("--inherit-fd gives %s for %s, which names no fd of the dump connected outside it (gocr show names them by key)", g.Name(), key)
		}
	}
	return nil
}

// checkGiven checks that the given file g can be fd: of the same type
// (fstat, man 2 stat: st_mode's S_IFMT) and access mode.
func checkGiven(g *os.File, fd *gocrpb.Fd) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(g.Fd()), &st); err != nil {
		return fmt.Errorf("which gocr cannot stat: %w", err)
	}
	if want := fd.GetInherit().GetMode(); want != 0 && st.Mode&unix.S_IFMT != want {
		return fmt.Errorf("%s, but the dumped fd was %s", typeName(st.Mode&unix.S_IFMT), typeName(want))
	}
	fl, err := unix.FcntlInt(g.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("F_GETFL: %w", err)
	}
	if have, want := uint32(fl)&unix.O_ACCMODE, fd.Flags&unix.O_ACCMODE; have != want {
		return fmt.Errorf("open %s, but the dumped fd was open %s", accessName(have), accessName(want))
	}
	return nil
}

// typeName names a file type (man 7 inode).
func typeName(mode uint32) string {
	switch mode {
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case 0:
		return "an anonymous file"
	}
	return fmt.Sprintf("a file of type %#o", mode)
}

func accessName(mode uint32) string {
	switch mode {
	case unix.O_RDONLY:
		return "for reading"
	case unix.O_WRONLY:
		return "for writing"
	}
	return "for reading and writing"
}

// StdioNote says, in one line, which stdio joined outside the dump gets
// gocr restore's own in its place (no --inherit-fd gives it), or "". The
// controlling terminal of a shell job is left out: getting the restore's
// terminal is what it is for (--shell-job).
func StdioNote(tables []*gocrpb.Files, given map[string]*os.File) string {
	var fds []string
	for _, table := range tables {
		for _, fd := range table.Fds {
			in := fd.GetInherit()
			if in == nil || in.GetTerminal() || in.GetMustGive() || given[inheritKey(fd)] != nil || (fd.Fd > 2 && in.LikeStdio == nil) {
				continue
			}
			fds = append(fds, fmt.Sprintf("pid %d fd %d (%s)", table.Pid, fd.Fd, inheritKey(fd)))
		}
	}
	if len(fds) == 0 {
		return ""
	}
	return fmt.Sprintf("%s connected outside the dump: given the restore's own stdio (--inherit-fd fd[N]:KEY gives another)", strings.Join(fds, ", "))
}

// OutsideNote says, in one line at dump, which fds joined outside the dump
// the restore will refuse unless --inherit-fd gives them, or "".
func OutsideNote(tables []*gocrpb.Files) string {
	var fds []string
	for _, table := range tables {
		for _, fd := range table.Fds {
			if fd.GetInherit().GetMustGive() {
				fds = append(fds, fmt.Sprintf("pid %d fd %d (%s)", table.Pid, fd.Fd, inheritKey(fd)))
			}
		}
	}
	if len(fds) == 0 {
		return ""
	}
	return fmt.Sprintf("%s connected outside the dump: the restore needs --inherit-fd fd[N]:KEY to give each a file", strings.Join(fds, ", "))
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
				// gocr restore's own stdio may stand in for it: that is
				// the point (a batch system's output file of the run).
				setInherit(fd, pathFileType(fd), false)
			}
		}
	}
}

// checkExternal checks that each pipe --external names is one the dump
// records as joined outside it: a key that names none is a mistake the
// user should hear of, not a silent no-op.
func checkExternal(tables []*gocrpb.Files, external []string) error {
	for _, key := range external {
		if !strings.HasPrefix(key, "pipe:[") {
			return fmt.Errorf("--external %s: only pipes (pipe:[INODE]) are named this way", key)
		}
		found := false
		for _, table := range tables {
			for _, fd := range table.Fds {
				found = found || (fd.GetInherit() != nil && inheritKey(fd) == key)
			}
		}
		if !found {
			return fmt.Errorf("--external %s: no fd of the dumped processes is a pipe to outside them with this key", key)
		}
	}
	return nil
}

// pathFileType is the file type (S_IFMT) of a path fd's file.
func pathFileType(fd *gocrpb.Fd) uint32 {
	switch fd.GetPath().GetType() {
	case gocrpb.PathFd_DIRECTORY:
		return unix.S_IFDIR
	case gocrpb.PathFd_CHARDEV:
		return unix.S_IFCHR
	}
	return unix.S_IFREG
}
