//go:build linux

package dump

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/proc"
)

// SaveFiles says which mapped files' contents a dump saves in its images
// (file-ID.img), so that the job can be restored where they are missing or
// have changed: on another node, after a rebuild. These are BLCR's
// cr_checkpoint --save-exe, --save-private and --save-shared. Whatever
// they say, a file mapped privately that was deleted or replaced since it
// was mapped is saved, as BLCR saved unlinked files: no path leads to it
// any more.
type SaveFiles struct {
	Exe     bool // the executable's mappings
	Private bool // every file mapped MAP_PRIVATE: the executable and its libraries
	// Shared: every file mapped MAP_SHARED that the job cannot write
	// through the mapping. A writable one is never saved: restored to a
	// copy, the job's writes would no longer reach the file.
	Shared bool
}

// ParseSave reads --save values ("exe", "private", "shared", "all",
// "none", each possibly a comma-separated list) from left to right, as
// BLCR read its --save-* options: each adds its files, and "none" drops
// what came before it. No value saves none, BLCR's default.
func ParseSave(values []string) (SaveFiles, error) {
	var s SaveFiles
	for _, v := range values {
		for _, w := range strings.Split(v, ",") {
			switch strings.TrimSpace(w) {
			case "exe":
				s.Exe = true
			case "private":
				s.Private = true
			case "shared":
				s.Shared = true
			case "all":
				s = SaveFiles{Exe: true, Private: true, Shared: true}
			case "none":
				s = SaveFiles{}
			default:
				return SaveFiles{}, fmt.Errorf("invalid --save %q: use exe, private, shared, all or none", w)
			}
		}
	}
	return s, nil
}

// fileKey is a file's identity: its device and inode.
type fileKey struct{ dev, ino uint64 }

// fileSaver saves each mapped file the dump keeps the contents of once,
// however many mappings and processes map it.
type fileSaver struct {
	dir   *images.Dir
	opts  SaveFiles
	saved map[fileKey]*gocrpb.SavedFile
}

func newFileSaver(dir *images.Dir, opts SaveFiles) *fileSaver {
	return &fileSaver{dir: dir, opts: opts, saved: map[fileKey]*gocrpb.SavedFile{}}
}

// mapFiles is the /proc entry that opens the file a mapping maps, the very
// file, whatever its path names now (man 5 proc, /proc/PID/map_files).
func mapFiles(pid int, m proc.Mapping) string {
	return fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End)
}

// wants tells whether the mapping m of a file is restored from saved
// contents. detached: its path no longer leads to the file. exe: it maps
// the executable (decided only when it matters, since it costs a stat).
func (s *fileSaver) wants(pid int, m proc.Mapping, detached bool, exe fileKey) bool {
	if m.Shared {
		return s.opts.Shared && !m.HasVmFlag("mw")
	}
	if detached || s.opts.Private {
		return true
	}
	if !s.opts.Exe {
		return false
	}
	var st unix.Stat_t
	return unix.Stat(mapFiles(pid, m), &st) == nil && (fileKey{st.Dev, st.Ino}) == exe
}

// save saves the file mapping m maps, unless a mapping seen before mapped
// the same file, lists it in mm and returns its id and what the mapping's
// file looked like; id 0 for a file that is not regular, whose path
// still leads to it, which is left to its path.
func (s *fileSaver) save(mm *gocrpb.Mm, m proc.Mapping, path string, detached bool) (uint64, *gocrpb.FileRef, error) {
	f, err := os.Open(mapFiles(int(mm.Pid), m))
	if err != nil {
		return 0, nil, fmt.Errorf("open the mapped file: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, nil, fmt.Errorf("stat the mapped file: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		if !detached {
			return 0, nil, nil // a device: mapped by its path, as without --save
		}
		return 0, nil, fmt.Errorf("%s is not a regular file: its contents cannot be saved", path)
	}
	sf, err := s.saveOnce(f, &st, path, detached)
	if err != nil {
		return 0, nil, err
	}
	listed := false
	for _, have := range mm.SavedFiles {
		listed = listed || have.Id == sf.Id
	}
	if !listed {
		mm.SavedFiles = append(mm.SavedFiles, sf)
	}
	return sf.Id, sf.File, nil
}

// saveOnce saves the contents of f (whose stat is st) in file-ID.img,
// unless they are saved already, and returns what describes them.
func (s *fileSaver) saveOnce(f *os.File, st *unix.Stat_t, path string, detached bool) (*gocrpb.SavedFile, error) {
	key := fileKey{st.Dev, st.Ino}
	if sf := s.saved[key]; sf != nil {
		return sf, nil
	}
	sf := &gocrpb.SavedFile{
		Id:       uint64(len(s.saved) + 1),
		File:     &gocrpb.FileRef{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()},
		CtimeNs:  st.Ctim.Nano(),
		Mode:     st.Mode,
		Detached: detached,
	}
	// Only shmem files have seals (mm/memfd.c memfd_fcntl: EINVAL
	// elsewhere).
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil {
		sf.Seals = uint32(seals)
	}
	var err error
	if sf.Sha256, err = s.copyContents(sf.Id, f, st.Size); err != nil {
		return nil, fmt.Errorf("save %s: %w", path, err)
	}
	s.saved[key] = sf
	return sf, nil
}

// copyContents writes the first size bytes of src into file-ID.img, only
// its data extents (lseek SEEK_DATA/SEEK_HOLE, man 2 lseek), and returns
// their SHA-256, holes counted as the zeros they read as.
func (s *fileSaver) copyContents(id uint64, src *os.File, size int64) ([]byte, error) {
	out, err := s.dir.CreateSavedFile(id)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	sum := sha256.New()
	fd := int(src.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = size // only a hole is left
		} else if err != nil {
			return nil, fmt.Errorf("SEEK_DATA: %w", err)
		}
		data = min(data, size)
		if err := hashZeros(sum, data-off); err != nil {
			return nil, err
		}
		if data == size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE: %w", err)
		}
		hole = min(hole, size)
		w := io.NewOffsetWriter(out, images.PagesDataOffset+data)
		n, err := io.Copy(io.MultiWriter(w, sum), io.NewSectionReader(src, data, hole-data))
		if err != nil {
			return nil, err
		}
		if n != hole-data {
			return nil, fmt.Errorf("the file shrank while it was saved (%d bytes at %d, want %d)", n, data, hole-data)
		}
		off = hole
	}
	if err := out.Truncate(images.PagesDataOffset + size); err != nil {
		return nil, err
	}
	if err := images.FinishPages(out, size); err != nil {
		return nil, err
	}
	return sum.Sum(nil), nil
}

