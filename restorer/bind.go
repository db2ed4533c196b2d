//go:build linux

package restorer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
)

// openSources opens, in gocr, every open file description the processes
// had (package files, once per description), every shared anonymous
// memory object their mappings name and the copies of saved files that
// replace missing or changed ones, as sources for the restorer.
func openSources(procs []*proc, src *files.Sources) (map[uint64]int32, error) {
	var tables []*gocrpb.Files
	for _, pr := range procs {
		if pr.files != nil {
			tables = append(tables, pr.files)
		}
	}
	if err := src.OpenAll(tables); err != nil {
		return nil, err
	}
	shmem := map[uint64]int32{}
	for _, pr := range procs {
		if pr.mm == nil {
			continue
		}
		if err := openShmem(pr.mm, src, shmem); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	if err := applySavedFiles(procs, src); err != nil {
		return nil, err
	}
	return shmem, nil
}

// openShmem makes one shared memory object per dumped one, the kind
// MAP_SHARED|MAP_ANONYMOUS creates (so /proc/PID/maps names it
// "/dev/zero (deleted)" as before), and keeps it as an fd through
// /proc/self/map_files (man 5 proc).
func openShmem(mm *gocrpb.Mm, src *files.Sources, shmem map[uint64]int32) error {
	sizes := map[uint64]uint64{}
	for _, v := range mm.Vmas {
		if v.Kind == gocrpb.VmaKind_VMA_ANON_SHARED && v.ShmemId != 0 {
			sizes[v.ShmemId] = max(sizes[v.ShmemId], v.Pgoff+(v.End-v.Start))
		}
	}
	for id, size := range sizes {
		if _, ok := shmem[id]; ok {
			continue
		}
		// Sizes can only be known from every process's mappings; the
		// object grows on demand if a later one maps further.
		b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("shared memory of %d bytes: %w", size, err)
		}
		start := uint64(uintptr(unsafePointer(b)))
		fd, err := unix.Open(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+size), unix.O_RDWR|unix.O_CLOEXEC, 0)
		unix.Munmap(b)
		if err != nil {
			return fmt.Errorf("shared memory: open map_files: %w", err)
		}
		shmem[id] = src.AddFd(fd, "shmem")
	}
	return nil
}

// bind points the plan's fds, the fixups its fd kinds need inside the
// process (epoll watches, POSIX locks), and its shared mappings at the
// sources.
func (p *plan) bind(pr *proc, src *files.Sources, shmem map[uint64]int32) error {
	placed, err := src.Place(pr.files)
	if err != nil {
		return err
	}
	maxFd := src.First + int32(len(src.Files()))
	for _, f := range placed {
		p.fds = append(p.fds, rstFd{Target: f.Fd, Src: f.Src, Cloexec: b2u(f.Cloexec)})
		maxFd = max(maxFd, f.Fd)
	}
	p.cttyFd = -1
	fixups := files.Fixups(pr.files)
	holders := newWatchedFiles(pr.files, fixups)
	for _, fx := range fixups {
		switch fx.Op {
		case files.FixupEpollAdd:
			rf := rstFixup{Op: rstFixupEpollAdd, Fd: fx.Fd, Target: fx.Target, Events: fx.Events, Data: fx.Data, FileFd: -1}
			if fx.FileElsewhere {
				if rf.FileFd, err = holders.fd(src, fx); err != nil {
					return err
				}
			}
			p.fixups = append(p.fixups, rf)
		case files.FixupPosixLock:
			t := uint32(unix.F_RDLCK)
			if fx.Lock.Write {
				t = unix.F_WRLCK
			}
			p.fixups = append(p.fixups, rstFixup{Op: rstFixupPosixLock, Fd: fx.Fd, Start: fx.Lock.Start, Len: fx.Lock.Len, LockType: t})
		case files.FixupFlock:
			how := uint32(unix.LOCK_SH)
			if fx.Lock.Write {
				how = unix.LOCK_EX
			}
			p.fixups = append(p.fixups, rstFixup{Op: rstFixupFlock, Fd: fx.Fd, LockType: how})
		case files.FixupOpen:
			p.fixups = append(p.fixups, rstFixup{Op: rstFixupOpen, Fd: fx.Fd, Target: int32(b2u(fx.Cloexec)),
				Events: fx.Flags, Data: uint64(p.str(fx.Path)), Start: fx.Pos})
		case files.FixupDup:
			p.fixups = append(p.fixups, rstFixup{Op: rstFixupDup, Fd: fx.Fd, Target: fx.Target, Events: b2u(fx.Cloexec)})
		case files.FixupCtty:
			if err := p.bindCtty(fx, placed); err != nil {
				return err
			}
		default:
			return fmt.Errorf("fd %d: fixup %d unknown to the restorer", fx.Fd, fx.Op)
		}
	}
	for _, h := range holders.fds {
		p.fds = append(p.fds, h)
		maxFd = max(maxFd, h.Target)
		p.fixups = append(p.fixups, rstFixup{Op: rstFixupClose, Fd: h.Target})
	}
	for i, v := range pr.mm.Vmas {
		p.vmas[i].MapFd = -1
		switch {
		case v.Kind == gocrpb.VmaKind_VMA_ANON_SHARED && v.ShmemId != 0:
			p.vmas[i].MapFd = shmem[v.ShmemId]
		case v.MemfdId != 0:
			m, err := src.Memfd(v.MemfdId)
			if err != nil {
				return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
			}
			p.vmas[i].MapFd = m
		case v.GhostFile != 0:
			// The deleted file made again (files/ghost.go), read-write
			// only where the mapping may write to it.
			m, err := src.GhostFile(v.GhostFile, v.Kind == gocrpb.VmaKind_VMA_FILE_SHARED && hasFlag(v.VmFlags, "mw"))
			if err != nil {
				return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
			}
			p.vmas[i].MapFd = m
		case v.SavedFile != 0:
			if n, ok := p.saved[v.SavedFile]; ok {
				p.vmas[i].MapFd = n // a copy of the saved contents
			}
		}
	}
	p.args.MaxFd = uint32(maxFd)
	return nil
}

