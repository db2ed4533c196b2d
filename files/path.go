//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
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
	if procFileGone(e) {
		return true // refused by Dump, naming its process
	}
	if isMqueue(e) {
		return false // a POSIX message queue, never reopened by its path
	}
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
	if err := checkReachable(e); err != nil {
		return err
	}
	if e.Type() == unix.S_IFCHR && e.Info.Flags&unix.O_PATH == 0 && !isStatelessDevice(e.Stat.Rdev) {
		// Reopening gives a new open file of the driver, without what
		// the process set up through this one (a tun interface attached
		// with TUNSETIFF, a device's mode set by ioctl).
		return fmt.Errorf("character device %d:%d may hold driver state, which gocr cannot restore (only null, zero, full, random and urandom are reopened)",
			unix.Major(e.Stat.Rdev), unix.Minor(e.Stat.Rdev))
	}
	t := gocrpb.PathFd_OTHER
	switch e.Type() {
	case unix.S_IFREG:
		t = gocrpb.PathFd_REGULAR
	case unix.S_IFDIR:
		t = gocrpb.PathFd_DIRECTORY
	case unix.S_IFCHR:
		t = gocrpb.PathFd_CHARDEV
	}
	pf := &gocrpb.PathFd{Type: t, ProcPid: procPid(GhostPath(e.Target))}
	if pf.ProcPid != 0 {
		start, thread, err := checkProcAlive(e)
		if err != nil {
			return err
		}
		pf.ProcStartTime, pf.ProcThreadOf = start, thread
	}
	fd.Kind = &gocrpb.Fd_Path{Path: pf}
	return nil
}

