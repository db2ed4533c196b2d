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
		if err := checkWatchedFile(e.Pid, w); err != nil {
			return fmt.Errorf("watch on fd %d: %w", w.Tfd, err)
		}
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

// checkWatchedFile refuses a watch whose fd number names another file
// than the one watched: an epoll item is keyed by the file and the number
// it was added under, and outlives the fd while another keeps the file
// open (man 7 epoll, Q6), so the number may since have been closed and
// reused. Re-added by number at restore, the watch would move onto the
// new file. fdinfo gives the watched file's inode and device, the
// kernel's dev_t (fs/eventpoll.c ep_show_fdinfo: MAJOR, MINOR of 20 bits,
// include/linux/kdev_t.h); a closed fd is Check's.
func checkWatchedFile(pid int, w proc.EpollWatch) error {
	if !w.HasFile {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, w.Tfd), &st); err != nil {
		return nil
	}
	dev := unix.Mkdev(w.Sdev>>20, w.Sdev&(1<<20-1))
	if st.Ino != w.Ino || st.Dev != dev {
		return fmt.Errorf("the fd now names another file than the one watched (inode %d, was %d), so gocr cannot restore the watch", st.Ino, w.Ino)
	}
	return nil
}

// Check refuses a watch on a closed fd: an epoll item outlives its fd
// while another fd keeps the file open (man 7 epoll, Q6), and could not be
// added back.
func (epollKind) Check(table *gocrpb.Files, fd *gocrpb.Fd) error {
	open := map[int32]bool{}
	for _, f := range table.Fds {
		open[f.Fd] = true
	}
	for _, w := range fd.GetEpoll().GetWatches() {
		if !open[w.Tfd] {
			return fmt.Errorf("epoll fd %d watches fd %d, which is closed: not supported", fd.Fd, w.Tfd)
		}
	}
	return nil
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
		out = append(out, Fixup{Op: FixupEpollAdd, Fd: fd.Fd, Target: w.Tfd, Events: w.Events, Data: w.Data})
	}
	return out
}
