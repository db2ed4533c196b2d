//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// File locks held through an fd, of any kind of file. Dump: the fd's
// fdinfo "lock:" lines (fs/proc/fd.c, fs/locks.c show_fd_locks), which
// list the flock and OFD locks of its open file description (on every fd
// of it, in every process) and the POSIX locks its process took through
// it. Restore:
//   - OFD locks belong to the open file description alone (man 2 fcntl,
//     "Open file description locks"; /proc shows no process for them), so
//     gocr takes them on its source before the restorer gets it;
//   - flock locks belong to the open file description too (man 2 flock),
//     but /proc/locks names the process that took them, so the restorer
//     takes each inside that process, or the first holder of the
//     description if that process is not in the dump (FixupFlock);
//   - POSIX record locks belong to the process (fs/locks.c: their owner is
//     the fd table), so the restorer takes them inside it (FixupPosixLock).
// A thread that was blocked waiting for a lock is in the system call again
// after the restore, so it waits again.

// dumpLocks records the locks e holds, refusing what cannot be taken
// again the same way: leases, delegations, anything but advisory locks.
func dumpLocks(e *Entry, fd *gocrpb.Fd) error {
	for _, l := range e.Info.Locks {
		lock := &gocrpb.FileLock{Start: l.Start}
		switch l.Class {
		case "FLOCK":
			lock.Type = gocrpb.FileLock_FLOCK
		case "OFDLCK":
			lock.Type = gocrpb.FileLock_OFD
		case "POSIX":
			lock.Type = gocrpb.FileLock_POSIX
			if l.Pid != e.Pid {
				return fmt.Errorf("a POSIX lock on it is held by pid %d, not by this process", l.Pid)
			}
		default:
			return fmt.Errorf("it holds a %s (%s), which gocr cannot restore", l.Class, l.Mode)
		}
		if l.Mode != "ADVISORY" {
			return fmt.Errorf("it holds a %s lock in mode %s, which gocr cannot restore", l.Class, l.Mode)
		}
		switch l.Type {
		case "WRITE":
			lock.Write = true
		case "READ":
		default:
			return fmt.Errorf("it holds a %s lock of type %s, which gocr cannot restore", l.Class, l.Type)
		}
		if l.End >= 0 {
			lock.Len = l.End - l.Start + 1
		}
		if lock.Type == gocrpb.FileLock_FLOCK {
			lock.Start, lock.Len = 0, 0 // the whole file, always
			lock.Pid = int32(l.Pid)
		}
		fd.Locks = append(fd.Locks, lock)
	}
	return nil
}

// linkFlocks keeps each flock lock of an open file description on one fd
// only, the one the restore will take it through: an fd of the process
// that took it if that process is in the dump, else the description's
// first fd. refs are every fd of one file, in dump order, shared ones
// already pointing at the first of their description (linkShared).
func linkFlocks(refs []Ref) {
	type desc struct{ pid, fd int32 }
	holder := map[desc]int{} // description -> the ref to keep its flocks on
	owner := func(r Ref) desc {
		if r.Fd.SharedWith < 0 {
			return desc{int32(r.Pid), r.Fd.Fd}
		}
		pid := r.Fd.SharedPid
		if pid == 0 {
			pid = int32(r.Pid)
		}
		return desc{pid, r.Fd.SharedWith}
	}
	for i, r := range refs {
		for _, l := range r.Fd.Locks {
			if l.Type != gocrpb.FileLock_FLOCK {
				continue
			}
			d := owner(r)
			if _, ok := holder[d]; !ok || (l.Pid == int32(r.Pid) && l.Pid != int32(refs[holder[d]].Pid)) {
				holder[d] = i
			}
		}
	}
	for i, r := range refs {
		if h, ok := holder[owner(r)]; ok && h != i {
			r.Fd.Locks = slices.DeleteFunc(r.Fd.Locks, func(l *gocrpb.FileLock) bool { return l.Type == gocrpb.FileLock_FLOCK })
		}
	}
}

// lockDescription takes again, on f (the restored open file description
// of fd), the OFD locks fd's description held.
func lockDescription(f *os.File, fd *gocrpb.Fd) error {
	for _, l := range fd.Locks {
		var err error
		switch l.Type {
		case gocrpb.FileLock_OFD:
			err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, flockOf(l))
		case gocrpb.FileLock_FLOCK, gocrpb.FileLock_POSIX:
			continue // taken inside the process (Fixups)
		default:
			return fmt.Errorf("lock of unknown type %v in the image", l.Type)
		}
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("%s: another process holds a conflicting lock (is the dumped process still running?)", lockName(l))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", lockName(l), err)
		}
	}
	return nil
}

// lockFixups are the locks to take inside the process through fd: its
// POSIX locks, and the flock locks linkFlocks left on it.
func lockFixups(fd *gocrpb.Fd) []Fixup {
	var out []Fixup
	for _, l := range fd.Locks {
		switch l.Type {
		case gocrpb.FileLock_POSIX:
			out = append(out, Fixup{Op: FixupPosixLock, Fd: fd.Fd, Lock: l})
		case gocrpb.FileLock_FLOCK:
			out = append(out, Fixup{Op: FixupFlock, Fd: fd.Fd, Lock: l})
		}
	}
	return out
}

// flockOf is the struct flock (man 2 fcntl) for a POSIX or OFD lock.
func flockOf(l *gocrpb.FileLock) *unix.Flock_t {
	t := int16(unix.F_RDLCK)
	if l.Write {
		t = unix.F_WRLCK
	}
	return &unix.Flock_t{Type: t, Whence: unix.SEEK_SET, Start: l.Start, Len: l.Len}
}

func lockName(l *gocrpb.FileLock) string {
	mode := "read"
	if l.Write {
		mode = "write"
	}
	switch l.Type {
	case gocrpb.FileLock_FLOCK:
		if l.Write {
			return "flock (exclusive)"
		}
		return "flock (shared)"
	case gocrpb.FileLock_OFD:
		return fmt.Sprintf("OFD %s lock on bytes %d+%d", mode, l.Start, l.Len)
	}
	return fmt.Sprintf("POSIX %s lock on bytes %d+%d", mode, l.Start, l.Len)
}
