//go:build linux

// Package files dumps and restores a process's open files, one kind of
// file at a time. Each kind (a regular file, a pipe, an eventfd, ...) lives
// in its own file here with its dump and restore side together and
// registers itself; the generic code in this package, package dump and
// package restorer never switch on kinds. docs/INTERNALS.md ("How to add
// a kind of resource") walks through adding one.
package files

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// Kind is one kind of open file.
type Kind interface {
	// Name is the kind's field in the Fd.kind oneof (gocrpb/gocr.proto).
	Name() string
	// Match tells whether the open fd e is of this kind. At most one
	// kind may match an fd (Collect refuses a tie).
	Match(e *Entry) bool
	// Dump records the state of e's file in fd, setting fd.Kind.
	Dump(e *Entry, fd *gocrpb.Fd) error
	// Open rebuilds, in gocr, the open file description fd had, and
	// returns its number among the sources. It is called once per open
	// file description, however many fds and processes share it.
	Open(s *Sources, fd *gocrpb.Fd) (int32, error)
}

// Linker is implemented by kinds whose fds must be looked at together
// once every process is collected: Link gets the fds of one file (the same
// device and inode), across the processes, in dump order — or, for a kind
// that is also a LinkKeyer, of one object made of several files.
type Linker interface {
	Link(fds []Ref, opts LinkOptions) error
}

// LinkOptions are what the user says of the files the dumped processes
// share with the world outside the dump.
type LinkOptions struct {
	// ExternalUnix names unix sockets (a path, or @ and an abstract
	// name) whose connections to sockets outside the dump are dumped
	// anyway, and restored with their peer gone (files/unixsocket.go).
	ExternalUnix []string
	// Stdio are the files of the dumping caller's own standard input,
	// output and error, which it gave the processes (cr_run's job: a
	// batch system's output file): fds 0 to 2 on one of them are
	// dumped as inherited stdio (inheritStdio), so that a restore gives
	// its own stdio in their place.
	Stdio []FileID
	// External names pipes ("pipe:[INODE]") whose other end is outside
	// the dump, at fds other than stdio, that are dumped anyway: the
	// restore needs --inherit-fd to give each a file (inherit.go).
	External []string
	// PidNamespace: the job lives in a PID namespace of its own, and
	// is restored only in a new one.
	PidNamespace bool

	// dumped are the pids of the dumped processes with fd tables
	// (Link sets them).
	dumped map[int]bool
	// tables are their fd tables, in dump order (Link sets them).
	tables []*gocrpb.Files
}

// LinkKeyer is implemented by Linkers whose one object is several files,
// each with its own inode (a socketpair's two ends): Link gets together
// the fds whose LinkKey is equal. The key must be comparable.
type LinkKeyer interface {
	LinkKey(fd *gocrpb.Fd) any
}

// Checker is implemented by kinds that must check a process's whole fd
// table, e.g. that an fd they refer to is in it.
type Checker interface {
	Check(table *gocrpb.Files, fd *gocrpb.Fd) error
}

// Finisher is implemented by kinds that only the restored process itself
// can finish, once every one of its fds has its dumped number: the
// restorer blob carries out the fixups (restorer/c/restorer.c).
type Finisher interface {
	Finish(fd *gocrpb.Fd) []Fixup
}

// FixupOp is what a fixup does inside the restored process.
type FixupOp int

const (
	// FixupEpollAdd: epoll_ctl(Fd, EPOLL_CTL_ADD, Target, {Events, Data}).
	FixupEpollAdd FixupOp = iota + 1
	// FixupPosixLock: fcntl(Fd, F_SETLK, Lock), a POSIX record lock the
	// process held (files/locks.go).
	FixupPosixLock
	// FixupFlock: flock(Fd, LOCK_SH or LOCK_EX), a flock lock the
	// process took (files/locks.go).
	FixupFlock
	// FixupOpen: open(Path, Flags) at Fd, at offset Pos: a file only
	// the restored process can open (files/path.go).
	FixupOpen
	// FixupCtty: Fd, a terminal, becomes the controlling terminal of the
	// session the process leads (as soon as it leads it, before it forks),
	// with foreground process group Target (files/pty.go).
	FixupCtty
	// FixupDup: dup3(Target, Fd), close-on-exec if Cloexec: Fd shares
	// the open file description FixupOpen made at Target (files/path.go).
	FixupDup
)

// Fixup is one step the restorer blob takes inside the process after its
// fds are in place.
type Fixup struct {
	Op     FixupOp
	Fd     int32            // the fd it acts on, by its dumped number
	Target int32            // FixupEpollAdd: the fd to watch, by its dumped number; FixupCtty: the foreground group; FixupDup: the fd to dup
	Events uint32           // FixupEpollAdd
	Data   uint64           // FixupEpollAdd
	Lock   *gocrpb.FileLock // FixupPosixLock, FixupFlock
	// FixupEpollAdd of a watch whose number Target no longer names its
	// file: the file is the open file description of fd FileFd of
	// process FilePid (files/epoll.go).
	FileElsewhere   bool
	FilePid, FileFd int32
	// FixupOpen (Cloexec: FixupDup too)
	Path    string
	Flags   uint32
	Pos     int64
	Cloexec bool
}

