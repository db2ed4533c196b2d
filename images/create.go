//go:build linux

package images

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A dump is written into a new private directory beside the one it is
// for, and takes that directory's place only once it is complete: so at
// every instant the image directory holds either the previous complete
// dump or the new complete one, and a dump that fails, is refused or is
// killed never damages a checkpoint taken before it. A crash leaves at
// most a directory named .DIR.gocr-tmp-XXXXXXXXXXXX beside DIR.
//
// Every image is created in that directory relative to an open descriptor
// of it, with O_EXCL|O_NOFOLLOW, so nothing planted anywhere (a symbolic
// link, a file another user owns and can read) can be written through or
// keep its owner and mode: the files are new, mode 0600, in a new
// directory of mode 0700.

// StatsName is the file a dump writes beside its images to say how long it
// took (not an image; docs/IMAGES.md).
const StatsName = "stats-dump.json"

// tmpMarker is in the name of a dump directory being written.
const tmpMarker = ".gocr-tmp-"

// writing is the state of a Dir made by Create.
type writing struct {
	parent     int    // the directory that holds Path
	parentPath string // its path, for messages
	name       string // Path's last element
	tmpName    string // the new dump's directory, in parent, until commit
	tmp        int    // open on the new dump's directory
	old        int    // open on the directory at Path when the dump began, or -1
	sealCPUs   int    // CPUs SealData uses, 0 for all (LeaveCPUFree)
	oldStat    unix.Stat_t
	committed  bool // the new dump is at Path
	closed     bool
	// data lists the data images created and not yet sealed (SealData).
	data []string
	// sums holds, by data image, the checksums its writers took of what
	// they wrote (AddDataSum).
	sums map[string][]dataSum
	// sealRead counts the data bytes SealData read back to sum them.
	sealRead int64
	// sumsDistrusted: a writer's checksum disagreed with its data
	// (SealData read everything back).
	sumsDistrusted bool
	// leftover says what of the replaced dump could not be removed.
	leftover error
}

// Create starts a new dump for the directory path: it checks that path
// may be replaced (below) and makes the private directory the images are
// written to, beside it. WriteInventory completes the dump and puts it in
// place of path; Abort removes it, leaving path as it was. Missing parent
// directories are created.
func Create(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("image directory %s: %w", path, err)
	}
	parentPath, name := filepath.Dir(abs), filepath.Base(abs)
	if abs == parentPath {
		return nil, fmt.Errorf("image directory %s: the root directory cannot be replaced by a dump", path)
	}
	if err := os.MkdirAll(parentPath, 0o700); err != nil {
		return nil, fmt.Errorf("image directory %s: %w", path, err)
	}
	parent, err := unix.Open(parentPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image directory %s: open %s: %w", path, parentPath, err)
	}
	w := &writing{parent: parent, parentPath: parentPath, name: name, tmp: -1, old: -1}
	d := &Dir{Path: abs, w: w}
	if d.id, err = newDumpID(); err != nil {
		w.close()
		return nil, fmt.Errorf("image directory %s: %w", path, err)
	}
	d.idKnown = true
	ok := false
	defer func() {
		if !ok {
			w.close()
		}
	}()
	uid := uint32(os.Geteuid())
	var st unix.Stat_t
	if err := unix.Fstat(parent, &st); err != nil {
		return nil, fmt.Errorf("image directory %s: stat %s: %w", path, parentPath, err)
	}
	if why := parentUnsafe(&st, uid); why != "" {
		return nil, fmt.Errorf("image directory %s: its parent %s %s", path, parentPath, why)
	}
	if err := w.checkOld(path, uid); err != nil {
		return nil, err
	}
	if err := w.makeTmp(); err != nil {
		return nil, fmt.Errorf("image directory %s: %w", path, err)
	}
	ok = true
	return d, nil
}

// Who may write where. gocr writes the dump as the user running it
// (normally root) into a directory another user must not control: such a
// user could read the dumped memory and credentials, or replace the dump
// with one that restores as anything they like. So the image directory
// must be writable by nobody but that user (and root): owned by one of
// them (an owner can always chmod, chmod(2)) with no group or other write
// bit (a POSIX ACL granting a user write shows in the group bits, acl(5)).
// Its parent, where the new dump is built and renamed into place, must be
// owned by them too, and either have no group or other write bit, or the
// sticky bit, which keeps other users from renaming or removing entries
// they do not own (rename(2), unlink(2): EPERM with S_ISVTX), as in /tmp.

// otherWriter names who other than uid and root can write a directory
// with st, or "" when nobody can.
func otherWriter(st *unix.Stat_t, uid uint32) string {
	switch {
	case st.Uid != uid && st.Uid != 0:
		return fmt.Sprintf("is owned by uid %d", st.Uid)
	case st.Mode&0o002 != 0:
		return fmt.Sprintf("is writable by all users (mode %#o)", st.Mode&0o7777)
	case st.Mode&0o020 != 0:
		return fmt.Sprintf("is writable by its group %d (mode %#o)", st.Gid, st.Mode&0o7777)
	}
	return ""
}

