//go:build linux

package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// ghostKind is an fd of a regular file deleted while it was open (a temp
// file unlinked after open, a log removed under its writer): /proc shows
// its link as "PATH (deleted)" (fs/d_path.c d_path) and no path leads to
// it. Its contents are saved once per file (dev, ino), with the mappings
// of it (dump/ghosts.go), and at restore the file is made again at PATH,
// opened there for every fd and mapping, unlinked and filled: the
// restored fds show "PATH (deleted)", with st_nlink 0, as before. CRIU
// calls these ghost files.
type ghostKind struct{}

func init() { register(ghostKind{}) }

func (ghostKind) Name() string { return "ghost" }

func (ghostKind) Match(e *Entry) bool {
	return e.Type() == unix.S_IFREG && e.Deleted() && strings.HasPrefix(e.Target, "/") &&
		!IsMemfdPath(e.Target) && !isMqueue(e) && !procFileGone(e)
}

func (ghostKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	if err := checkSecretMem(e); err != nil {
		return err
	}
	if err := CheckGhost(e); err != nil {
		if e.Fd <= unix.Stderr && len(fd.Locks) == 0 {
			// Stdio gocr cannot make again (a log rotated by
			// deleting it and making a new one): joined outside the
			// dump, for the restore to be given a file, as any stdio
			// no kind restores (Collect).
			GhostOutside(fd)
			return nil
		}
		return err
	}
	fd.File.Path = GhostPath(e.Target)
	// The id is the file's once its contents are saved (dump/ghosts.go).
	fd.Kind = &gocrpb.Fd_Ghost{Ghost: &gocrpb.GhostFd{}}
	return nil
}

// secretMemMagic is SECRETMEM_MAGIC (include/uapi/linux/magic.h), the
// file system of memfd_secret(2)'s files.
const secretMemMagic = 0x5345434d

// checkSecretMem refuses an fd of memfd_secret(2) memory, which /proc
// names "/secretmem (deleted)" (mm/secretmem.c secretmem_file_create):
// no process but one that maps it can read its pages (man 2
// memfd_secret), so its contents cannot be saved. The file system's magic
// tells it from a deleted file of that name.
func checkSecretMem(e *Entry) error {
	if e.Target != "/secretmem (deleted)" {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/fd/%d", e.Pid, e.Fd), &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type == secretMemMagic {
		return errors.New("it is memfd_secret memory, which no other process can read")
	}
	return nil
}

// GhostOutside dumps fd, stdio on a deleted file, as joined outside the
// dump instead (inherit.go): the restore needs --inherit-fd to give it a
// file, as for stdio on any file gocr does not restore.
func GhostOutside(fd *gocrpb.Fd) { setInherit(fd, unix.S_IFREG, true) }

// GhostPath is the path a deleted file had: its /proc link without the
// " (deleted)" the kernel appends.
func GhostPath(link string) string { return strings.TrimSuffix(link, " (deleted)") }

// CheckGhost refuses a deleted file, named by an fd or a mapping as e
// shows it, that gocr cannot make again exactly: one with a link left
// elsewhere (the restore would make a second file where the job has one),
// a set-id one (made again by a restore from images, it would run with
// its owner's rights), one on a mount no one sees (an internal one: a
// hugetlbfs or shmem object), whose path leads nowhere, and one whose
// name another file has taken since, or whose directory is gone too: the
// restore, which makes it again under that name, would fail, and the
// dump would have ended the job for nothing.
func CheckGhost(e *Entry) error {
	path := GhostPath(e.Target)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("deleted file %s: another file has taken its name since, so the restore could not make it again under that name", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleted file %s: %w", path, err)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("deleted file %s: its directory %s is gone too, so the restore could not make it again", path, filepath.Dir(path))
	}
	if e.Stat.Nlink > 0 {
		return fmt.Errorf("file %s was deleted but has %d other hard link(s), which gocr cannot find to open the same file again", path, e.Stat.Nlink)
	}
	if e.Stat.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		return fmt.Errorf("deleted file %s is set-user-ID or set-group-ID (mode %#o), which gocr does not make again", path, e.Stat.Mode&07777)
	}
	if err := checkReachable(e); err != nil {
		return fmt.Errorf("deleted file %s: %w", path, err)
	}
	return nil
}

