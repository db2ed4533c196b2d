//go:build linux

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/gocr/gocr/internal/testhook"
)

// TestDumpStorageFailures: a dump whose image directory fills up, turns
// out read-only, or fails with I/O errors (before the dump, and in its
// middle, after the parasite is in) is refused in one line naming the
// error; the target runs on untouched; the checkpoint taken before it in
// the same directory is still there, unchanged, and restores.
func TestDumpStorageFailures(t *testing.T) {
	needsGocr(t)
	t.Run("ENOSPC", func(t *testing.T) {
		mnt := mountFS(t, "tmpfs", "size=16m")
		storageFailure(t, mnt, func(t *testing.T, dir string) {
			// Room for half the checkpoint there is, beside it.
			var st syscall.Statfs_t
			if err := syscall.Statfs(mnt, &st); err != nil {
				t.Fatal(err)
			}
			used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
			run(t, "mount", "-o", "remount,size="+strconv.FormatUint(used+used/2, 10), mnt)
			// Without --leave-running: a dump that succeeded would
			// end the target.
		}, nil, "no space left on device", false)
	})
	t.Run("ReadOnly", func(t *testing.T) {
		mnt := mountFS(t, "tmpfs", "size=16m")
		storageFailure(t, mnt, func(t *testing.T, dir string) {
			// A read-only bind mount over the directory's parent.
			run(t, "mount", "--bind", mnt, mnt)
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			run(t, "mount", "-o", "remount,bind,ro", mnt)
		}, nil, "read-only file system", true)
	})
	// EIO: ext4 on a loop device, shut down (EXT4_IOC_SHUTDOWN), after
	// which every operation on it fails with EIO (fs/ext4/ioctl.c,
	// ext4_shutdown; ext4_forced_shutdown checks); unmounted and
	// mounted again, it holds what was synced before.
	for _, mid := range []bool{false, true} {
		name := "EIOBeforeDump"
		if mid {
			name = "EIOMidDump"
		}
		t.Run(name, func(t *testing.T) {
			img, mnt := mountExt4(t)
			shutdown := func(t *testing.T, dir string) { shutdownFS(t, mnt) }
			remount := func(t *testing.T) {
				run(t, "umount", mnt)
				run(t, "mount", "-o", "loop", img, mnt)
			}
			if mid {
				storageFailureMid(t, mnt, shutdown, remount, "input/output error")
				return
			}
			storageFailure(t, mnt, shutdown, remount, "input/output error", true)
		})
	}
}

// storageFailure takes a checkpoint of a counter in mnt/ckpt, breaks the
// storage with breakIt, and requires a second dump into the same
// directory to be refused saying want. repair, if set, makes the storage
// readable again before the first checkpoint is checked and restored.
func storageFailure(t *testing.T, mnt string, breakIt func(*testing.T, string), repair func(*testing.T), want string, leaveRunning bool) {
	t.Helper()
	tg, dir, good := checkpointIn(t, mnt)
	breakIt(t, dir)
	args := []string{"dump", "-t", strconv.Itoa(tg.pid), "-D", dir}
	if leaveRunning {
		args = append(args, "--leave-running")
	}
	r := runGocr(t, nil, args...)
	assertRefused(t, r, []string{want}, nil)
	afterStorageFailure(t, tg, dir, good, repair)
}

// storageFailureMid is storageFailure with the storage broken while the
// dump is under way: once the parasite is in the target.
func storageFailureMid(t *testing.T, mnt string, breakIt func(*testing.T, string), repair func(*testing.T), want string) {
	t.Helper()
	tg, dir, good := checkpointIn(t, mnt)
	// gocr holds after saying it is there until the storage is broken.
	hook, goOn := heldAt(t, testhook.PauseAfterInfect)
	g := startGocr(t, hook, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir, "--leave-running")
	waitHook(t, g, testhook.PauseAfterInfect)
	breakIt(t, dir)
	goOn()
	code, lines := finishGocr(t, g, gocrTimeout)
	if code == 0 || len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), want) {
		t.Fatalf("want a failure with one line saying %q, got exit %d and:\n%s", want, code, strings.Join(lines, "\n"))
	}
	t.Logf("gocr dump: %s", lines[0])
	afterStorageFailure(t, tg, dir, good, repair)
}

// checkpointIn starts a counter and checkpoints it (--leave-running)
// into mnt/ckpt; it returns the target, the directory and its state.
func checkpointIn(t *testing.T, mnt string) (*target, string, string) {
	t.Helper()
	tg := runningCounter(t)
	dir := filepath.Join(mnt, "ckpt")
	dump(t, tg.pid, dir, "--leave-running")
	return tg, dir, dirState(t, dir)
}

// afterStorageFailure checks what a refused dump left: the target running
// untouched, and, once repair has made the storage readable again, the
// earlier checkpoint unchanged beside at most the refused dump's own
// temporary directory (a file system that fails every write cannot have
// it removed); that checkpoint restores and passes.
func afterStorageFailure(t *testing.T, tg *target, dir, good string, repair func(*testing.T)) {
	t.Helper()
	if tg.exited() {
		t.Fatalf("target exited after the refused dump: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	if repair != nil {
		repair(t)
	}
	if now := dirState(t, dir); now != good {
		t.Fatalf("the checkpoint changed:\nbefore:\n%s\nafter:\n%s", good, now)
	}
	for _, name := range besideDir(t, dir) {
		if name != "ckpt" && !strings.HasPrefix(name, ".ckpt.gocr-tmp-") && name != "lost+found" {
			t.Errorf("beside the checkpoint after a refused dump: %s", name)
		}
	}
	tg.killOriginal(t)
	pid := restoreDetached(t, tg, dir, nil)
	checkResult(t, tg, pid)
	counterLines(t, tg.logPath, true)
}

// mountFS mounts a new file system of type fstype with options on a new
// directory, unmounted when the test ends.
func mountFS(t *testing.T, fstype, options string) string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", fstype, "-o", options, fstype, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s to fail on: %v: %s", fstype, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

// mountExt4 makes a small ext4 file system in a file and mounts it
// through a loop device; it returns the file and the mount point.
func mountExt4(t *testing.T) (img, mnt string) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skipf("needs mkfs.ext4 (e2fsprogs) for a file system that can fail with EIO: %v", err)
	}
	img = filepath.Join(t.TempDir(), "ext4.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt = t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount an ext4 image through a loop device (CONFIG_BLK_DEV_LOOP, CONFIG_EXT4_FS): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return img, mnt
}

// shutdownFS shuts the ext4 file system mounted at mnt down: from then on
// every operation on it fails with EIO. EXT4_IOC_SHUTDOWN is
// _IOR('X', 125, __u32) with EXT4_GOING_FLAGS_LOGFLUSH (1): the journal is
// flushed first, so what was synced survives (include/uapi/linux/ext4.h).
func shutdownFS(t *testing.T, mnt string) {
	t.Helper()
	const ext4IocShutdown, ext4GoingFlagsLogflush = 0x8004587d, 1
	f, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags := uint32(ext4GoingFlagsLogflush)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), ext4IocShutdown, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		t.Fatalf("EXT4_IOC_SHUTDOWN %s: %v", mnt, errno)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