// Ref is one fd of a dumped process, as Linker sees it.
type Ref struct {
	Pid int
	Fd  *gocrpb.Fd
}

var (
	kinds  []Kind
	byName = map[string]Kind{}
)

// register adds a kind; each kind's file calls it from init.
func register(k Kind) {
	if byName[k.Name()] != nil {
		panic("files: kind " + k.Name() + " registered twice")
	}
	kinds = append(kinds, k)
	byName[k.Name()] = k
}

// KindName is the name of fd's kind: its field in the Fd.kind oneof, or
// "" if none is set.
func KindName(fd *gocrpb.Fd) string {
	o := fd.ProtoReflect().Descriptor().Oneofs().ByName("kind")
	f := fd.ProtoReflect().WhichOneof(o)
	if f == nil {
		return ""
	}
	return string(f.Name())
}

// kindOf is the registered kind of a dumped fd.
func kindOf(fd *gocrpb.Fd) (Kind, error) {
	name := KindName(fd)
	k := byName[name]
	if k == nil {
		if name == "" {
			return nil, fmt.Errorf("fd %d: no kind in the image", fd.Fd)
		}
		return nil, fmt.Errorf("fd %d: unknown kind %q", fd.Fd, name)
	}
	return k, nil
}

// Entry is an open fd of a frozen process, as /proc shows it.
type Entry struct {
	Pid, Fd int
	// Target is the fd's link in /proc/PID/fd (man 5 proc): a path, or
	// "pipe:[INO]", "anon_inode:[eventfd]", ...
	Target string
	// Stat is the open file's own stat, through /proc/PID/fd/N.
	Stat unix.Stat_t
	Info proc.FdInfo
	// mounts, shared by the entries of one Collect, holds the mount IDs
	// checkReachable reads once for all of them.
	mounts *mountSets
}

// Type is the file type bits of the open file (S_IFMT, man 7 inode).
func (e *Entry) Type() uint32 { return e.Stat.Mode & unix.S_IFMT }

// Deleted tells whether the file's path was unlinked: /proc shows the
// link with " (deleted)" appended (fs/d_path.c d_path).
func (e *Entry) Deleted() bool { return strings.HasSuffix(e.Target, " (deleted)") }

// OnPath tells whether the fd names a file reachable by its path.
func (e *Entry) OnPath() bool { return strings.HasPrefix(e.Target, "/") && !e.Deleted() }

// Collect reads pid's fd table from /proc and records each fd by its kind.
// An fd no kind can restore exactly is refused, naming it.
func Collect(pid int) (*gocrpb.Files, error) {
	fds, err := proc.ListFds(pid)
	if err != nil {
		return nil, err
	}
	table := &gocrpb.Files{Pid: int32(pid)}
	mounts := &mountSets{}
	for _, n := range fds {
		fd, err := collectFd(pid, n, mounts)
		if err != nil {
			return nil, err
		}
		table.Fds = append(table.Fds, fd)
	}
	for _, fd := range table.Fds {
		if c, ok := byName[KindName(fd)].(Checker); ok {
			if err := c.Check(table, fd); err != nil {
				return nil, err
			}
		}
	}
	return table, nil
}

