//go:build linux

package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// memfdPrefix is how a memfd's name shows in /proc/PID/fd and maps
// (mm/memfd.c: the file is named "memfd:" + name, and is always unlinked).
const memfdPrefix = "/memfd:"

// IsMemfdPath tells whether a /proc fd link or maps path names a memfd.
func IsMemfdPath(p string) bool { return strings.HasPrefix(p, memfdPrefix) }

func memfdName(p string) string {
	return strings.TrimSuffix(strings.TrimPrefix(p, memfdPrefix), " (deleted)")
}

// memfdKind is an fd of a memfd_create(2) file. No path leads back to a
// memfd, so each one the processes use, through an fd or a mapping, is
// saved whole, once (SaveMemfds), and recreated once at restore.
type memfdKind struct{}

func init() { register(memfdKind{}) }

func (memfdKind) Name() string { return "memfd" }

func (memfdKind) Match(e *Entry) bool { return e.Type() == unix.S_IFREG && IsMemfdPath(e.Target) }

func (memfdKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	fd.Kind = &gocrpb.Fd_Memfd{Memfd: &gocrpb.MemfdFd{Id: e.Stat.Ino}}
	return nil
}

func (memfdKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	m, err := s.Memfd(fd.GetMemfd().GetId())
	if err != nil {
		return 0, err
	}
	// Its own open file description of the memfd, with the dumped
	// flags and offset.
	flags := int(fd.Flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC) | unix.O_CLOEXEC
	nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", s.File(m).Fd()), flags, 0)
	if err != nil {
		return 0, fmt.Errorf("reopen memfd: %w", err)
	}
	n := s.AddFd(nfd, fd.Description)
	if _, err := unix.Seek(nfd, fd.Pos, unix.SEEK_SET); err != nil {
		return 0, fmt.Errorf("seek memfd to %d: %w", fd.Pos, err)
	}
	return n, nil
}

// SaveMemfds saves every memfd the processes use, through an fd or a
// mapping, once: its contents go to memfd-ID.img (only the data extents:
// lseek SEEK_DATA/SEEK_HOLE, man 2 lseek), its name, size and seals to
// the Files image of each process that uses it. tables[i] and mms[i] are
// one process's.
func SaveMemfds(dir *images.Dir, tables []*gocrpb.Files, mms []*gocrpb.Mm) error {
	done := map[uint64]*gocrpb.Memfd{}
	for i, table := range tables {
		pid := int(table.Pid)
		have := map[uint64]bool{}
		add := func(id uint64, open func() (*os.File, error), name string) error {
			if have[id] {
				return nil
			}
			have[id] = true
			m := done[id]
			if m == nil {
				f, err := open()
				if err != nil {
					return err
				}
				m, err = saveMemfd(dir, id, name, f)
				f.Close()
				if err != nil {
					return fmt.Errorf("memfd %q: %w", name, err)
				}
				done[id] = m
			}
			table.Memfds = append(table.Memfds, m)
			return nil
		}
		for _, f := range table.Fds {
			m := f.GetMemfd()
			if m == nil {
				continue
			}
			fd := f.Fd
			if err := add(m.Id, func() (*os.File, error) {
				return os.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
			}, memfdName(f.Description)); err != nil {
				return fmt.Errorf("pid %d fd %d: %w", pid, fd, err)
			}
		}
		for _, v := range mms[i].GetVmas() {
			if v.MemfdId == 0 {
				continue
			}
			// map_files opens the mapped file itself, and its link is
			// the file's name as it is: maps escapes a newline in it
			// (man 5 proc; fs/proc/task_mmu.c show_map_vma).
			mapFile := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.Start, v.End)
			link, err := os.Readlink(mapFile)
			if err != nil {
				return fmt.Errorf("pid %d mapping %#x-%#x: %w", pid, v.Start, v.End, err)
			}
			if err := add(v.MemfdId, func() (*os.File, error) { return os.Open(mapFile) }, memfdName(link)); err != nil {
				return fmt.Errorf("pid %d mapping %#x-%#x: %w", pid, v.Start, v.End, err)
			}
		}
	}
	return nil
}

func saveMemfd(dir *images.Dir, id uint64, name string, src *os.File) (*gocrpb.Memfd, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, err
	}
	m := &gocrpb.Memfd{Id: id, Name: name, Size: st.Size, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid}
	// F_GET_SEALS (man 2 fcntl): a memfd made without
	// MFD_ALLOW_SEALING reports F_SEAL_SEAL.
	seals, err := unix.FcntlInt(src.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("F_GET_SEALS: %w", err)
	}
	m.Seals = uint32(seals)
	out, err := dir.CreateMemfd(id)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	fd := int(src.Fd())
	for off := int64(0); off < m.Size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE: %w", err)
		}
		w := io.NewOffsetWriter(out, images.PagesDataOffset+data)
		if _, err := io.Copy(w, io.NewSectionReader(src, data, hole-data)); err != nil {
			return nil, err
		}
		off = hole
	}
	if err := out.Truncate(images.PagesDataOffset + m.Size); err != nil {
		return nil, err
	}
	if err := images.FinishPages(out, m.Size); err != nil {
		return nil, err
	}
	return m, nil
}

