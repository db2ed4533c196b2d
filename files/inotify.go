//go:build linux

package files

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// inotifyKind is an inotify(7) instance with its watches, each on the
// file it watched and under its watch descriptor. An instance with events
// queued is refused: nothing queues an event but the kernel.
type inotifyKind struct{}

func init() { register(inotifyKind{}) }

func (inotifyKind) Name() string { return "inotify" }

func (inotifyKind) Match(e *Entry) bool { return e.Target == "anon_inode:inotify" }

func (inotifyKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	if n, err := queuedBytes(e); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("%d bytes of events wait to be read, which gocr cannot queue again", n)
	}
	ws, err := proc.ReadInotify(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	in := &gocrpb.InotifyFd{}
	for _, w := range ws {
		path, deleted, err := inotifyPath(w)
		if err != nil {
			return fmt.Errorf("watch %d: %w", w.Wd, err)
		}
		iw := &gocrpb.InotifyWatch{Wd: int32(w.Wd), Path: path, Mask: w.Mask, IgnoredMask: w.IgnoredMask}
		if deleted != nil {
			// Restored on the deleted file made again, which the
			// dump saves only where an fd or a mapping of the job
			// holds it (dump/ghosts.go watchedGhosts).
			iw.Deleted = deleted
		}
		in.Watches = append(in.Watches, iw)
	}
	fd.Kind = &gocrpb.Fd_Inotify{Inotify: in}
	return nil
}

// fionread is FIONREAD (include/uapi/asm-generic/ioctls.h), the number
// golang.org/x/sys/unix names TIOCINQ only.
const fionread = unix.TIOCINQ

// queuedBytes is how many bytes of events e's notification instance
// holds: FIONREAD on an inotify or fanotify fd (man 7 inotify, man 7
// fanotify), asked through gocr's own fd of the same open file, which
// reads nothing.
func queuedBytes(e *Entry) (int, error) {
	own, err := takeFd(e.Pid, e.Fd)
	if err != nil {
		return 0, fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(own)
	n, err := unix.IoctlGetInt(own, fionread)
	if err != nil {
		return 0, fmt.Errorf("FIONREAD: %w", err)
	}
	return n, nil
}

// inotifyPath finds the file an inotify watch is on. fdinfo gives its file
// handle and the filesystem's device (the kernel's dev_t, major<<20|minor,
// include/linux/kdev_t.h; fs/notify/fdinfo.c inotify_fdinfo);
// open_by_handle_at(2) on any mount of that device opens it (a deleted
// file too, while the watch holds its inode: fs/fhandle.c, and a mark
// holds its inode, fs/notify/mark.c), and /proc/self/fd names it. For a
// deleted file it returns the path it had, and its identity.
func inotifyPath(w proc.InotifyWatch) (string, *gocrpb.FileRef, error) {
	major, minor := w.Sdev>>20, w.Sdev&0xfffff
	mnt, err := mountOf(major, minor)
	if err != nil {
		return "", nil, err
	}
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("open mount %s: %w", mnt, err)
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(w.HandleType, w.Handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", nil, fmt.Errorf("open watched file by handle: %w", err)
	}
	defer unix.Close(fd)
	path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", nil, err
	}
	if !strings.HasSuffix(path, " (deleted)") {
		return path, nil, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", nil, fmt.Errorf("stat watched file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", nil, fmt.Errorf("watched file %s is not a regular file", path)
	}
	return GhostPath(path), &gocrpb.FileRef{Path: GhostPath(path), Dev: st.Dev, Ino: st.Ino}, nil
}

// mountOf finds a mount point of the filesystem on major:minor in
// /proc/self/mountinfo (man 5 proc: field 3 is major:minor, field 5 the
// mount point).
func mountOf(major, minor uint32) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", major, minor)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[2] == want {
			return unescapeMountinfo(fields[4]), nil
		}
	}
	return "", fmt.Errorf("no mount of device %s", want)
}

// unescapeMountinfo undoes the octal escapes of space, tab, newline and
// backslash in mountinfo paths (fs/proc_namespace.c, mangle).
func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// Open recreates the inotify instance with each watch under its dumped
// watch descriptor. Descriptors are handed out in turn after the last one
// (fs/notify/inotify/inotify_user.c, idr_alloc_cyclic from 1), so a gap is
// skipped by adding and removing a watch on a scratch file.
func (inotifyKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	flags := unix.IN_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.IN_NONBLOCK
	}
	nfd, err := unix.InotifyInit1(flags)
	if err != nil {
		return 0, fmt.Errorf("inotify_init1: %w", err)
	}
	n := s.AddFd(nfd, "inotify")
	watches := append([]*gocrpb.InotifyWatch(nil), fd.GetInotify().GetWatches()...)
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
		path := w.Path
		if w.Deleted != nil {
			// The deleted file made again (ghost.go), unlinked
			// already: watched through gocr's own fd of it, the
			// /proc/self/fd link followed to the file itself (man 5
			// proc), once it is whole, so that nothing of its making
			// shows as an event.
			g, err := s.ghost(w.GhostFile)
			if err != nil {
				return 0, fmt.Errorf("inotify watch %d: %w", w.Wd, err)
			}
			path = fmt.Sprintf("/proc/self/fd/%d", s.File(g.ro).Fd())
			mask &^= unix.IN_DONT_FOLLOW
		}
		wd, err := unix.InotifyAddWatch(nfd, path, mask)
		if err != nil {
			return 0, fmt.Errorf("inotify watch on %s: %w", w.Path, err)
		}
		if int32(wd) != w.Wd {
			return 0, fmt.Errorf("inotify watch on %s got descriptor %d, not the dumped %d", w.Path, wd, w.Wd)
		}
		last = int32(wd)
	}
	// Removing a scratch watch queued an IN_IGNORED event (man 7
	// inotify); the dumped instance had none queued (Dump), so whatever
	// is queued now is the restore's own and is read away. So it is
	// once more when the processes have every file and do not run yet
	// (Settle): gocr's own files closed meanwhile, or opened after this
	// one, may have queued more.
	s.OnSettle(settleDrain, func() error { return drainInotify(nfd) })
	return n, drainInotify(nfd)
}

// drainInotify reads every event queued on inotify fd fd: FIONREAD says
// how many bytes, and one read of that many takes them all.
func drainInotify(fd int) error {
	n, err := unix.IoctlGetInt(fd, fionread)
	if err != nil {
		return fmt.Errorf("inotify: FIONREAD: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := unix.Read(fd, make([]byte, n)); err != nil {
		return fmt.Errorf("inotify: read the restore's own events: %w", err)
	}
	return nil
}
