//go:build linux

package dump

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

func isMemfdPath(p string) bool { return strings.HasPrefix(p, memfdPrefix) }

func memfdName(p string) string {
	return strings.TrimSuffix(strings.TrimPrefix(p, memfdPrefix), " (deleted)")
}

// dumpMemfds saves every memfd the processes use, through an fd or a
// mapping, once: its contents go to memfd-ID.img (only the data extents:
// lseek SEEK_DATA/SEEK_HOLE, man 2 lseek), its name, size and seals to the
// Files image of each process that uses it.
func dumpMemfds(dir *images.Dir, states []*state) error {
	done := map[uint64]*gocrpb.Memfd{}
	for _, st := range states {
		if st.files == nil {
			continue
		}
		pid := int(st.task.Pid)
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
			st.files.Memfds = append(st.files.Memfds, m)
			return nil
		}
		for _, f := range st.files.Fds {
			if f.Kind != gocrpb.FdKind_FD_MEMFD {
				continue
			}
			fd := f.Fd
			if err := add(f.MemfdId, func() (*os.File, error) {
				return os.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
			}, memfdName(f.Description)); err != nil {
				return fmt.Errorf("pid %d fd %d: %w", pid, fd, err)
			}
		}
		for _, v := range st.mm.Vmas {
			if v.MemfdId == 0 {
				continue
			}
			start, end := v.Start, v.End
			// map_files opens the mapped file itself (man 5 proc).
			if err := add(v.MemfdId, func() (*os.File, error) {
				return os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, start, end))
			}, memfdName(v.Name)); err != nil {
				return fmt.Errorf("pid %d mapping %#x-%#x: %w", pid, start, end, err)
			}
		}
	}
	return nil
}

func saveMemfd(dir *images.Dir, id uint64, name string, src *os.File) (*gocrpb.Memfd, error) {
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	m := &gocrpb.Memfd{Id: id, Name: name, Size: st.Size()}
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
