//go:build linux

package test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/testhook"
)

// The image directory as hostile ground: a dump never damages the
// checkpoint already there, never writes through what someone planted,
// never goes where another user could read or replace it; a restore or
// show never trusts images another user could have written, and never
// blocks on a file that is not one.

// nobody is a user other than the one running the tests.
const nobody = 65534

// dirState describes every file under dir: name, mode, owner and a hash
// of the contents, to show that a failed gocr run changed nothing.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range listDir(t, dir) {
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v uid %d", name, st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
		if st.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " sha256 %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// besideDir lists the parent of dir, to see what a dump left next to it.
func besideDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// startSocketHolder starts a process holding a TCP socket on fd 3, which
// gocr refuses (its peer is outside the dump) once it has frozen it and
// begun the dump, and returns its PID.
func startSocketHolder(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// bash's /dev/tcp opens a connected socket; exec keeps fd 3.
	cmd := exec.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && exec sleep 600", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
		if strings.TrimSpace(string(comm)) == "sleep" && strings.HasPrefix(link, "socket:") {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became sleep holding a socket on fd 3 (comm %q, fd 3 %q)", pid, comm, link)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runningCounter starts a counter and waits until it counts. (Each check
// of a target ends it: checkIntactCounter asks it for its verdict.)
func runningCounter(t *testing.T) *target {
	t.Helper()
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 10)
	return tg
}

// TestDumpKeepsOldCheckpoint: a dump into a directory holding a good
// checkpoint leaves it whole when it is refused, when it fails after it
// began writing, and when gocr is killed in the middle; a dump that
// succeeds replaces it as a whole.
func TestDumpKeepsOldCheckpoint(t *testing.T) {
	needsGocr(t)
	tg := runningCounter(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	dump(t, tg.pid, dir, "--leave-running")
	good := dirState(t, dir)
	if !strings.Contains(good, "stats-dump.json") {
		t.Fatalf("the dump holds no stats-dump.json:\n%s", good)
	}
	unchanged := func(t *testing.T, when string) {
		t.Helper()
		if now := dirState(t, dir); now != good {
			t.Fatalf("the checkpoint changed %s:\nbefore:\n%s\nafter:\n%s", when, good, now)
		}
	}

	t.Run("FailsAfterStart", func(t *testing.T) {
		pid := startSocketHolder(t)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(pid), "-D", dir)
		assertRefused(t, r, []string{"fd 3", "socket"}, nil)
		unchanged(t, "by a dump refused after it began")
		if left := besideDir(t, dir); len(left) != 1 {
			t.Errorf("a refused dump left %q beside the checkpoint", left)
		}
		assertUntouched(t, pid)
	})

	t.Run("RefusedForeignFiles", func(t *testing.T) {
		other := runningCounter(t)
		otherDir := filepath.Join(t.TempDir(), "ckpt")
		dump(t, other.pid, otherDir, "--leave-running")
		notes := filepath.Join(otherDir, "notes.txt")
		if err := os.WriteFile(notes, []byte("mine\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := dirState(t, otherDir)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(other.pid), "-D", otherDir)
		assertRefused(t, r, []string{otherDir, "notes.txt"}, nil)
		if after := dirState(t, otherDir); after != before {
			t.Errorf("a refused dump changed %s:\nbefore:\n%s\nafter:\n%s", otherDir, before, after)
		}
		checkIntactCounter(t, other)
	})

	t.Run("GocrKilled", func(t *testing.T) {
		other := runningCounter(t)
		cmd := startGocr(t, testhook.Setting(testhook.PauseAfterInfect, "5s"), "dump", "-t", strconv.Itoa(other.pid), "-D", dir)
		waitHook(t, cmd, testhook.PauseAfterInfect)
		killGocr(t, cmd)
		unchanged(t, "by a killed dump")
		left := besideDir(t, dir)
		if len(left) != 2 || left[1] != "ckpt" || !strings.HasPrefix(left[0], ".ckpt.gocr-tmp-") {
			t.Errorf("beside the checkpoint after a killed dump: %q, want ckpt and a .ckpt.gocr-tmp-* directory", left)
		}
		time.Sleep(time.Second) // the parasite notices gocr is gone
		checkIntactCounter(t, other)
	})

	// The checkpoint survived all that: it restores. A dump that
	// succeeds then replaces it as a whole, and that one restores too.
	tg.killOriginal(t)
	pid := restoreDetached(t, tg, dir, nil)
	dump(t, pid, dir)
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("pid %d still present after a dump without --leave-running", pid)
	}
	if now := dirState(t, dir); now == good {
		t.Fatalf("a successful dump left the old checkpoint in place")
	}
	for _, name := range besideDir(t, dir) {
		if name != "ckpt" && !strings.HasPrefix(name, ".ckpt.gocr-tmp-") {
			t.Errorf("beside the checkpoint after a dump: %s", name)
		}
	}
	pid = restoreDetached(t, tg, dir, nil)
	checkResult(t, tg, pid)
	counterLines(t, tg.logPath, true)
}

// TestDumpIntoHostileDir: a root dump never writes through a link planted
// in the image directory, never leaves dumped memory readable through a
// file another user owns, and refuses directories another user could
// write.
func TestDumpIntoHostileDir(t *testing.T) {
	needsGocr(t)

	t.Run("PlantedSymlink", func(t *testing.T) {
		tg := runningCounter(t)
		pid := strconv.Itoa(tg.pid)
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "ckpt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(dir, "pages-"+pid+".img")); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "dump", "-t", pid, "-D", dir, "--leave-running")
		assertRefused(t, r, []string{"pages-" + pid + ".img", "symbolic link"}, nil)
		if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
			t.Errorf("the link's target now holds %q (%v)", b, err)
		}
		checkIntactCounter(t, tg)
	})

	t.Run("ForeignImageFile", func(t *testing.T) {
		tg := runningCounter(t)
		pid := strconv.Itoa(tg.pid)
		dir := filepath.Join(t.TempDir(), "ckpt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		planted := filepath.Join(dir, "pages-"+pid+".img")
		if err := os.WriteFile(planted, []byte("nobody's\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(planted, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(planted, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		// Its owner keeps it open: what is written to that file, they
		// read.
		f, err := os.Open(planted)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dump(t, tg.pid, dir, "--leave-running")
		b := make([]byte, 64)
		n, _ := f.ReadAt(b, 0)
		if string(b[:n]) != "nobody's\n" {
			t.Errorf("the planted file now holds %q: the dump wrote through it", b[:n])
		}
		if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("the image directory has mode %v (%v), want 0700", st.Mode(), err)
		}
		for _, name := range listDir(t, dir) {
			st, err := os.Lstat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if uid := st.Sys().(*syscall.Stat_t).Uid; !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 || uid != uint32(os.Geteuid()) {
				t.Errorf("%s: mode %v, owner %d; want a regular file of mode 0600 owned by %d", name, st.Mode(), uid, os.Geteuid())
			}
		}
		checkIntactCounter(t, tg)
	})

	for _, c := range []struct {
		name  string
		setup func(t *testing.T) string // returns the image directory
		want  []string
	}{
		{"WorldWritableDir", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"writable by all users"}},
		{"DirOwnedByOther", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"owned by uid 65534"}},
		{"WorldWritableParent", func(t *testing.T) string {
			parent := t.TempDir()
			if err := os.Chmod(parent, 0o777); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(parent, "ckpt")
		}, []string{"parent", "sticky"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := runningCounter(t)
			pid := strconv.Itoa(tg.pid)
			dir := c.setup(t)
			before := dirState(t, filepath.Dir(dir))
			r := runGocr(t, nil, "dump", "-t", pid, "-D", dir, "--leave-running")
			assertRefused(t, r, append([]string{dir}, c.want...), nil)
			if after := dirState(t, filepath.Dir(dir)); after != before {
				t.Errorf("a refused dump changed %s:\nbefore:\n%s\nafter:\n%s", filepath.Dir(dir), before, after)
			}
			checkIntactCounter(t, tg)
		})
	}
}

// TestRestoreUntrustedImages: restore and show refuse, naming the file,
// an image another user could have written, unless --trust-images.
func TestRestoreUntrustedImages(t *testing.T) {
	needsGocr(t)
	image, tg := dumpedCounter(t)
	pid := strconv.Itoa(tg.pid)
	for _, c := range []struct {
		name, file string
		change     func(path string) error
		want       string
	}{
		{"WorldWritableTask", "task-" + pid + ".img", func(p string) error { return os.Chmod(p, 0o666) }, "writable by its group or all users"},
		{"ForeignPages", "pages-" + pid + ".img", func(p string) error { return os.Chown(p, nobody, nobody) }, "owned by uid 65534"},
		{"ForeignInventory", "inventory.img", func(p string) error { return os.Chown(p, nobody, nobody) }, "owned by uid 65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, image)
			if err := c.change(imageFile(t, dir, c.file)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			r := runGocr(t, nil, "restore", "-D", dir, "-d")
			assertRefused(t, r, []string{c.file, c.want, "--trust-images"}, nil)
			assertNoProcess(t, tg.pid)
			r = runGocr(t, nil, "show", dir)
			assertRefused(t, r, []string{c.file}, nil)
			if r := runGocr(t, nil, "show", "--trust-images", dir); r.code != 0 {
				t.Errorf("show --trust-images: %v", r)
			}
			// The previous case's verdict must not count for this one.
			if err := os.Remove(tg.result); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			restoreDetached(t, tg, dir, nil, "--trust-images")
			checkResult(t, tg, tg.pid)
		})
	}
}

// TestShowMissingImage: gocr show fails in one line naming an image the
// inventory needs that is missing, or is a directory.
func TestShowMissingImage(t *testing.T) {
	needsGocr(t)
	image, tg := dumpedCounter(t)
	pid := strconv.Itoa(tg.pid)
	for _, file := range []string{"task-" + pid + ".img", "mm-" + pid + ".img", "pages-" + pid + ".img"} {
		dir := copyDir(t, image)
		if err := os.Remove(imageFile(t, dir, file)); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "show", dir)
		assertRefused(t, r, []string{file + " missing"}, nil)
		if !bytes.Contains([]byte(r.stdout), []byte("=== "+file+" ===\nmissing: ")) {
			t.Errorf("show does not report %s missing in place:\n%s", file, r.stdout)
		}
	}
}
