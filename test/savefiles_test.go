//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Mapped files saved in the dump (gocr dump --save, BLCR's --save-*) and
// paths looked up elsewhere at restore (gocr restore --relocate): the
// savedfiles target runs from its own copy of its binary, loads a library
// and maps a data file, all in one directory, with its cwd and an open
// file in a subdirectory.

var (
	savedLibOnce sync.Once
	savedLibPath string
	savedLibErr  error
)

// savedLib builds test/targets/savedlib.c into a shared library, once.
func savedLib(t *testing.T) string {
	t.Helper()
	savedLibOnce.Do(func() {
		savedLibPath = filepath.Join(binDir, "libsaved.so")
		src := filepath.Join(moduleRoot, "test", "targets", "savedlib.c")
		if b, err := exec.Command("gcc", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-o", savedLibPath, src).CombinedOutput(); err != nil {
			savedLibErr = fmt.Errorf("build %s: %w\n%s", src, err, b)
		}
	})
	if savedLibErr != nil {
		t.Fatal(savedLibErr)
	}
	return savedLibPath
}

// savedJob is the savedfiles target's directory: its binary, library,
// data file and working directory.
type savedJob struct {
	dir, exe, lib, data, work string
}

// dataSize is three pages and a bit: the last page is partly past the end.
const dataSize = 3*4096 + 100

