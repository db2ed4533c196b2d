//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// epollKind is an epoll(7) instance with its watches. gocr creates it
// empty; the restorer adds the watches inside the process once every fd
// has its dumped number (a watch names the fd by number).
type epollKind struct{}

func init() { register(epollKind{}) }

func (epollKind) Name() string { return "epoll" }

func (epollKind) Match(e *Entry) bool { return e.Target == "anon_inode:[eventpoll]" }

func (epollKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	ws, err := proc.ReadEpollWatches(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	ep := &gocrpb.EpollFd{}
	for _, w := range ws {
		if w.Events&^epPrivateBits == 0 {
			return fmt.Errorf("the EPOLLONESHOT watch on fd %d has fired and is disarmed (events %#x), which gocr cannot restore", w.Tfd, w.Events)
		}
		ep.Watches = append(ep.Watches, &gocrpb.EpollWatch{Tfd: int32(w.Tfd), Events: w.Events, Data: w.Data})
	}
	fd.Kind = &gocrpb.Fd_Epoll{Epoll: ep}
	return nil
}

// epPrivateBits are the flags of a watch that are not events
// (fs/eventpoll.c EP_PRIVATE_BITS). A one-shot watch that has fired keeps
// only these (ep_send_events), and fdinfo shows it so; every watch
// epoll_ctl sets also waits for EPOLLERR and EPOLLHUP (do_epoll_ctl), and
// only another event fired could disarm it again, so a disarmed watch
// cannot be made.
const epPrivateBits = unix.EPOLLWAKEUP | unix.EPOLLONESHOT | unix.EPOLLET | unix.EPOLLEXCLUSIVE

// kcmpEpollTfd is KCMP_EPOLL_TFD (include/uapi/linux/kcmp.h): compare
// an fd's open file with the file of an epoll watch, named by a struct
// kcmp_epoll_slot.
const kcmpEpollTfd = 7

// kcmpEpollSlot is struct kcmp_epoll_slot: the epoll fd (of the second
// process), the watch's fd number and, among the watches under that
// number, which one (toff, counted in the order fdinfo lists them:
// fs/eventpoll.c ep_find_tfd and ep_show_fdinfo walk the same tree).
type kcmpEpollSlot struct{ efd, tfd, toff uint32 }

// Link finds the file of every watch whose fd number no longer names it.
// An epoll item is keyed by the file and the number it was added under,
// and outlives the fd while another keeps the file open (man 7 epoll,
// Q6), so the number may since have been closed, or reused by another
// file. Such a watch is restored when the file is open in some fd of a
// dumped process (the epoll's own process first): the restorer makes
// the number name that file for the add (restorer/c/restorer.c fixup).
// A file no dumped fd holds (only the epoll item, and something outside
// the dump: a process, an fd in flight) cannot be reached at restore,
// and is refused. Only an instance's first fd is looked at: the
// restorer adds the watches in its process, by it (Finish).
func (epollKind) Link(refs []Ref, opts LinkOptions) error {
	for _, r := range refs {
		if r.Fd.SharedWith >= 0 {
			continue
		}
		toff := map[int32]uint32{}
		for _, w := range r.Fd.GetEpoll().GetWatches() {
			slot := kcmpEpollSlot{efd: uint32(r.Fd.Fd), tfd: uint32(w.Tfd), toff: toff[w.Tfd]}
			toff[w.Tfd]++
			if watchesFile(r.Pid, int(w.Tfd), r.Pid, slot) {
				continue
			}
			pid, fd, ok := findWatchedFile(r.Pid, slot, opts.tables)
			if !ok {
				return fmt.Errorf("pid %d: epoll fd %d: the watch on fd %d (data %#x) is on a file that fd %d no longer names and that no fd of the dumped processes holds (closed since, or held outside the dump), which gocr cannot add again",
					r.Pid, r.Fd.Fd, w.Tfd, w.Data, w.Tfd)
			}
			w.FileElsewhere, w.FilePid, w.FileFd = true, int32(pid), int32(fd)
		}
	}
	return nil
}

// findWatchedFile looks for an fd of a dumped process, epPid's own
// first, that is the file of the watch slot names.
func findWatchedFile(epPid int, slot kcmpEpollSlot, tables []*gocrpb.Files) (pid, fd int, ok bool) {
	ordered := make([]*gocrpb.Files, 0, len(tables))
	for _, t := range tables {
		if int(t.Pid) == epPid {
			ordered = append([]*gocrpb.Files{t}, ordered...)
		} else {
			ordered = append(ordered, t)
		}
	}
	for _, t := range ordered {
		for _, f := range t.Fds {
			// An fd of stdio joined outside (no file) is given
			// another file at restore, and one the restored process
			// opens itself (FixupOpen) another open file.
			if f.File == nil || f.GetPath().GetProcPid() != 0 || (f.GetNamespace() != nil && !f.GetNamespace().GocrNamespace) {
				continue
			}
			if watchesFile(int(t.Pid), int(f.Fd), epPid, slot) {
				return int(t.Pid), int(f.Fd), true
			}
		}
	}
	return 0, 0, false
}

func (epollKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	nfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("epoll_create1: %w", err)
	}
	return s.AddFd(nfd, "epoll"), nil
}

// Finish adds the watches once per epoll instance: an fd that shares the
// instance (dup, fork) shares its watches too, and adding them again
// would fail with EEXIST (man 2 epoll_ctl).
func (epollKind) Finish(fd *gocrpb.Fd) []Fixup {
	if fd.SharedWith >= 0 {
		return nil
	}
	var out []Fixup
	for _, w := range fd.GetEpoll().GetWatches() {
		fx := Fixup{Op: FixupEpollAdd, Fd: fd.Fd, Target: w.Tfd, Events: w.Events, Data: w.Data}
		if w.FileElsewhere {
			fx.FileElsewhere, fx.FilePid, fx.FileFd = true, w.FilePid, w.FileFd
		}
		out = append(out, fx)
	}
	return out
}
