package images

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrUntrusted is wrapped by the error for an image that a user other than
// the one running gocr (or root) could have written: such a user could
// make a restore run anything as the restoring user.
var ErrUntrusted = errors.New("another user could have written it (--trust-images reads it anyway)")

// section is an open image: size bytes from off in f. An image of a dump
// directory is its own file, from 0; one of a context read in place
// (OpenContext) is where its entry's data lies in the context.
type section struct {
	f    *os.File
	off  int64
	size int64
	path string // names it in messages
	own  bool   // f is the section's own, closed with it
}

func (s *section) close() {
	if s.own {
		s.f.Close()
	}
}

// reader reads the whole image.
func (s *section) reader() *io.SectionReader { return io.NewSectionReader(s.f, s.off, s.size) }

// openImage opens the image name in d for reading: in a context read in
// place, where its entry lies (contextImage); else its own file, and
// anything but a regular file is refused at once, before it is opened: a
// FIFO would block the open and every read, a device would be opened with
// whatever that does, a symbolic link could lead anywhere. The open itself is O_NOFOLLOW and
// O_NONBLOCK, in case the name was changed meanwhile into a link or a FIFO
// (open(2): "O_NONBLOCK ... has no effect for regular files"; fifo(7): a
// non-blocking open for reading succeeds at once), and what was opened is
// checked again with fstat. Unless d trusts every image, one that another
// user could have written (ErrUntrusted) is refused too.
func (d *Dir) openImage(name string) (*section, error) {
	if d.ctx != nil {
		return d.contextImage(name)
	}
	path := d.file(name)
	dirfd, rel := d.at(name)
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, formatErrorf(path, "is %s, not a regular file", fileType(st.Mode))
	}
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, formatErrorf(path, "is a symbolic link, not a regular file")
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	size, err := checkImageFile(fd, path, d.trust)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Back to ordinary reads before Go's os.File sees the descriptor.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &section{f: os.NewFile(uintptr(fd), path), size: size, path: path, own: true}, nil
}

// checkImageFile checks the open image fd: a regular file and, unless
// trust, one that only the user running gocr or root could have written
// (its owner, as an owner can always chmod; no group or other write bit).
// It returns the file's size.
func checkImageFile(fd int, path string, trust bool) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, formatErrorf(path, "is %s, not a regular file", fileType(st.Mode))
	}
	if trust {
		return st.Size, nil
	}
	uid := uint32(os.Geteuid())
	switch {
	case st.Uid != uid && st.Uid != 0:
		return 0, fmt.Errorf("image %s is owned by uid %d, not by you (uid %d) or root: %w", path, st.Uid, uid, ErrUntrusted)
	case st.Mode&0o022 != 0:
		return 0, fmt.Errorf("image %s is writable by its group or all users (mode %#o): %w", path, st.Mode&0o7777, ErrUntrusted)
	}
	return st.Size, nil
}