// writeData writes the pattern savedfiles checks ((i*13+7) & 0xff), or,
// with shift, another one, to a new file that replaces path.
func writeData(t *testing.T, path string, size int, shift byte) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*13+7) + shift
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newSavedJob(t *testing.T, dir string) savedJob {
	t.Helper()
	j := savedJob{dir: dir, exe: filepath.Join(dir, "savedfiles"), lib: filepath.Join(dir, "libsaved.so"),
		data: filepath.Join(dir, "data"), work: filepath.Join(dir, "work")}
	if err := os.MkdirAll(j.work, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, targets["savedfiles"][0], j.exe, 0o755)
	copyFile(t, savedLib(t), j.lib, 0o755)
	writeData(t, j.data, dataSize, 0)
	if err := os.WriteFile(filepath.Join(j.work, "file"), []byte("0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

func (j savedJob) start(t *testing.T) *target {
	t.Helper()
	return startTargetOpts(t, "savedfiles", startOpts{binary: j.exe, args: []string{j.lib, j.data, j.work}})
}

// dumpSaved dumps a fresh savedfiles job with dumpArgs (after prepare,
// which runs while it runs) and returns the job, its target (dead and
// reaped) and the image directory.
func dumpSaved(t *testing.T, prepare func(savedJob), dumpArgs ...string) (savedJob, *target, string) {
	t.Helper()
	j := newSavedJob(t, filepath.Join(t.TempDir(), "A"))
	tg := j.start(t)
	if prepare != nil {
		prepare(j)
	}
	image := t.TempDir()
	dump(t, tg.pid, image, dumpArgs...)
	tg.waitDead(t, "a dump without --leave-running")
	return j, tg, image
}

func remove(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// exeLink is the restored process's /proc/PID/exe.
func exeLink(t *testing.T, pid int) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// savedImages counts the dump's saved file images.
func savedImages(t *testing.T, image string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(image, "file-*.img"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestSaveFilesPrivateAndShared(t *testing.T) {
	needsGocr(t)
	j, tg, image := dumpSaved(t, nil, "--save=private", "--save", "shared")
	// The executable, the library and the data file (mapped both ways,
	// saved once), and libc and the dynamic loader.
	if n := savedImages(t, image); n < 5 {
		t.Fatalf("the dump holds %d saved files, want at least 5", n)
	}
	// Gone, or another file at the same path.
	remove(t, j.exe, j.lib)
	writeData(t, j.data, dataSize+1, 1)
	pid := restoreDetached(t, tg, image, nil)
	if link := exeLink(t, pid); !strings.HasPrefix(link, "/memfd:") || !strings.Contains(link, j.exe) {
		t.Errorf("/proc/%d/exe is %q, want the saved copy of %s (/memfd:...)", pid, link, j.exe)
	}
	// Restored from copies, it is dumped and restored again, asking for
	// nothing: its executable is a memfd, saved as a deleted file is.
	again := t.TempDir()
	dump(t, pid, again)
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored pid %d still runs after its dump", pid)
	}
	pid = restoreDetached(t, tg, again, nil)
	if link := exeLink(t, pid); !strings.HasPrefix(link, "/memfd:") || !strings.Contains(link, j.exe) {
		t.Errorf("restored twice, /proc/%d/exe is %q, want the saved copy of %s (/memfd:...)", pid, link, j.exe)
	}
	checkResult(t, tg, pid)
}

func TestSaveFilesExe(t *testing.T) {
	needsGocr(t)
	t.Run("ExecutableGone", func(t *testing.T) {
		j, tg, image := dumpSaved(t, nil, "--save=exe")
		if n := savedImages(t, image); n != 1 {
			t.Fatalf("--save=exe saved %d files, want the executable alone", n)
		}
		remove(t, j.exe)
		pid := restoreDetached(t, tg, image, nil)
		checkResult(t, tg, pid)
	})
	t.Run("LibraryGone", func(t *testing.T) {
		// The executable alone was saved: the library must be there.
		j, tg, image := dumpSaved(t, nil, "--save=exe")
		remove(t, j.lib)
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d")
		assertRefused(t, r, []string{j.lib}, nil)
		assertNoProcess(t, tg.pid)
	})
	t.Run("SharedNotSaved", func(t *testing.T) {
		// --save=private leaves the read-only shared mapping of the
		// data file to its path, which now holds other data.
		j, tg, image := dumpSaved(t, nil, "--save=private")
		writeData(t, j.data, dataSize, 1)
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d")
		assertRefused(t, r, []string{j.data, "changed"}, nil)
		assertNoProcess(t, tg.pid)
	})
	t.Run("BadValue", func(t *testing.T) {
		r := runGocr(t, nil, "dump", "-t", "1", "-D", t.TempDir(), "--save=libs")
		assertRefused(t, r, []string{"--save", "libs"}, nil)
	})
}

// TestSaveFilesUnchanged: where the files are still there, unchanged, the
// restore maps them, not the saved copies: the kernel's view (maps,
// /proc/PID/exe) is the dump's.
func TestSaveFilesUnchanged(t *testing.T) {
	needsRoot(t)
	j := newSavedJob(t, filepath.Join(t.TempDir(), "A"))
	tg := j.start(t)
	pid := checkpointRestore(t, tg, cycleOpts{dumpArgs: []string{"--save=all"}})
	checkResult(t, tg, pid)
}

// TestSaveFilesDeletedAtDump: files deleted while mapped are saved without
// being asked, as BLCR saved them: no path leads to them.
func TestSaveFilesDeletedAtDump(t *testing.T) {
	needsGocr(t)
	_, tg, image := dumpSaved(t, func(j savedJob) { remove(t, j.exe, j.lib) })
	if n := savedImages(t, image); n != 2 {
		t.Fatalf("the dump saved %d files, want the deleted executable and library", n)
	}
	pid := restoreDetached(t, tg, image, nil)
	checkResult(t, tg, pid)
}

// TestSaveFilesTargetChecks: the target notices when its mapped data is
// not what it was (here: written in place while it runs).
func TestSaveFilesTargetChecks(t *testing.T) {
	needsRoot(t)
	j := newSavedJob(t, filepath.Join(t.TempDir(), "A"))
	tg := j.start(t)
	f, err := os.OpenFile(j.data, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0}, 2*4096+5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitResult(t, tg, tg.pid); !strings.HasPrefix(v, "FAIL") || !strings.Contains(v, "byte 8197") {
		t.Fatalf("target %s with changed data reported %q, want a FAIL naming byte 8197", tg.name, v)
	}
}

func TestRelocate(t *testing.T) {
	needsGocr(t)
	t.Run("Moved", func(t *testing.T) {
		j, tg, image := dumpSaved(t, nil)
		moved := filepath.Join(filepath.Dir(j.dir), "B")
		if err := os.Rename(j.dir, moved); err != nil {
			t.Fatal(err)
		}
		pid := restoreDetached(t, tg, image, nil, "--relocate", j.dir+"="+moved)
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != filepath.Join(moved, "work") {
			t.Errorf("restored cwd is %q (%v), want %s", cwd, err, filepath.Join(moved, "work"))
		}
		if link := exeLink(t, pid); link != filepath.Join(moved, "savedfiles") {
			t.Errorf("/proc/%d/exe is %q, want %s", pid, link, filepath.Join(moved, "savedfiles"))
		}
		checkResult(t, tg, pid)
	})
	t.Run("NewMissing", func(t *testing.T) {
		j, tg, image := dumpSaved(t, nil)
		moved := filepath.Join(filepath.Dir(j.dir), "B")
		if err := os.Rename(j.dir, moved); err != nil {
			t.Fatal(err)
		}
		nowhere := filepath.Join(filepath.Dir(j.dir), "C")
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d", "--relocate", j.dir+"="+nowhere)
		assertRefused(t, r, []string{nowhere}, nil)
		assertNoProcess(t, tg.pid)
	})
	t.Run("BadSpec", func(t *testing.T) {
		r := runGocr(t, nil, "restore", "-D", t.TempDir(), "--relocate", "relative=/b")
		assertRefused(t, r, []string{"--relocate", "relative=/b"}, nil)
	})
}