// openFlags are the dumped flags minus those that only act when a file
// is created.
func openFlags(fd *gocrpb.Fd) int {
	return int(fd.Flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
}

// Finish opens a /proc/PID/ path inside the restored process, over the
// placeholder Open put at its number.
// Link refuses an fd on a /proc/PID/ file that shares its open file
// description with another process's fd (inherited across fork): each
// process reopens its own (Finish), so the two would come back as two
// descriptions, their offset no longer shared (man 2 fork, man 2 open).
func (pathKind) Link(refs []Ref, opts LinkOptions) error {
	for _, r := range refs {
		if p := r.Fd.GetPath().GetProcThreadOf(); p != 0 && opts.dumped[int(p)] {
			// The process opens it before it makes its threads
			// (restorer.c restore_fds, then create_threads).
			return fmt.Errorf("pid %d fd %d (%s): a /proc file of a thread of pid %d, which a restore would open before the thread exists: not supported",
				r.Pid, r.Fd.Fd, r.Fd.Description, p)
		}
		if r.Fd.GetPath().GetProcPid() != 0 && r.Fd.SharedWith >= 0 && int(r.Fd.SharedPid) != r.Pid {
			return fmt.Errorf("pid %d fd %d (%s): shares its open file description with pid %d's fd %d, which a restore reopens in each process apart: not supported",
				r.Pid, r.Fd.Fd, r.Fd.Description, r.Fd.SharedPid, r.Fd.SharedWith)
		}
	}
	return nil
}

func (pathKind) Finish(fd *gocrpb.Fd) []Fixup {
	if fd.GetPath().GetProcPid() == 0 {
		return nil
	}
	if fd.SharedWith >= 0 {
		// A dup of a lower fd of this process (Link refuses one of
		// another's), which its own FixupOpen reopened first: Fixups
		// lists them in fd order.
		return []Fixup{{Op: FixupDup, Fd: fd.Fd, Target: fd.SharedWith, Cloexec: fd.Cloexec}}
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
	if err := checkSameFile(s, fd, nfd); err != nil {
		return 0, err
	}
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

// Magic numbers of file systems whose files the kernel makes up as they
// are read (include/uapi/linux/magic.h): their device and inode numbers
// are those of one mount, and another mount of them (a restore's PID
// namespace has its own /proc) shows the same file under others.
var generatedFS = map[int64]bool{
	0x9fa0:     true, // PROC_SUPER_MAGIC
	0x62656572: true, // SYSFS_MAGIC
	0x27e0eb:   true, // CGROUP_SUPER_MAGIC
	0x63677270: true, // CGROUP2_SUPER_MAGIC
}

// checkSameFile refuses a file at the dumped path that is not the file
// the process had open: replaced or rotated since, the path now names
// another file, and the process would go on in it at its old offset. On
// the boot of the dump, and at the path of the dump, the file's device
// and inode tell; elsewhere (another boot or machine, or a path moved by
// --relocate) a regular file must have the size and modification time it
// had, as a mapped file must (restorer checkFiles).
func checkSameFile(s *Sources, fd *gocrpb.Fd, nfd int) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(nfd, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", fd.File.Path, err)
	}
	if generatedFS[fs.Type] {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(nfd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", fd.File.Path, err)
	}
	relocated := fd.Description != "" && fd.Description != fd.File.Path
	if sameBoot(s) && !relocated {
		if st.Dev != fd.File.Dev || st.Ino != fd.File.Ino {
			return fmt.Errorf("file %s is not the one fd %d had open at the dump (device %d:%d inode %d, was %d:%d inode %d): it was replaced since",
				fd.File.Path, fd.Fd, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino, unix.Major(fd.File.Dev), unix.Minor(fd.File.Dev), fd.File.Ino)
		}
		return nil
	}
	if fd.GetPath().GetType() == gocrpb.PathFd_REGULAR && fd.Flags&unix.O_PATH == 0 &&
		(st.Size != fd.File.Size || st.Mtim.Nano() != fd.File.MtimeNs) {
		return fmt.Errorf("file %s changed since the dump (%s): fd %d may not find what it had", fd.File.Path, Changed(&st, fd.File.Size, fd.File.MtimeNs), fd.Fd)
	}
	return nil
}

// Changed says what of a regular file differs from what the dump
// recorded: its size, its modification time, or both. A file rewritten in
// place to the same size shows only by its modification time.
func Changed(st *unix.Stat_t, size, mtimeNs int64) string {
	var parts []string
	if st.Size != size {
		parts = append(parts, fmt.Sprintf("size %d, was %d", st.Size, size))
	}
	if mt := st.Mtim.Nano(); mt != mtimeNs {
		parts = append(parts, fmt.Sprintf("modification time %s, was %s",
			time.Unix(0, mt).UTC().Format(time.RFC3339Nano), time.Unix(0, mtimeNs).UTC().Format(time.RFC3339Nano)))
	}
	return strings.Join(parts, "; ")
}

// isStatelessDevice: the memory devices of major 1 whose open files hold
// nothing but their flags: null 3, zero 5, full 7, random 8, urandom 9
// (Documentation/admin-guide/devices.txt). Terminals are other kinds'.
func isStatelessDevice(rdev uint64) bool {
	if unix.Major(rdev) != 1 {
		return false
	}
	switch unix.Minor(rdev) {
	case 3, 5, 7, 8, 9:
		return true
	}
	return false
}

// checkReachable refuses a file on a mount neither the process's mount
// namespace nor gocr's lists (a detached mount from open_tree(2) or
// fsmount(2)): its link is a path from that mount's root, which at
// restore would name another file, or none. fdinfo mnt_id is the open
// file's mount (man 5 proc_pid_fdinfo). A job in a restore's own mount
// namespace (dump/pidns.go) sees copies of gocr's mounts, under other
// IDs, while the fds gocr gave it are on gocr's.
func checkReachable(e *Entry) error {
	if e.Info.MntID == 0 {
		return nil // a kernel without mnt_id in fdinfo (before 3.15)
	}
	ms := e.mounts
	if ms == nil {
		ms = &mountSets{}
	}
	for i, pid := range []int{e.Pid, os.Getpid()} {
		if ms.ids[i] == nil {
			ids, err := proc.MountIDs(pid)
			if err != nil {
				return err
			}
			ms.ids[i] = ids
		}
		if ms.ids[i][e.Info.MntID] {
			return nil
		}
	}
	return fmt.Errorf("its file system is not mounted anywhere the process or gocr sees (mount %d), so its path cannot reopen it", e.Info.MntID)
}

// mountSets are the mount IDs of a process's mount namespace and of
// gocr's, read once for every fd of one Collect: a read of mountinfo
// costs a millisecond or more on a machine with many mounts.
type mountSets struct{ ids [2]map[int]bool }

// isTTY: terminal majors are 4 (tty), 5 (/dev/tty, ptmx) and 136-143
// (Unix98 pts), Documentation/admin-guide/devices.txt.
func isTTY(st unix.Stat_t) bool {
	major := unix.Major(st.Rdev)
	return major == 4 || major == 5 || (major >= 136 && major <= 143)
}
