//go:build linux

package restorer

import (
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	gocrpb "gocr/proto"
)

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, __u64)
// (include/uapi/linux/timerfd.h; needs CONFIG_CHECKPOINT_RESTORE).
const tfdIocSetTicks = 0x40085400

// timerfd recreates a timer with the time it had left and its interval
// (relative: the time the process was not running does not count, as for
// every timer gocr restores), and the expirations not yet read.
func (s *sources) timerfd(fd *gocrpb.Fd) (int32, error) {
	flags := unix.TFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.TFD_NONBLOCK
	}
	nfd, err := unix.TimerfdCreate(int(fd.TimerfdClockid), flags)
	if err != nil {
		return 0, fmt.Errorf("timerfd_create clock %d: %w", fd.TimerfdClockid, err)
	}
	n := s.addFd(nfd, "timerfd")
	if fd.TimerfdValueNs > 0 {
		spec := unix.ItimerSpec{
			Interval: unix.NsecToTimespec(fd.TimerfdIntervalNs),
			Value:    unix.NsecToTimespec(fd.TimerfdValueNs),
		}
		if err := unix.TimerfdSettime(nfd, 0, &spec, nil); err != nil {
			return 0, fmt.Errorf("timerfd_settime: %w", err)
		}
	}
	if fd.TimerfdTicks > 0 {
		if err := setTicks(nfd, fd.TimerfdTicks); err != nil {
			return 0, fmt.Errorf("timerfd: set %d unread expirations: %w", fd.TimerfdTicks, err)
		}
	}
	return n, nil
}

// inotify recreates an inotify instance with each watch under its dumped
// watch descriptor. Descriptors are handed out in turn after the last one
// (fs/notify/inotify/inotify_user.c, idr_alloc_cyclic from 1), so a gap is
// skipped by adding and removing a watch on a scratch file.
func (s *sources) inotify(fd *gocrpb.Fd) (int32, error) {
	flags := unix.IN_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.IN_NONBLOCK
	}
	nfd, err := unix.InotifyInit1(flags)
	if err != nil {
		return 0, fmt.Errorf("inotify_init1: %w", err)
	}
	n := s.addFd(nfd, "inotify")
	watches := append([]*gocrpb.InotifyWatch(nil), fd.InotifyWatches...)
	sort.Slice(watches, func(i, j int) bool { return watches[i].Wd < watches[j].Wd })
	var scratch string
	defer func() {
		if scratch != "" {
			os.Remove(scratch)
		}
	}()
	last := int32(0)
	for _, w := range watches {
		for last+1 < w.Wd {
			if scratch == "" {
				f, err := os.CreateTemp("", "gocr-inotify-")
				if err != nil {
					return 0, err
				}
				scratch = f.Name()
				f.Close()
			}
			wd, err := unix.InotifyAddWatch(nfd, scratch, unix.IN_ATTRIB)
			if err != nil {
				return 0, fmt.Errorf("inotify: skip watch descriptor %d: %w", last+1, err)
			}
			unix.InotifyRmWatch(nfd, uint32(wd))
			last = int32(wd)
		}
		// The mask as the kernel reports it includes bits only it
		// sets; IN_ALL_EVENTS and the flags a user may pass are what
		// inotify_add_watch accepts (include/uapi/linux/inotify.h).
		mask := w.Mask & (unix.IN_ALL_EVENTS | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK | unix.IN_ONESHOT | unix.IN_ONLYDIR)
		wd, err := unix.InotifyAddWatch(nfd, w.Path, mask)
		if err != nil {
			return 0, fmt.Errorf("inotify watch on %s: %w", w.Path, err)
		}
		if int32(wd) != w.Wd {
			return 0, fmt.Errorf("inotify watch on %s got descriptor %d, not the dumped %d", w.Path, wd, w.Wd)
		}
		last = int32(wd)
	}
	return n, nil
}
