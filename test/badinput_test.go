//go:build linux

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gocr/gocr/proc"
)

// TestBadInput: arguments that cannot work (a PID with no process, an
// image directory that cannot be made, an empty or damaged image, a PID in
// use, a file deleted since the dump, a set-uid process) are refused with
// one line naming the problem, and nothing is lost: a target that was
// running keeps running untouched, a failed restore leaves no process.
func TestBadInput(t *testing.T) {
	needsGocr(t)

	t.Run("DumpNoSuchPID", func(t *testing.T) {
		pid := freePID(t)
		dir := t.TempDir()
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(pid), "-D", dir)
		assertOneLineError(t, r, []string{strconv.Itoa(pid)}, nil)
		if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
			t.Fatalf("failed dump left %s/inventory.img, which marks a complete image", dir)
		}
	})

	// A kernel thread has no user memory or executable to dump.
	t.Run("DumpKernelThread", func(t *testing.T) {
		needsRoot(t)
		st, err := proc.ReadStat(2)
		if err != nil || st.Flags&0x00200000 == 0 { // PF_KTHREAD, include/linux/sched.h
			t.Skipf("PID 2 is not kthreadd here (a PID namespace?): %v", err)
		}
		r := runGocr(t, nil, "dump", "-t", "2", "-D", t.TempDir())
		assertOneLineError(t, r, []string{"pid 2", "kernel thread"}, nil)
	})

	t.Run("DumpUnwritableDir", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		file := filepath.Join(t.TempDir(), "regular-file")
		if err := os.WriteFile(file, []byte("not a directory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", filepath.Join(file, "images"))
		assertOneLineError(t, r, []string{file}, nil)
		checkIntactCounter(t, tg)
	})

	t.Run("RestoreEmptyDir", func(t *testing.T) {
		dir := t.TempDir()
		r := runGocr(t, nil, "restore", "-D", dir, "-d")
		assertOneLineError(t, r, nil, []string{dir, "inventory"})
	})

	t.Run("RestoreCorrupt", func(t *testing.T) {
		image, tg := dumpedCounter(t)
		pid := strconv.Itoa(tg.pid)
		cases := []struct {
			name    string
			file    string
			corrupt func(t *testing.T, path string)
		}{
			{"TruncatedPages", "pages-" + pid + ".img", func(t *testing.T, path string) {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() < 4096 {
					t.Fatalf("%s is only %d bytes, cannot cut 4096", path, st.Size())
				}
				if err := os.Truncate(path, st.Size()-4096); err != nil {
					t.Fatal(err)
				}
			}},
			{"FlippedTaskByte", "task-" + pid + ".img", func(t *testing.T, path string) {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}},
			{"ForeignInventory", "inventory.img", func(t *testing.T, path string) {
				copyFile(t, "/bin/true", path, 0o644)
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				dir := copyDir(t, image)
				c.corrupt(t, imageFile(t, dir, c.file))
				t.Cleanup(func() { tg.killRestored(t, tg.pid) })
				r := runGocr(t, nil, "restore", "-D", dir, "-d")
				assertOneLineError(t, r, []string{c.file}, nil)
				assertNoProcess(t, tg.pid)
			})
		}
	})

	t.Run("RestorePIDInUse", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		dir := t.TempDir()
		dump(t, tg.pid, dir, "--leave-running")
		r := runGocr(t, nil, "restore", "-D", dir, "-d")
		// The comm of the holder is the target's file name.
		assertOneLineError(t, r, []string{strconv.Itoa(tg.pid), "counter"}, nil)
		checkIntactCounter(t, tg)
	})

	t.Run("RestoreDeletedFile", func(t *testing.T) {
		files := t.TempDir()
		tg := startTarget(t, "fds", files)
		dir := t.TempDir()
		dump(t, tg.pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		if err := os.Remove(filepath.Join(files, "nonblock.txt")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", dir, "-d")
		assertOneLineError(t, r, []string{"nonblock.txt"}, nil)
		assertNoProcess(t, tg.pid)
	})

	t.Run("DumpSetuid", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skipf("cannot run a set-uid process: setpriv not found: %v", err)
		}
		// A set-uid-root copy of counter started by nobody runs with real
		// uid 65534 and effective uid 0 (execve(2), "set-user-ID").
		suid := filepath.Join(binDir, "counter-setuid")
		copyFile(t, targets["counter"][0], suid, 0o755)
		t.Cleanup(func() { os.Remove(suid) })
		if err := os.Chown(suid, 0, 0); err != nil {
			t.Fatal(err)
		}
		// os.Chmod maps only os.ModeSetuid to S_ISUID, not 0o4000.
		if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(suid); err != nil || st.Mode()&os.ModeSetuid == 0 {
			t.Fatalf("%s is not set-uid after chmod: %v %v", suid, st.Mode(), err)
		}
		tg := startTargetOpts(t, "counter", startOpts{
			binary: suid,
			wrap:   []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"},
		})
		ruid, euid := uids(t, tg.pid)
		if ruid == euid {
			t.Skipf("could not produce a set-uid process: pid %d has real uid %d = effective uid %d (nosuid mount?)", tg.pid, ruid, euid)
		}
		waitCounter(t, tg, 10)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertOneLineError(t, r, []string{strconv.Itoa(tg.pid)}, []string{"uid", "set-id", "setid"})
		checkIntactCounter(t, tg)
	})
}