// Memfd is the source of a dumped memfd, recreated the first time it is
// asked for (by an fd, or by a mapping of the restorer's plan).
func (s *Sources) Memfd(id uint64) (int32, error) {
	return once(s, memfdKey(id), func() (int32, error) { return s.makeMemfd(id) })
}

type memfdKey uint64

// makeMemfd recreates a dumped memfd: same name, owner and mode, contents
// read back extent by extent from memfd-ID.img (holes stay holes), same
// size, and its seals added last, since they may forbid the writes that
// fill it (man 2 memfd_create, F_ADD_SEALS in man 2 fcntl).
func (s *Sources) makeMemfd(id uint64) (int32, error) {
	meta := s.memfds[id]
	if meta == nil {
		return 0, fmt.Errorf("memfd %d is not described in the image", id)
	}
	fd, err := createMemfd(meta)
	if err != nil {
		return 0, fmt.Errorf("memfd_create %q: %w", meta.Name, err)
	}
	n := s.AddFd(fd, "memfd:"+meta.Name)
	// Owner first: chown clears the set-user-ID and set-group-ID bits
	// (man 2 chown), which the mode then sets again.
	if err := unix.Fchown(fd, int(meta.Uid), int(meta.Gid)); err != nil {
		return 0, fmt.Errorf("memfd %q: owner %d:%d: %w", meta.Name, meta.Uid, meta.Gid, err)
	}
	if meta.Mode != 0 {
		if err := unix.Fchmod(fd, meta.Mode&07777); err != nil {
			return 0, fmt.Errorf("memfd %q: mode %#o: %w", meta.Name, meta.Mode&07777, err)
		}
	}
	img, err := s.Dir.OpenMemfd(id)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	size := img.Size
	if size != meta.Size {
		return 0, fmt.Errorf("memfd %q: image holds %d bytes, expected %d", meta.Name, size, meta.Size)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return 0, fmt.Errorf("memfd %q: size %d: %w", meta.Name, size, err)
	}
	ifd := int(img.Fd())
	base := img.Off
	for off := base; off < base+size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if err != nil || data >= base+size {
			break // ENXIO, or only checksums follow: the rest is a hole
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		// The data's checksums follow it in the image.
		hole = min(hole, base+size)
		w := io.NewOffsetWriter(s.File(n), data-base)
		if _, err := io.Copy(w, io.NewSectionReader(img, data, hole-data)); err != nil {
			return 0, fmt.Errorf("memfd %q: fill: %w", meta.Name, err)
		}
		off = hole
	}
	if meta.Seals != unix.F_SEAL_SEAL && meta.Seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, int(meta.Seals)); err != nil {
			return 0, fmt.Errorf("memfd %q: add seals %#x: %w", meta.Name, meta.Seals, err)
		}
	}
	return n, nil
}

// createMemfd makes the memfd meta describes, with the seals and mode
// bits memfd_create itself decides (mm/memfd.c):
//   - only F_SEAL_SEAL: it was made without MFD_ALLOW_SEALING, and no
//     seal can ever be added;
//   - F_SEAL_EXEC and no exec bit: MFD_NOEXEC_SEAL makes exactly that
//     (mode 0666, F_SEAL_EXEC), whatever vm.memfd_noexec says;
//   - otherwise MFD_EXEC (mode 0777, no F_SEAL_EXEC), which vm.memfd_noexec
//     = 1 would not give by default; the mode is set afterwards.
//
// Before Linux 6.3 there is neither flag nor F_SEAL_EXEC, and every memfd
// is made 0777 (memfd_create refuses unknown flags with EINVAL).
func createMemfd(meta *gocrpb.Memfd) (int, error) {
	flags := unix.MFD_CLOEXEC
	switch {
	case meta.Seals&unix.F_SEAL_EXEC != 0 && meta.Mode&0o111 == 0:
		flags |= unix.MFD_NOEXEC_SEAL
	case meta.Seals == unix.F_SEAL_SEAL:
		flags |= unix.MFD_EXEC
	default:
		flags |= unix.MFD_EXEC | unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(meta.Name, flags)
	if errors.Is(err, unix.EINVAL) && meta.Seals&unix.F_SEAL_EXEC == 0 {
		fd, err = unix.MemfdCreate(meta.Name, flags&^unix.MFD_EXEC)
	}
	return fd, err
}
