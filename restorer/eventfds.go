//go:build linux

package restorer

import (
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
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
	value := fd.TimerfdValueNs
	if value <= 0 && fd.TimerfdIntervalNs > 0 {
		// Due right at the dump: the next period starts now.
		value = fd.TimerfdIntervalNs
	}
	if value > 0 {
		spec := unix.ItimerSpec{
			Interval: unix.NsecToTimespec(fd.TimerfdIntervalNs),
			Value:    unix.NsecToTimespec(value),
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

// memfd recreates (once) a dumped memfd: same name, contents read back
// extent by extent from memfd-ID.img (holes stay holes), same size, and
// its seals added last, since they may forbid the writes that fill it
// (man 2 memfd_create, F_ADD_SEALS in man 2 fcntl).
func (s *sources) memfd(id uint64) (int32, error) {
	if n, ok := s.memfds[id]; ok {
		return n, nil
	}
	meta := s.memfdMeta[id]
	if meta == nil {
		return 0, fmt.Errorf("memfd %d is not described in the image", id)
	}
	flags := unix.MFD_CLOEXEC
	if meta.Seals != unix.F_SEAL_SEAL {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(meta.Name, flags)
	if err != nil {
		return 0, fmt.Errorf("memfd_create %q: %w", meta.Name, err)
	}
	n := s.addFd(fd, "memfd:"+meta.Name)
	img, size, err := s.dir.OpenMemfd(id)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	if size != meta.Size {
		return 0, fmt.Errorf("memfd %q: image holds %d bytes, expected %d", meta.Name, size, meta.Size)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return 0, fmt.Errorf("memfd %q: size %d: %w", meta.Name, size, err)
	}
	ifd := int(img.Fd())
	base := int64(images.PagesDataOffset)
	for off := base; off < base+size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: the rest is a hole
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		w := io.NewOffsetWriter(s.files[n-firstSource], data-base)
		if _, err := io.Copy(w, io.NewSectionReader(img, data, hole-data)); err != nil {
			return 0, fmt.Errorf("memfd %q: fill: %w", meta.Name, err)
		}
		off = hole
	}
	if flags&unix.MFD_ALLOW_SEALING != 0 && meta.Seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, int(meta.Seals)); err != nil {
			return 0, fmt.Errorf("memfd %q: add seals %#x: %w", meta.Name, meta.Seals, err)
		}
	}
	s.memfds[id] = n
	return n, nil
}
