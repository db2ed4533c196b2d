//go:build linux

package restorer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// Mapped files whose contents the dump saved (gocr dump --save, and files
// deleted or replaced since they were mapped: dump/savefiles.go).
//
// A mapping of such a file is restored from the file at its path when
// that is the file the job mapped, unchanged (the same device, inode,
// size, mtime and ctime: nothing can have written it), or a file with the
// same contents (size and SHA-256): either way the job sees what it saw,
// and keeps seeing the file as before (/proc/PID/maps names it, other
// processes share its pages). Otherwise (missing, changed, or not
// reachable by its path at the dump) the mapping is restored from a copy
// of the saved contents: a memfd made once per file, which every mapping
// of it in every process maps with its dumped protection and flags. A
// MAP_PRIVATE mapping of the copy is copy-on-write as the file's was, and
// the pages the job had written come from the page image as always. Its
// /proc/PID/maps line names the copy ("/memfd:PATH (deleted)"); so does
// /proc/PID/exe when the executable is restored from its copy.
//
// A writable MAP_SHARED mapping is never saved (dump/savefiles.go): a
// copy would take the job's writes away from the file. Restoring it needs
// the file, as before.

// applySavedFiles decides, for each saved file, whether the restore maps
// the file at its path or a copy, makes the copies (sources), and points
// every process's plan at them. It runs before anything is created.
func applySavedFiles(procs []*proc, src *files.Sources) error {
	copies := map[uint64]int32{}
	decided := map[uint64]bool{}
	for _, pr := range procs {
		if pr.mm == nil {
			continue
		}
		for _, sf := range pr.mm.SavedFiles {
			if decided[sf.Id] {
				continue
			}
			decided[sf.Id] = true
			if sf.File == nil {
				return fmt.Errorf("restore pid %d: saved file %d has no path in the image", pr.task.Pid, sf.Id)
			}
			if !needsCopy(sf) {
				continue
			}
			f, err := savedCopy(src.Dir, sf)
			if err != nil {
				return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
			}
			copies[sf.Id] = src.Add(f)
		}
	}
	for _, pr := range procs {
		if pr.mm == nil {
			continue
		}
		if err := pr.plan.useSavedCopies(pr.mm, copies); err != nil {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	return nil
}

// useSavedCopies points the process's mappings of saved files that are
// restored from copies (copies: saved file id to source) at them, and its
// exe link at its executable's copy, if it is one.
func (p *plan) useSavedCopies(mm *gocrpb.Mm, copies map[uint64]int32) error {
	listed := map[uint64]bool{}
	for _, sf := range mm.SavedFiles {
		listed[sf.Id] = true
	}
	if mm.ExeSavedFile != 0 && !listed[mm.ExeSavedFile] {
		return fmt.Errorf("the executable's saved file %d is not in the image", mm.ExeSavedFile)
	}
	p.saved = map[uint64]int32{}
	var exeMapping *gocrpb.Vma
	for _, v := range mm.Vmas {
		if v.SavedFile == 0 {
			continue
		}
		if !listed[v.SavedFile] {
			return fmt.Errorf("mapping %#x-%#x: saved file %d is not in the image", v.Start, v.End, v.SavedFile)
		}
		n, ok := copies[v.SavedFile]
		if !ok {
			continue
		}
		if v.Kind == gocrpb.VmaKind_VMA_FILE_SHARED && hasFlag(v.VmFlags, "mw") {
			return fmt.Errorf("mapped file %s is missing or changed, and the process may write to it through a shared mapping (%#x-%#x): restoring it from its saved copy would keep those writes from the file", v.File.GetPath(), v.Start, v.End)
		}
		p.saved[v.SavedFile] = n
		if v.SavedFile == mm.ExeSavedFile && exeMapping == nil {
			exeMapping = v
		}
	}
	if _, ok := copies[mm.ExeSavedFile]; ok && mm.ExeSavedFile != 0 {
		if exeMapping == nil {
			return fmt.Errorf("executable %s is missing or changed, and the process maps none of it to restore from its saved copy", mm.Exe.GetPath())
		}
		// PR_SET_MM_MAP takes the exe link from an fd the restorer opens
		// by this path once the mappings are in place: map_files opens
		// the file a mapping maps, here the copy (man 5 proc).
		p.args.ExePathOff = p.str(fmt.Sprintf("/proc/self/map_files/%x-%x", exeMapping.Start, exeMapping.End))
	}
	return nil
}

// needsCopy tells whether a saved file's mappings are restored from its
// copy: its path led elsewhere at the dump, or the file there now is
// neither the same file unchanged nor one with the same contents.
func needsCopy(sf *gocrpb.SavedFile) bool {
	if sf.Detached {
		return true
	}
	ref := sf.File
	var st unix.Stat_t
	if err := unix.Stat(ref.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != ref.Size {
		return true
	}
	if st.Dev == ref.Dev && st.Ino == ref.Ino && st.Mtim.Nano() == ref.MtimeNs && st.Ctim.Nano() == sf.CtimeNs {
		return false
	}
	f, err := os.Open(ref.Path)
	if err != nil {
		return true
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return err != nil || n != ref.Size || !bytes.Equal(h.Sum(nil), sf.Sha256)
}

// mfdNameMax is the longest memfd name (mm/memfd.c MFD_NAME_MAX_LEN).
const mfdNameMax = 249

// savedCopy makes the copy of a saved file: a memfd named after its path
// (the end of it, for a long one), filled from file-ID.img with its holes,
// checked against the dumped SHA-256, with the file's permission bits
// (exec matters for an executable: PR_SET_MM_MAP requires it, kernel/sys.c
// prctl_set_mm_exe_file; set-id bits are dropped) and a memfd's seals. It is returned
// read-only and with no writable fd left: PR_SET_MM_MAP refuses an exe
// file open for writing (kernel/fork.c replace_mm_exe_file, deny write
// access), and nothing may change it.
func savedCopy(dir *images.Dir, sf *gocrpb.SavedFile) (*os.File, error) {
	name := sf.File.Path
	if len(name) > mfdNameMax {
		name = name[len(name)-mfdNameMax:]
	}
	// MFD_EXEC (Linux 6.3) keeps the exec bits vm.memfd_noexec would
	// otherwise take away; older kernels refuse it with EINVAL and make
	// every memfd executable (man 2 memfd_create).
	flags := unix.MFD_CLOEXEC
	// A file made without MFD_ALLOW_SEALING shows F_SEAL_SEAL alone, as
	// does a tmpfs file (mm/memfd.c, mm/shmem.c).
	seals := int(sf.Seals) &^ unix.F_SEAL_SEAL
	if seals != 0 {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("copy of saved file %s: memfd_create: %w", sf.File.Path, err)
	}
	w := os.NewFile(uintptr(fd), "memfd:"+name)
	defer w.Close()
	if err := fillCopy(dir, sf, w); err != nil {
		return nil, fmt.Errorf("copy of saved file %s: %w", sf.File.Path, err)
	}
	if err := w.Chmod(os.FileMode(sf.Mode & 0o777)); err != nil {
		return nil, fmt.Errorf("copy of saved file %s: %w", sf.File.Path, err)
	}
	// Last: a seal may forbid the writes and the chmod before it.
	if seals != 0 {
		if _, err := unix.FcntlInt(w.Fd(), unix.F_ADD_SEALS, int(sf.Seals)); err != nil {
			return nil, fmt.Errorf("copy of saved file %s: add seals %#x: %w", sf.File.Path, sf.Seals, err)
		}
	}
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", w.Fd()))
	if err != nil {
		return nil, fmt.Errorf("copy of saved file %s: reopen read-only: %w", sf.File.Path, err)
	}
	return r, nil
}

// fillCopy fills w with file-ID.img's data at the file's own offsets,
// checked against the SHA-256 the dump recorded (images.Data.FillFile).
func fillCopy(dir *images.Dir, sf *gocrpb.SavedFile, w *os.File) error {
	img, err := dir.OpenSavedFile(sf.Id)
	if err != nil {
		return err
	}
	defer img.Close()
	size := img.Size
	if size != sf.File.Size {
		return fmt.Errorf("file-%d.img holds %d bytes, the file had %d", sf.Id, size, sf.File.Size)
	}
	if err := img.FillFile(w, sf.Sha256); err != nil {
		return fmt.Errorf("file-%d.img: %w", sf.Id, err)
	}
	return nil
}
