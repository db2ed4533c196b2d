//go:build linux

package images

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// otherUID is a user that is not the one running the tests (nobody).
const otherUID = 65534

// TestCreateRefuses: a dump is refused, in one line naming what is wrong,
// into a directory it must not replace or that another user could write;
// the refusal changes nothing and leaves nothing behind.
func TestCreateRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, parent, dir string)
		want  []string // in the error
		root  bool     // the setup needs root (chown)
	}{
		{"OtherFiles", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o700)
			write(t, filepath.Join(dir, "notes.txt"), 0o600)
		}, []string{"notes.txt", "regular file", "did not write"}, false},
		{"SymlinkAsImage", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o700)
			victim := filepath.Join(parent, "victim")
			write(t, victim, 0o600)
			symlink(t, victim, filepath.Join(dir, pagesName(testPid, 0)))
		}, []string{pagesName(testPid, 0), "symbolic link"}, false},
		{"DirectoryAsImage", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o700)
			mkdir(t, filepath.Join(dir, taskName(testPid)), 0o700)
		}, []string{taskName(testPid), "a directory"}, false},
		{"FIFOAsImage", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o700)
			mkfifo(t, filepath.Join(dir, inventoryName))
		}, []string{inventoryName, "FIFO"}, false},
		{"DirIsSymlink", func(t *testing.T, parent, dir string) {
			target := filepath.Join(parent, "elsewhere")
			mkdir(t, target, 0o700)
			symlink(t, target, dir)
		}, []string{"symbolic link"}, false},
		{"DirIsFile", func(t *testing.T, parent, dir string) {
			write(t, dir, 0o600)
		}, []string{"not a directory"}, false},
		{"DirWorldWritable", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o777)
		}, []string{"writable by all users", "0777"}, false},
		{"DirGroupWritable", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o770)
		}, []string{"writable by its group"}, false},
		{"DirWorldWritableSticky", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o1777)
		}, []string{"writable by all users"}, false},
		{"ParentWorldWritable", func(t *testing.T, parent, dir string) {
			chmod(t, parent, 0o777)
		}, []string{"parent", "without the sticky bit"}, false},
		{"ParentWorldWritableNewDir", func(t *testing.T, parent, dir string) {
			chmod(t, parent, 0o777)
			mkdir(t, dir, 0o700)
		}, []string{"parent", "without the sticky bit"}, false},
		{"DirOwnedByOther", func(t *testing.T, parent, dir string) {
			mkdir(t, dir, 0o700)
			chown(t, dir, otherUID)
		}, []string{"owned by uid 65534"}, true},
		{"ParentOwnedByOther", func(t *testing.T, parent, dir string) {
			chmod(t, parent, 0o1777)
			chown(t, parent, otherUID)
		}, []string{"parent", "owned by uid 65534"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("needs root to give a directory to another user (chown)")
			}
			parent := filepath.Join(t.TempDir(), "parent")
			mkdir(t, parent, 0o700)
			dir := filepath.Join(parent, "ckpt")
			c.setup(t, parent, dir)
			before := snapshot(t, parent)
			d, err := Create(dir)
			if err == nil {
				d.Abort()
				t.Fatalf("Create(%s) succeeded", dir)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, dir) {
				t.Errorf("error %q is not one line naming %s", msg, dir)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if after := snapshot(t, parent); after != before {
				t.Errorf("a refused Create changed %s:\nbefore:\n%s\nafter:\n%s", parent, before, after)
			}
		})
	}
}

// TestCreateAccepts: directories a dump may go to: /tmp-like parents
// (world-writable with the sticky bit), an empty directory, a new one.
func TestCreateAccepts(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, parent, dir string)
	}{
		{"New", func(t *testing.T, parent, dir string) {}},
		{"NewInStickyParent", func(t *testing.T, parent, dir string) { chmod(t, parent, 0o1777) }},
		{"Empty", func(t *testing.T, parent, dir string) { mkdir(t, dir, 0o755) }},
		{"OldDump", func(t *testing.T, parent, dir string) { writeSampleDump(t, dir) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "parent")
			mkdir(t, parent, 0o700)
			dir := filepath.Join(parent, "ckpt")
			c.setup(t, parent, dir)
			writeSampleDump(t, dir)
			if _, err := Open(dir); err != nil {
				t.Fatal(err)
			}
			if names := entries(t, parent); len(names) != 1 {
				t.Errorf("beside the dump: %q, want only ckpt", names)
			}
		})
	}
}

// TestDumpNeverWritesThroughPlanted: an old image that is a file another
// user owns and can read is replaced, not written: the dump's images are
// new files of mode 0600 owned by the user dumping, in a directory of
// mode 0700, and the old file keeps its contents.
func TestDumpNeverWritesThroughPlanted(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	mkdir(t, dir, 0o700)
	planted := filepath.Join(dir, pagesName(testPid, 0))
	if err := os.WriteFile(planted, []byte("someone else's"), 0o666); err != nil {
		t.Fatal(err)
	}
	chmod(t, planted, 0o666)
	if os.Geteuid() == 0 {
		chown(t, planted, otherUID)
	} else {
		t.Log("not root: the planted file is the test user's own (its owner is not changed)")
	}
	// Held open, as its owner could: whatever is written to that file
	// shows here.
	old, err := os.Open(planted)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	writeSampleDump(t, dir)

	b := make([]byte, 64)
	n, _ := old.ReadAt(b, 0)
	if got := string(b[:n]); got != "someone else's" {
		t.Errorf("the planted file now holds %q: the dump wrote through it", got)
	}
	for _, name := range entries(t, dir) {
		st, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 || fileUID(st) != uint32(os.Geteuid()) {
			t.Errorf("image %s: mode %v, owner %d; want a regular file of mode 0600 owned by %d", name, st.Mode(), fileUID(st), os.Geteuid())
		}
	}
	data, err := os.ReadFile(planted)
	if err != nil || !bytes.Contains(data, samplePageData()) {
		t.Errorf("%s does not hold the new page data (%v)", planted, err)
	}
}

func mkdir(t *testing.T, path string, mode uint32) {
	t.Helper()
	if err := unix.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

// chmod sets the raw mode bits (os.Chmod spells the sticky bit
// os.ModeSticky, not 0o1000).
func chmod(t *testing.T, path string, mode uint32) {
	t.Helper()
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("not gocr's\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileUID(st os.FileInfo) uint32 { return st.Sys().(*syscall.Stat_t).Uid }

// snapshot describes everything under dir (names, types, modes, owners,
// file contents), without following links or opening FIFOs.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v uid %d", p, st.Mode(), fileUID(st))
		if st.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
