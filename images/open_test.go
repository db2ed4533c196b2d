//go:build linux

package images

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within runs f and fails the test if it has not returned after a few
// seconds: an image reader that blocks (on a FIFO) must fail instead.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still blocks after 5s", what)
		return nil
	}
}

// reader reads the sample dump's image name as a restore does.
func reader(name string) func(*Dir) error {
	if name == pagesName(testPid, 0) {
		return pagesReader
	}
	return recordImageReaders[name]
}

// TestNonRegularImageRefused: a FIFO, a directory, a symbolic link (even
// to the right file) or a device in place of an image is refused at once,
// naming the file and what it is, by every reader and by Show.
func TestNonRegularImageRefused(t *testing.T) {
	src := t.TempDir()
	writeSampleDump(t, src)
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"FIFO", mkfifo, "is a FIFO"},
		{"Directory", func(t *testing.T, path string) { mkdir(t, path, 0o700) }, "is a directory"},
		{"Symlink", func(t *testing.T, path string) {
			// To a good copy of the very image: still refused.
			good := path + ".real"
			copyTo(t, filepath.Join(src, filepath.Base(path)), good)
			symlink(t, good, path)
		}, "is a symbolic link"},
		{"CharDevice", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to make a device node (mknod)")
			}
			// /dev/zero (devices.txt: char 1:5): it would read forever.
			if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); err != nil {
				t.Fatal(err)
			}
		}, "is a character device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, name := range []string{inventoryName, taskName(testPid), pagemapName(testPid), pagesName(testPid, 0)} {
				dir := copyOf(t, src)
				path := filepath.Join(dir, name)
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				c.make(t, path)
				err := within(t, "reading "+name, func() error { return reader(name)(sampleDir(dir)) })
				fe := requireFormatError(t, err, name)
				if fe.Path != path || !strings.Contains(fe.Reason, c.want) {
					t.Errorf("reading %s: %v, want it named and %q", name, err, c.want)
				}
				var out bytes.Buffer
				err = within(t, "gocr show of "+name, func() error { return Show(dir, &out, OpenOptions{}) })
				if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
					t.Errorf("Show with %s in place of %s: %v, want one line naming it", c.name, name, err)
				}
			}
		})
	}
}

// TestUntrustedImageRefused: an image that a user other than the one
// reading (or root) could have written is refused, naming the file,
// unless images are trusted.
func TestUntrustedImageRefused(t *testing.T) {
	src := t.TempDir()
	writeSampleDump(t, src)
	for _, c := range []struct {
		name   string
		change func(t *testing.T, path string)
		want   string
	}{
		{"WorldWritable", func(t *testing.T, path string) { chmod(t, path, 0o606) }, "writable by its group or all users (mode 0606)"},
		{"GroupWritable", func(t *testing.T, path string) { chmod(t, path, 0o620) }, "writable by its group or all users (mode 0620)"},
		{"OtherOwner", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user (chown)")
			}
			chown(t, path, otherUID)
		}, "owned by uid 65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, name := range []string{inventoryName, taskName(testPid), mmName(testPid), filesName(testPid), pagemapName(testPid), pagesName(testPid, 0)} {
				dir := copyOf(t, src)
				path := filepath.Join(dir, name)
				c.change(t, path)
				err := reader(name)(sampleDir(dir))
				if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("reading %s: %v, want ErrUntrusted naming it and saying %q", name, err, c.want)
				}
				trusting := sampleDir(dir)
				trusting.trust = true
				if err := reader(name)(trusting); err != nil {
					t.Errorf("reading %s with images trusted: %v", name, err)
				}
				var out bytes.Buffer
				if err := Show(dir, &out, OpenOptions{}); err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("Show with an untrusted %s: %v, want it named", name, err)
				}
				if err := Show(dir, &out, OpenOptions{TrustImages: true}); err != nil {
					t.Errorf("Show with images trusted: %v", err)
				}
			}
			if _, err := OpenWith(copyOfChanged(t, src, inventoryName, c.change), OpenOptions{TrustImages: true}); err != nil {
				t.Errorf("OpenWith trusting images: %v", err)
			}
		})
	}
}

// TestShowNeedsEveryImage: Show fails, naming it, when an image the
// inventory needs is missing, even if every file present is good.
func TestShowNeedsEveryImage(t *testing.T) {
	src := t.TempDir()
	writeSampleDump(t, src)
	for _, name := range []string{taskName(testPid), mmName(testPid), filesName(testPid), pagemapName(testPid), pagesName(testPid, 0), taskName(testPid + 1)} {
		dir := copyOf(t, src)
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := Show(dir, &out, OpenOptions{})
		if err == nil || !strings.Contains(err.Error(), name+" missing") {
			t.Errorf("Show without %s: %v, want it named missing", name, err)
		}
		if _, bodies := splitShow(t, out.String()); !strings.HasPrefix(bodies[name], "missing: ") {
			t.Errorf("Show without %s printed %q for it, want missing", name, bodies[name])
		}
	}
	// A single image given as a directory is refused too.
	dir := copyOf(t, src)
	path := filepath.Join(dir, taskName(testPid))
	os.Remove(path)
	mkdir(t, path, 0o700)
	var out bytes.Buffer
	if err := Show(path, &out, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Show of a directory named as an image: %v", err)
	}
}

// TestMissingImageIsNotExist: a missing image still reads as
// fs.ErrNotExist through the checks.
func TestMissingImageIsNotExist(t *testing.T) {
	d := &Dir{Path: t.TempDir()}
	if _, err := d.ReadTask(testPid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadTask of a missing image: %v, want fs.ErrNotExist", err)
	}
}

// copyOf copies the image directory src into a new one and returns it.
func copyOf(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range entries(t, src) {
		copyTo(t, filepath.Join(src, name), filepath.Join(dst, name))
	}
	return dst
}

// copyOfChanged is copyOf with change applied to its file name.
func copyOfChanged(t *testing.T, src, name string, change func(*testing.T, string)) string {
	t.Helper()
	dir := copyOf(t, src)
	change(t, filepath.Join(dir, name))
	return dir
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