func (ghostKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	g, err := s.ghost(fd.GetGhost().GetId())
	if err != nil {
		return 0, err
	}
	n, ok := g.desc[fd]
	if !ok {
		return 0, fmt.Errorf("deleted file %s was made again without this fd", g.meta.File.GetPath())
	}
	if fd.Flags&unix.O_PATH != 0 {
		return n, nil // no offset: the file is not open (man 2 open)
	}
	if _, err := unix.Seek(int(s.File(n).Fd()), fd.Pos, unix.SEEK_SET); err != nil {
		return 0, fmt.Errorf("seek deleted file %s to %d: %w", g.meta.File.GetPath(), fd.Pos, err)
	}
	return n, nil
}

// GhostFile is the source a mapping of the deleted file id maps: opened
// for reading and writing where the mapping may write through it
// (MAP_SHARED with VM_MAYWRITE, smaps "mw"), read-only otherwise, as the
// file the job mapped was, since the kernel derives VM_MAYWRITE of a
// shared mapping from its file's mode (mm/mmap.c do_mmap).
func (s *Sources) GhostFile(id uint64, write bool) (int32, error) {
	g, err := s.ghost(id)
	if err != nil {
		return 0, err
	}
	if write {
		return g.rw, nil
	}
	return g.ro, nil
}

// ghostFile is a deleted file made again: gocr's read-write and read-only
// open file descriptions of it, and each dumped fd's own (by its Fd in
// the dumped tables), as sources.
type ghostFile struct {
	meta   *gocrpb.GhostFile
	rw, ro int32
	desc   map[*gocrpb.Fd]int32
}

type ghostKey uint64

func (s *Sources) ghost(id uint64) (*ghostFile, error) {
	return once(s, ghostKey(id), func() (*ghostFile, error) { return s.makeGhost(id) })
}