func parentUnsafe(st *unix.Stat_t, uid uint32) string {
	who := otherWriter(st, uid)
	ownedByUs := st.Uid == uid || st.Uid == 0
	if who == "" || ownedByUs && st.Mode&unix.S_ISVTX != 0 {
		return ""
	}
	return who + " without the sticky bit: another user could replace the dump; use a directory only you can write to"
}

// checkOld checks what is at the image directory's path now: nothing, or
// a directory holding only what gocr writes, which the dump may replace.
// It keeps that directory open, to replace exactly it.
func (w *writing) checkOld(path string, uid uint32) error {
	var st unix.Stat_t
	err := unix.Fstatat(w.parent, w.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("image directory %s: %w", path, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("image directory %s is a symbolic link: give the directory itself", path)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("image directory %s exists and is not a directory", path)
	}
	old, err := unix.Openat(w.parent, w.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("image directory %s: %w", path, err)
	}
	w.old = old
	if err := unix.Fstat(old, &w.oldStat); err != nil {
		return fmt.Errorf("image directory %s: %w", path, err)
	}
	if who := otherWriter(&w.oldStat, uid); who != "" {
		return fmt.Errorf("image directory %s %s: another user could read or replace the dump; use a directory only you can write to", path, who)
	}
	// The dump replaces the directory by renaming, which a mount point
	// refuses (rename(2): EBUSY); say so now rather than after the dump.
	var stx unix.Statx_t
	if err := unix.Statx(old, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &stx); err == nil &&
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return fmt.Errorf("image directory %s is a mount point, which a dump cannot replace: use a directory inside it", path)
	}
	names, err := listNames(old, path)
	if err != nil {
		return err
	}
	for _, n := range names {
		var est unix.Stat_t
		if err := unix.Fstatat(old, n, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("image directory %s: %w", path, err)
		}
		if !isGocrName(n) || est.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("image directory %s holds %s (%s), which gocr did not write: a dump replaces the whole directory, so give it one of its own",
				path, n, fileType(est.Mode))
		}
	}
	return nil
}

// isGocrName tells whether name is one of the files gocr writes in an
// image directory (inventory.img.tmp: an older gocr's).
func isGocrName(name string) bool {
	return name == inventoryName || name == "inventory.img.tmp" || name == StatsName || perPidImage.MatchString(name)
}

// makeTmp makes the private directory the new dump is written to, named
// so that a user who finds one left by a crash knows what it is.
func (w *writing) makeTmp() error {
	prefix := "." + w.name
	if len(prefix) > 200 { // NAME_MAX is 255 (limits.h)
		prefix = prefix[:200]
	}
	for range 10 {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		name := prefix + tmpMarker + hex.EncodeToString(b[:])
		err := unix.Mkdirat(w.parent, name, 0o700)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", filepath.Join(w.parentPath, name), err)
		}
		w.tmpName = name
		fd, err := unix.Openat(w.parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Unlinkat(w.parent, name, unix.AT_REMOVEDIR)
			return fmt.Errorf("open %s: %w", w.tmpPath(), err)
		}
		w.tmp = fd
		// Exactly 0700, whatever the umask.
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", w.tmpPath(), err)
		}
		return nil
	}
	return fmt.Errorf("create a temporary directory in %s: ten random names were taken", w.parentPath)
}

func (w *writing) tmpPath() string { return filepath.Join(w.parentPath, w.tmpName) }

