package contextfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Replace is what writing a context file does with a file already at its
// path: BLCR's cr_checkpoint policies (cr_checkpoint(1), "File
// creation/replacement").
type Replace int

const (
	// Atomic (the default): the new context is written under a
	// temporary name beside path and renamed over it once complete, so
	// path holds the old context or the new one, never a part.
	Atomic Replace = iota
	// Backup is Atomic, with the old context kept: under
	// FileOptions.BackupName, or as path.~N~ with N one above the
	// highest already there.
	Backup
	// Clobber removes the old context first and writes the new one
	// directly at path: less space, but a failed write loses both.
	Clobber
	// NoClobber fails if path exists (checked again atomically at the
	// rename, so a file created meanwhile is never replaced).
	NoClobber
)

// FileOptions say how WriteFile treats an existing file.
type FileOptions struct {
	Replace    Replace
	BackupName string // with Backup: the old context's new name ("": numbered)
	// Written, if set, counts the bytes of the context as they are
	// written (a progress line reads it from another goroutine).
	Written *atomic.Int64
	// Compression compresses the entries (none by default).
	Compression Compression
	// Consumed, if set, counts the bytes of the dump's files read so far.
	Consumed *atomic.Int64
}

// ErrExists: NoClobber found a file at the path.
var ErrExists = errors.New("exists, and --noclobber was given")

// CheckTarget says, before a checkpoint starts, whether a context can be
// written at path with opts: what is there is a regular file (or
// nothing), NoClobber finds nothing, and the directory is safe. So a
// checkpoint that would be refused at the end is refused before the
// processes are touched.
func CheckTarget(path string, opts FileOptions) error {
	if err := checkDir(filepath.Dir(path)); err != nil {
		return err
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case opts.Replace == NoClobber:
		return fmt.Errorf("context file %s %w", path, ErrExists)
	case !st.Mode().IsRegular():
		return fmt.Errorf("context file %s exists and is not a regular file", path)
	}
	return nil
}

// checkDir refuses a directory that another user could write to without
// the sticky bit: they could replace the context with one of their own
// (the same rule as for an image directory's parent, images.Create).
func checkDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("directory %s is writable by other users without the sticky bit (mode %#o): another user could replace the context file; use a directory only you can write to", dir, st.Mode&0o7777)
	}
	return nil
}

// WriteFile writes the files of dumpDir as the context file path, with
// the policy opts gives for a file already there. The file is mode 0600:
// it holds the processes' memory. It is fsynced, and so is its directory
// once the name is in place.
func WriteFile(path, dumpDir string, opts FileOptions) (err error) {
	if err := CheckTarget(path, opts); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if opts.Replace == Clobber {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.Remove(path)
			}
		}()
		if err := writeSynced(f, dumpDir, opts); err != nil {
			return err
		}
		return syncDir(dir)
	}
	tmp, f, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeSynced(f, dumpDir, opts); err != nil {
		return err
	}
	switch opts.Replace {
	case NoClobber:
		// renameat2(2) RENAME_NOREPLACE: fails with EEXIST, atomically.
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("context file %s %w", path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
		}
	case Backup:
		if err := backup(path, opts.BackupName); err != nil {
			return err
		}
		fallthrough
	default:
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func writeSynced(f *os.File, dumpDir string, opts FileOptions) error {
	var w io.Writer = f
	if opts.Written != nil {
		w = CountingWriter{W: f, N: opts.Written}
	}
	cw, err := NewWriterOptions(w, WriterOptions{Compression: opts.Compression, Consumed: opts.Consumed})
	if err == nil {
		err = cw.AddDir(dumpDir)
	}
	if err == nil {
		err = cw.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write context file %s: %w", f.Name(), err)
	}
	return nil
}

// createTemp makes a new file for the context named name in dir: hidden,
// named so that one left by a crash says what it is.
func createTemp(dir, name string) (string, *os.File, error) {
	for range 10 {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		p := filepath.Join(dir, "."+name+".gocr-tmp-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return p, f, err
	}
	return "", nil, fmt.Errorf("create a temporary file in %s: ten random names were taken", dir)
}

// backup keeps the context at path (if any) under name, or as the next
// path.~N~, by a hard link: path itself stays until the new context is
// renamed over it.
func backup(path, name string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if name == "" {
		n, err := nextBackup(path)
		if err != nil {
			return err
		}
		name = fmt.Sprintf("%s.~%d~", path, n)
		if err := os.Link(path, name); err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		return nil
	}
	// A NAME given replaces what is there, in one step.
	tmp, f, err := createTemp(filepath.Dir(name), filepath.Base(name))
	if err != nil {
		return err
	}
	f.Close()
	os.Remove(tmp)
	if err := os.Link(path, tmp); err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("back up %s to %s: %w", path, name, err)
	}
	return nil
}

// nextBackup is one above the highest N of the path.~N~ there are.
func nextBackup(path string) (int, error) {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Base(path)) + `\.~([0-9]+)~$`)
	high := 0
	for _, e := range ents {
		if m := re.FindStringSubmatch(e.Name()); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > high {
				high = n
			}
		}
	}
	return high + 1, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CountingWriter adds the bytes written through it to N.
type CountingWriter struct {
	W io.Writer
	N *atomic.Int64
}

func (c CountingWriter) Write(b []byte) (int, error) {
	n, err := c.W.Write(b)
	c.N.Add(int64(n))
	return n, err
}

// CountingReader adds the bytes read through it to N.
type CountingReader struct {
	R io.Reader
	N *atomic.Int64
}

func (c CountingReader) Read(b []byte) (int, error) {
	n, err := c.R.Read(b)
	c.N.Add(int64(n))
	return n, err
}