func collectFd(pid, n int, mounts *mountSets) (*gocrpb.Fd, error) {
	e := &Entry{Pid: pid, Fd: n, mounts: mounts}
	var err error
	if e.Target, err = proc.FdTarget(pid, n); err != nil {
		return nil, err
	}
	if e.Info, err = proc.ReadFdInfo(pid, n); err != nil {
		return nil, err
	}
	// stat through /proc/PID/fd/N follows to the open file itself
	// (man 5 proc).
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, n), &e.Stat); err != nil {
		return nil, fmt.Errorf("fd %d (%s): %w", n, e.Target, err)
	}
	fd := &gocrpb.Fd{
		Fd: int32(n), Flags: e.Info.Flags &^ unix.O_CLOEXEC, Pos: e.Info.Pos,
		Cloexec: e.Info.Flags&unix.O_CLOEXEC != 0, SharedWith: -1, Description: e.Target,
		// Every fd records the open file's identity: Link finds shared
		// open file descriptions among fds of the same (dev, ino),
		// anonymous inodes (eventfd, epoll, ...) included.
		File: &gocrpb.FileRef{Path: e.Target, Dev: e.Stat.Dev, Ino: e.Stat.Ino, Size: e.Stat.Size, MtimeNs: e.Stat.Mtim.Nano()},
	}
	var match Kind
	for _, k := range kinds {
		if !k.Match(e) {
			continue
		}
		if match != nil {
			return nil, fmt.Errorf("fd %d (%s): both kinds %s and %s claim it", n, e.Target, match.Name(), k.Name())
		}
		match = k
	}
	if err := dumpLocks(e, fd); err != nil {
		return nil, fmt.Errorf("fd %d (%s): %w", n, e.Target, err)
	}
	switch {
	case match != nil && fd.Flags&unix.O_ASYNC != 0:
		// Signal-driven I/O: open(2) ignores O_ASYNC (man 2 open, BUGS),
		// and the owner and signal it goes with (F_SETOWN_EX, F_SETSIG;
		// man 2 fcntl) are not read, so no kind restores it.
		return nil, fmt.Errorf("fd %d (%s): signal-driven I/O (O_ASYNC) is on, which gocr cannot restore with its owner and signal", n, e.Target)
	case match != nil:
		if err := match.Dump(e, fd); err != nil {
			return nil, fmt.Errorf("fd %d (%s): %s: %w", n, e.Target, match.Name(), err)
		}
	case n <= unix.Stderr && len(fd.Locks) == 0:
		// stdio joined to something outside the dump that gocr cannot
		// reopen (a terminal other than a pty, a deleted file, a socket
		// of another family): the restore gives the file --inherit-fd
		// names, and refuses without one (inherit.go).
		setInherit(fd, e.Type(), true)
	case n <= unix.Stderr:
		return nil, fmt.Errorf("fd %d (%s) holds a lock on a file the restore would replace", n, e.Target)
	case e.Type() == unix.S_IFSOCK:
		return nil, fmt.Errorf("fd %d (%s): %w", n, e.Target, socketRefusal(e))
	case e.Deleted():
		return nil, fmt.Errorf("fd %d: file %s was deleted (not supported yet)", n, strings.TrimSuffix(e.Target, " (deleted)"))
	default:
		return nil, fmt.Errorf("fd %d (%s): this kind of file is not supported yet", n, e.Target)
	}
	return fd, nil
}

// Link finds what the dumped processes' fds share, once every process is
// collected (tables in dump order, parents first): every fd that is the
// same open file description as an earlier one points at it, so restore
// opens it once; then each kind that links (pipes: both ends in the dump,
// their unread data) sees the fds of each of its objects.
func Link(tables []*gocrpb.Files, opts LinkOptions) error {
	inheritStdio(tables, opts.Stdio)
	opts.dumped = map[int]bool{}
	opts.tables = tables
	for _, t := range tables {
		opts.dumped[int(t.Pid)] = true
	}
	fileKey := func(fd *gocrpb.Fd) any { return [2]uint64{fd.File.Dev, fd.File.Ino} }
	for _, refs := range groupFds(tables, func(*gocrpb.Fd) bool { return true }, fileKey) {
		linkShared(refs)
		linkFlocks(refs)
	}
	for _, k := range kinds {
		l, ok := k.(Linker)
		if !ok {
			continue
		}
		key := fileKey
		if kk, ok := k.(LinkKeyer); ok {
			key = kk.LinkKey
		}
		ofKind := func(fd *gocrpb.Fd) bool { return KindName(fd) == k.Name() }
		for _, refs := range groupFds(tables, ofKind, key) {
			if err := l.Link(refs, opts); err != nil {
				return err
			}
		}
	}
	return checkExternal(tables, opts.External)
}

// groupFds groups the fds that have a file and pass keep by their key,
// groups and fds in dump order.
func groupFds(tables []*gocrpb.Files, keep func(*gocrpb.Fd) bool, key func(*gocrpb.Fd) any) [][]Ref {
	index := map[any]int{}
	var groups [][]Ref
	for _, table := range tables {
		for _, fd := range table.Fds {
			if fd.File == nil || !keep(fd) {
				continue
			}
			k := key(fd)
			i, ok := index[k]
			if !ok {
				i = len(groups)
				index[k] = i
				groups = append(groups, nil)
			}
			groups[i] = append(groups[i], Ref{int(table.Pid), fd})
		}
	}
	return groups
}

// Fixups lists the steps the restorer blob must take in the process whose
// fd table this is, once its fds are in place.
func Fixups(table *gocrpb.Files) []Fixup {
	var out []Fixup
	for _, fd := range table.Fds {
		if f, ok := byName[KindName(fd)].(Finisher); ok {
			out = append(out, f.Finish(fd)...)
		}
		out = append(out, lockFixups(fd)...)
	}
	return out
}

// Names lists the registered kinds, sorted, for tests.
func Names() []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.Name())
	}
	sort.Strings(out)
	return out
}

// dupFd duplicates fd close-on-exec, as an *os.File named name.
func dupFd(fd uintptr, name string) (*os.File, error) {
	n, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(n), name), nil
}