// create makes the new image file name in the dump being written: a new
// file (O_EXCL), never through a symbolic link (O_NOFOLLOW), mode 0600.
func (d *Dir) create(name string) (*os.File, error) {
	if d.w == nil || d.w.committed || d.w.closed {
		return nil, fmt.Errorf("create %s: %s is not a dump being written", name, d.Path)
	}
	path := filepath.Join(d.w.tmpPath(), name)
	fd, err := unix.Openat(d.w.tmp, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// WriteStats writes data as StatsName in the dump: in its private
// directory before WriteInventory, in the image directory after (the
// descriptor follows the directory when it is renamed).
func (d *Dir) WriteStats(data []byte) error {
	if d.w == nil || d.w.closed {
		return fmt.Errorf("write %s: %s is not a dump being written", StatsName, d.Path)
	}
	path := filepath.Join(d.current(), StatsName)
	fd, err := unix.Openat(d.w.tmp, StatsName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Synced like the images: unsynced, a crash soon after the dump
	// left it empty in the complete dump (seen on ext4 shut down).
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

// commit puts the complete dump, inventory written and synced, in place of
// the image directory: renamed there if there was none, or exchanged with
// the old one atomically, which is then removed. The new dump is durable
// before the rename (its directory fsynced), and the rename is made
// durable after it (the parent fsynced).
func (d *Dir) commit() error {
	w := d.w
	if err := unix.Fsync(w.tmp); err != nil {
		return fmt.Errorf("fsync %s: %w", w.tmpPath(), err)
	}
	if w.old < 0 {
		err := unix.Renameat2(w.parent, w.tmpName, w.parent, w.name, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) {
			// A file system without RENAME_NOREPLACE (renameat2(2),
			// EINVAL): a plain rename, which replaces at most an
			// empty directory made there meanwhile.
			err = unix.Renameat(w.parent, w.tmpName, w.parent, w.name)
		}
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("put the dump in place: %s was created by someone else during the dump", d.Path)
		}
		if err != nil {
			return fmt.Errorf("put the dump in place: rename %s to %s: %w", w.tmpPath(), d.Path, err)
		}
	} else {
		// Exchange only the directory checked by Create.
		var st unix.Stat_t
		if err := unix.Fstatat(w.parent, w.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Dev != w.oldStat.Dev || st.Ino != w.oldStat.Ino {
			return fmt.Errorf("put the dump in place: %s was replaced by something else during the dump", d.Path)
		}
		err := unix.Renameat2(w.parent, w.tmpName, w.parent, w.name, unix.RENAME_EXCHANGE)
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("put the dump in place: the file system of %s cannot exchange two directories atomically (renameat2 RENAME_EXCHANGE), so the old dump stays; dump into a new directory", d.Path)
		}
		if err != nil {
			return fmt.Errorf("put the dump in place: exchange %s with %s: %w", w.tmpPath(), d.Path, err)
		}
	}
	w.committed = true
	if err := unix.Fsync(w.parent); err != nil {
		// The rename is done; only its durability is in doubt.
		w.leftover = fmt.Errorf("fsync %s: %w", w.parentPath, err)
	}
	if w.old >= 0 {
		// The old dump is now at tmpName.
		if err := w.removeDir(w.old, w.tmpName, func(n string) bool { return isGocrName(n) }); err != nil {
			w.leftover = fmt.Errorf("the replaced dump is left in %s: %w", w.tmpPath(), err)
		}
	}
	return nil
}

// Leftover reports what a complete dump could not clean up (the dump it
// replaced, left in a temporary directory), or nil.
func (d *Dir) Leftover() error {
	if d.w == nil {
		return nil
	}
	return d.w.leftover
}

// removeDir removes the directory open as fd, named name in the parent:
// the files in it whose names pass ok, then the directory itself, but
// only if nothing else was in it.
func (w *writing) removeDir(fd int, name string, ok func(string) bool) error {
	path := filepath.Join(w.parentPath, name)
	names, err := listNames(fd, path)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if !ok(n) {
			errs = append(errs, fmt.Errorf("%s is not gocr's", filepath.Join(path, n)))
			continue
		}
		if err := unix.Unlinkat(fd, n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove %s: %w", filepath.Join(path, n), err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := unix.Unlinkat(w.parent, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if err := unix.Fsync(w.parent); err != nil {
		return fmt.Errorf("fsync %s: %w", w.parentPath, err)
	}
	return nil
}

// Abort removes the dump being written, and with it every file it wrote;
// the image directory stays as it was. A dump calls it on failure. After
// WriteInventory has put the dump in place it does nothing but Close.
func (d *Dir) Abort() error {
	w := d.w
	if w == nil || w.closed {
		return nil
	}
	defer w.close()
	if w.committed {
		return nil
	}
	d.mu.Lock()
	d.inventory = nil
	d.mu.Unlock()
	// Every file in the private directory is this dump's.
	if err := w.removeDir(w.tmp, w.tmpName, func(string) bool { return true }); err != nil {
		return fmt.Errorf("abort dump in %s: %w", d.Path, err)
	}
	return nil
}

// Close releases a Dir once it is done with (Abort also does). The images
// written stay.
func (d *Dir) Close() error {
	if d.w != nil {
		d.w.close()
	}
	if d.ctx != nil {
		return d.ctx.f.Close()
	}
	if d.root != nil {
		return d.root.Close()
	}
	return nil
}

func (w *writing) close() {
	if w.closed {
		return
	}
	w.closed = true
	for _, fd := range []int{w.tmp, w.old, w.parent} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// listNames lists the directory open as fd, through a descriptor of its
// own so fd's offset is untouched.
func listNames(fd int, path string) ([]string, error) {
	own, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	f := os.NewFile(uintptr(own), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	return names, nil
}

// fileType names the type in a stat mode, as a user would say it.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return fmt.Sprintf("of type %#o", mode&unix.S_IFMT)
}