var zeros [64 << 10]byte

func hashZeros(h hash.Hash, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := h.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// exeFile is the executable as /proc/PID/exe shows it.
type exeFile struct {
	ref *gocrpb.FileRef
	key fileKey // the running executable itself
	// detached says why its path no longer leads to it ("was deleted",
	// "was replaced since it started"), or is "".
	detached string
	// memfd: it is a memfd (a program run from one, or restored from a
	// saved copy: restorer/savedfiles.go).
	memfd bool
}

func collectExe(pid int) (exeFile, error) {
	link, err := proc.Exe(pid)
	if err != nil {
		return exeFile{}, err
	}
	var e exeFile
	var st unix.Stat_t
	// stat through the link follows to the running file itself (man 5 proc).
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		return exeFile{}, fmt.Errorf("executable: %w", err)
	}
	e.key = fileKey{st.Dev, st.Ino}
	if path, ok := strings.CutSuffix(link, " (deleted)"); ok {
		e.ref = &gocrpb.FileRef{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}
		e.detached = "was deleted"
		if e.memfd = files.IsMemfdPath(link); e.memfd {
			// Saved like a deleted file, under its memfd's name (a copy
			// restored from a saved file gets its path back).
			e.ref.Path = strings.TrimPrefix(path, "/memfd:")
			return e, checkExeMemfdFds(pid, e)
		}
		return e, nil
	}
	if e.ref, err = fileRef(link); err != nil {
		return exeFile{}, fmt.Errorf("executable: %w", err)
	}
	if (fileKey{e.ref.Dev, e.ref.Ino}) != e.key {
		e.detached = "was replaced since it started (gocr dump --save=exe saves it)"
	}
	return e, nil
}

// checkExeMemfdFds refuses an executable memfd that the process also has
// open: its mappings are restored from a saved copy, its fds from a
// recreated memfd (files/memfd.go), which would be two files.
func checkExeMemfdFds(pid int, e exeFile) error {
	fds, err := proc.ListFds(pid)
	if err != nil {
		return err
	}
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &st) == nil && (fileKey{st.Dev, st.Ino}) == e.key {
			return fmt.Errorf("executable memfd %q is also open as fd %d: not supported", e.ref.Path, fd)
		}
	}
	return nil
}

// sameFile tells whether path (followed) is the file key names.
func sameFile(path string, key fileKey) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && (fileKey{st.Dev, st.Ino}) == key
}

func savedIn(mm *gocrpb.Mm, id uint64) bool {
	for _, sf := range mm.SavedFiles {
		if sf.Id == id {
			return true
		}
	}
	return false
}

// saveMapped decides for the file mapping v (from m) whether its file's
// contents are saved, and saves them (fileSaver). A file whose path no
// longer leads to it is refused unless it is saved.
func saveMapped(saver *fileSaver, mm *gocrpb.Mm, m proc.Mapping, v *gocrpb.Vma, exe exeFile) error {
	if v.Kind != gocrpb.VmaKind_VMA_FILE_PRIVATE && v.Kind != gocrpb.VmaKind_VMA_FILE_SHARED {
		return nil
	}
	path := m.Path
	detached := ""
	switch {
	case v.MemfdId != 0:
		// A memfd is saved whole (files.SaveMemfds), unless it is the
		// executable: PR_SET_MM_MAP takes no exe file open for writing,
		// as a recreated memfd is, so the restore maps a read-only copy.
		if !exe.memfd || m.Shared || m.Inode != exe.key.ino || !sameFile(mapFiles(int(mm.Pid), m), exe.key) {
			return nil
		}
		v.MemfdId = 0
		path, detached = exe.ref.Path, "is a memfd"
	case m.Deleted && m.Shared:
		// Shared with the file itself, and with the fds the job may
		// have of it: the file is made again (saveGhosts).
		return nil
	case m.Deleted:
		path = strings.TrimSuffix(path, " (deleted)")
		detached = fmt.Sprintf("file %s was deleted", path)
	case v.File.Ino != m.Inode:
		detached = fmt.Sprintf("file %s was replaced since it was mapped", path)
	}
	if !saver.wants(int(mm.Pid), m, detached != "", exe.key) {
		if detached != "" {
			return fmt.Errorf("mapping %#x-%#x: %s", m.Start, m.End, detached)
		}
		return nil
	}
	id, ref, err := saver.save(mm, m, path, detached != "")
	if err != nil {
		return fmt.Errorf("mapping %#x-%#x: %w", m.Start, m.End, err)
	}
	if id != 0 {
		v.SavedFile, v.File = id, ref
	}
	return nil
}