// watchedFiles are the files a process's epoll watches name by numbers
// that no longer hold them (files/epoll.go), each given to the process
// at an fd of its own, above every number it uses (its fds and the
// watches' numbers), for the fixups only: a RST_FIXUP_CLOSE after them
// closes it.
type watchedFiles struct {
	next  int32
	bySrc map[int32]int32
	fds   []rstFd
}

func newWatchedFiles(table *gocrpb.Files, fixups []files.Fixup) *watchedFiles {
	w := &watchedFiles{bySrc: map[int32]int32{}}
	for _, fd := range table.Fds {
		w.next = max(w.next, fd.Fd+1)
	}
	for _, fx := range fixups {
		if fx.Op == files.FixupEpollAdd {
			w.next = max(w.next, fx.Fd+1, fx.Target+1)
		}
	}
	return w
}

// fd is the fd holding the file of fx's watch.
func (w *watchedFiles) fd(src *files.Sources, fx files.Fixup) (int32, error) {
	n, err := src.SourceOf(fx.FilePid, fx.FileFd)
	if err != nil {
		return 0, fmt.Errorf("epoll fd %d: the file of its watch on fd %d: %w", fx.Fd, fx.Target, err)
	}
	if fd, ok := w.bySrc[n]; ok {
		return fd, nil
	}
	fd := w.next
	w.next++
	w.bySrc[n] = fd
	w.fds = append(w.fds, rstFd{Target: fd, Src: n, Cloexec: 1})
	return fd, nil
}

// String says what a fixup does, for a restore that failed at it.
func (f rstFixup) String() string {
	switch f.Op {
	case rstFixupEpollAdd:
		if f.FileFd >= 0 {
			return fmt.Sprintf("add fd %d, made to name the file of fd %d for the add, to epoll fd %d", f.Target, f.FileFd, f.Fd)
		}
		return fmt.Sprintf("add fd %d to epoll fd %d", f.Target, f.Fd)
	case rstFixupPosixLock:
		mode := "read"
		if f.LockType == unix.F_WRLCK {
			mode = "write"
		}
		return fmt.Sprintf("take the POSIX %s lock on bytes %d+%d of fd %d", mode, f.Start, f.Len, f.Fd)
	case rstFixupFlock:
		mode := "shared"
		if f.LockType == unix.LOCK_EX {
			mode = "exclusive"
		}
		return fmt.Sprintf("take the %s flock of fd %d", mode, f.Fd)
	case rstFixupOpen:
		return fmt.Sprintf("open fd %d by its path", f.Fd)
	case rstFixupTtyPgrp:
		return fmt.Sprintf("make group %d the foreground of terminal fd %d", f.Target, f.Fd)
	case rstFixupClose:
		return fmt.Sprintf("close fd %d, which held a watched file for the epoll watches", f.Fd)
	}
	return fmt.Sprintf("fixup %d on fd %d", f.Op, f.Fd)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