// makeGhost makes the deleted file id again. It is created at its path,
// which must be free (the fds must show that path, and no file of the
// user's is replaced); every open file description the dump had of it,
// and the two mappings map, is opened by that path, with its flags (an
// open through /proc/self/fd would name the same file, but refuses
// O_NOFOLLOW, which fdinfo shows and F_SETFL cannot set: man 2 open,
// fcntl); then it is unlinked, so that /proc names each "PATH (deleted)"
// and nothing is left should the restore fail. It is filled afterwards
// from file-ID.img and checked against the dumped SHA-256, and given its
// owner, times and mode last, its mode 0600 until then so that gocr, as
// the user, could open it as the job had it.
//
// gocr runs with the user's own ids (restorer/creds.go): the file is
// made only where the user may create files, and given an owner and
// group only as the user may (man 2 chown).
func (s *Sources) makeGhost(id uint64) (g *ghostFile, err error) {
	meta := s.ghosts[id]
	if meta == nil || meta.File == nil {
		return nil, fmt.Errorf("deleted file %d is not described in the image", id)
	}
	path := meta.File.Path
	if meta.Mode&unix.S_IFMT != unix.S_IFREG || meta.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		return nil, fmt.Errorf("deleted file %s: mode %#o is not that of a plain regular file", path, meta.Mode)
	}
	// O_EXCL: never a file that is there now, nor through a symlink
	// (man 2 open).
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	switch {
	case errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("deleted file %s: a file of that name exists now; the restored fds would show another name (move it away and restore again)", path)
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("deleted file %s: its directory %s is missing", path, filepath.Dir(path))
	case err != nil:
		return nil, fmt.Errorf("make deleted file %s again: %w", path, err)
	}
	name := path + " (deleted)"
	g = &ghostFile{meta: meta, rw: s.AddFd(fd, name), desc: map[*gocrpb.Fd]int32{}}
	// gocr's read-write and read-only descriptions serve the mappings
	// (GhostFile), which hold them once made; closed before the
	// processes run, their last close, an event to an inotify watch on
	// the file (fsnotify_close in fs/file_table.c __fput), is read away
	// with the restore's others (Settle). The job's own fds are theirs.
	s.OnSettle(settleClose, func() error {
		s.File(g.rw).Close()
		s.File(g.ro).Close()
		return nil
	})
	var made unix.Stat_t
	if err := unix.Fstat(fd, &made); err != nil {
		unix.Unlink(path)
		return nil, fmt.Errorf("deleted file %s: %w", path, err)
	}
	linked := true
	defer func() {
		// Failed before its unlink: take it away, but only if the
		// path still names the file made here.
		var st unix.Stat_t
		if linked && unix.Lstat(path, &st) == nil && st.Dev == made.Dev && st.Ino == made.Ino {
			unix.Unlink(path)
		}
	}()
	open := func(flags int) (int32, error) {
		nfd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open deleted file %s made again: %w", path, err)
		}
		n := s.AddFd(nfd, name)
		var st unix.Stat_t
		if err := unix.Fstat(nfd, &st); err != nil {
			return 0, fmt.Errorf("deleted file %s: %w", path, err)
		}
		if st.Dev != made.Dev || st.Ino != made.Ino {
			return 0, fmt.Errorf("deleted file %s: another file took its place while it was made", path)
		}
		return n, nil
	}
	if g.ro, err = open(unix.O_RDONLY | unix.O_NOFOLLOW); err != nil {
		return nil, err
	}
	for _, table := range s.tables {
		for _, f := range table.Fds {
			if f.GetGhost().GetId() != id || f.SharedWith >= 0 {
				continue
			}
			if g.desc[f], err = open(openFlags(f)); err != nil {
				return nil, err
			}
		}
	}
	if err := unix.Unlink(path); err != nil {
		return nil, fmt.Errorf("unlink deleted file %s once made again: %w", path, err)
	}
	linked = false
	if err := unix.Fstat(fd, &made); err != nil {
		return nil, fmt.Errorf("deleted file %s: %w", path, err)
	}
	if made.Nlink != 0 {
		return nil, fmt.Errorf("deleted file %s: another file took its place while it was made", path)
	}
	if err := fillGhost(s.Dir, meta, s.File(g.rw)); err != nil {
		return nil, fmt.Errorf("deleted file %s: %w", path, err)
	}
	if made.Uid != meta.Uid || made.Gid != meta.Gid {
		if err := unix.Fchown(fd, int(meta.Uid), int(meta.Gid)); err != nil {
			return nil, fmt.Errorf("deleted file %s: owner %d:%d: %w", path, meta.Uid, meta.Gid, err)
		}
	}
	times := []unix.Timespec{unix.NsecToTimespec(meta.AtimeNs), unix.NsecToTimespec(meta.File.MtimeNs)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), times, 0); err != nil {
		return nil, fmt.Errorf("deleted file %s: times: %w", path, err)
	}
	// After the owner: chown may clear mode bits (man 2 chown).
	if err := unix.Fchmod(fd, meta.Mode&0o1777); err != nil {
		return nil, fmt.Errorf("deleted file %s: mode %#o: %w", path, meta.Mode&0o1777, err)
	}
	return g, nil
}

// fillGhost fills w with file-ID.img's data at the file's own offsets,
// holes kept, checked against the SHA-256 the dump recorded
// (images.Data.FillFile).
func fillGhost(dir *images.Dir, meta *gocrpb.GhostFile, w *os.File) error {
	img, err := dir.OpenSavedFile(meta.Id)
	if err != nil {
		return err
	}
	defer img.Close()
	size := img.Size
	if size != meta.File.Size {
		return fmt.Errorf("file-%d.img holds %d bytes, the file had %d", meta.Id, size, meta.File.Size)
	}
	if err := img.FillFile(w, meta.Sha256); err != nil {
		return fmt.Errorf("file-%d.img: %w", meta.Id, err)
	}
	return nil
}
