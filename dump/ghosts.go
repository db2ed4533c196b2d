//go:build linux

package dump

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// DefaultGhostLimit is the largest deleted file a dump saves unless told
// otherwise (Options.GhostLimit, --ghost-limit).
const DefaultGhostLimit = 64 << 20

// ghostSaver saves the contents of every deleted file the processes use
// (files/ghost.go), once each, in the saved file images (fileSaver), so
// that the restore can make each again: a file open through an fd, or
// mapped MAP_SHARED (whose pages are the file's own), is restored as a
// file, and a MAP_PRIVATE mapping of one of those maps it too, since the
// pages it has not written still read the file (man 2 mmap).
type ghostSaver struct {
	saver  *fileSaver
	limit  int64
	ghosts map[fileKey]*gocrpb.GhostFile
}

// saveGhosts saves the deleted files of the processes whose fd tables and
// memory are tables[i] and mms[i], listing each in the Files image of
// every process that uses it. A file larger than limit is refused,
// naming the fd or mapping.
func saveGhosts(saver *fileSaver, tables []*gocrpb.Files, mms []*gocrpb.Mm, limit int64) error {
	g := &ghostSaver{saver: saver, limit: limit, ghosts: map[fileKey]*gocrpb.GhostFile{}}
	for i, table := range tables {
		pid := int(table.Pid)
		for _, fd := range table.Fds {
			gf := fd.GetGhost()
			if gf == nil {
				continue
			}
			if int(fd.Fd) <= unix.Stderr && fd.File.GetSize() > limit {
				// Stdio on a deleted file too large to save (the
				// job's log, removed under it): left for the
				// restore to be given a file, not refused.
				files.GhostOutside(fd)
				continue
			}
			id, err := g.save(table, fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd), fd.Description)
			if err != nil {
				return fmt.Errorf("pid %d fd %d: %w", pid, fd.Fd, err)
			}
			gf.Id = id
		}
		for _, v := range mms[i].GetVmas() {
			if v.Kind != gocrpb.VmaKind_VMA_FILE_SHARED || v.MemfdId != 0 || v.SavedFile != 0 || !strings.HasSuffix(v.Name, " (deleted)") {
				continue
			}
			id, err := g.save(table, fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.Start, v.End), v.Name)
			if err != nil {
				return fmt.Errorf("pid %d mapping %#x-%#x: %w", pid, v.Start, v.End, err)
			}
			v.GhostFile = id
		}
	}
	for i, table := range tables {
		g.private(table, mms[i])
	}
	for _, table := range tables {
		if err := g.watched(table); err != nil {
			return fmt.Errorf("pid %d: %w", table.Pid, err)
		}
	}
	return nil
}

// watched points every inotify watch on a deleted file at that file made
// again, which must be one an fd or a mapping of the dumped processes
// holds: the watch lasts as long as something holds the file open (its
// last close removes the watch, with IN_DELETE_SELF and IN_IGNORED:
// fs/dcache.c dentry_unlink_inode, fsnotify_inoderemove), and only what
// the restore gives the job holds the file made again.
func (g *ghostSaver) watched(table *gocrpb.Files) error {
	for _, fd := range table.Fds {
		for _, w := range fd.GetInotify().GetWatches() {
			d := w.GetDeleted()
			if d == nil {
				continue
			}
			gf := g.ghosts[fileKey{d.Dev, d.Ino}]
			if gf == nil {
				return fmt.Errorf("fd %d (%s): inotify watch %d is on deleted file %s, which no fd or shared mapping of the dumped processes holds open (a private mapping, or a process outside the dump), so gocr cannot make it again with its holder",
					fd.Fd, fd.Description, w.Wd, d.Path)
			}
			w.GhostFile = gf.Id
			listGhost(table, gf)
		}
	}
	return nil
}

// save saves the deleted file open at procPath (a /proc/PID/fd or
// map_files entry, which opens the very file, man 5 proc), whose /proc
// link is link, unless it is saved already, lists it in table and returns
// its id.
func (g *ghostSaver) save(table *gocrpb.Files, procPath, link string) (uint64, error) {
	f, err := os.Open(procPath)
	if err != nil {
		return 0, fmt.Errorf("open deleted file %s: %w", files.GhostPath(link), err)
	}
	defer f.Close()
	e := &files.Entry{Pid: os.Getpid(), Fd: int(f.Fd()), Target: link}
	if err := unix.Fstat(int(f.Fd()), &e.Stat); err != nil {
		return 0, fmt.Errorf("stat deleted file %s: %w", files.GhostPath(link), err)
	}
	if e.Stat.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("deleted file %s is not a regular file", files.GhostPath(link))
	}
	if e.Info, err = proc.ReadFdInfo(e.Pid, e.Fd); err != nil {
		return 0, err
	}
	if err := files.CheckGhost(e); err != nil {
		return 0, err
	}
	key := fileKey{e.Stat.Dev, e.Stat.Ino}
	gf := g.ghosts[key]
	if gf == nil {
		if e.Stat.Size > g.limit {
			return 0, fmt.Errorf("deleted file %s is %d bytes, more than the %d that --ghost-limit lets a dump save", files.GhostPath(link), e.Stat.Size, g.limit)
		}
		sf, err := g.saver.saveOnce(f, &e.Stat, files.GhostPath(link), true)
		if err != nil {
			return 0, err
		}
		gf = &gocrpb.GhostFile{
			Id: sf.Id, File: sf.File, Mode: e.Stat.Mode, Uid: e.Stat.Uid, Gid: e.Stat.Gid,
			Sha256: sf.Sha256, AtimeNs: e.Stat.Atim.Nano(),
		}
		g.ghosts[key] = gf
	}
	listGhost(table, gf)
	return gf.Id, nil
}

func listGhost(table *gocrpb.Files, gf *gocrpb.GhostFile) {
	for _, have := range table.GhostFiles {
		if have.Id == gf.Id {
			return
		}
	}
	table.GhostFiles = append(table.GhostFiles, gf)
}

// private points the private mappings of deleted files that are made
// again (saveMapped saved them as copies, under the same id) at the
// file, and drops the copies no mapping needs any more. The executable's
// mappings keep their copy: PR_SET_MM_MAP takes no exe file open for
// writing (kernel/fork.c replace_mm_exe_file), as the file made again is.
func (g *ghostSaver) private(table *gocrpb.Files, mm *gocrpb.Mm) {
	if mm == nil || len(g.ghosts) == 0 {
		return
	}
	byID := map[uint64]*gocrpb.GhostFile{}
	for _, gf := range g.ghosts {
		byID[gf.Id] = gf
	}
	used := map[uint64]bool{mm.ExeSavedFile: true}
	for _, v := range mm.Vmas {
		if gf := byID[v.SavedFile]; gf != nil && v.SavedFile != mm.ExeSavedFile {
			v.GhostFile, v.SavedFile = gf.Id, 0
			listGhost(table, gf)
		}
		used[v.SavedFile] = true
	}
	kept := mm.SavedFiles[:0]
	for _, sf := range mm.SavedFiles {
		if used[sf.Id] {
			kept = append(kept, sf)
		}
	}
	mm.SavedFiles = kept
}
