//go:build linux

package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// assertOneLineError requires a failed gocr run: non-zero exit and exactly
// one non-empty line on stderr that mentions every string in mustName
// (case-insensitively) and at least one of anyOf when given.
func assertOneLineError(t *testing.T, r gocrRun, mustName []string, anyOf []string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("want a failure, got success\n%v", r)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("want exactly one line on stderr\n%v", r)
	}
	low := strings.ToLower(msg)
	for _, s := range mustName {
		if !strings.Contains(low, strings.ToLower(s)) {
			t.Fatalf("error %q does not name %q", msg, s)
		}
	}
	if len(anyOf) == 0 {
		return
	}
	for _, s := range anyOf {
		if strings.Contains(low, strings.ToLower(s)) {
			return
		}
	}
	t.Fatalf("error %q mentions none of %q", msg, anyOf)
}

// assertUntouched requires pid to be running free: not stopped, not traced
// (a failed dump must detach; proc(5) "TracerPid").
func assertUntouched(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("target pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "t") || strings.HasPrefix(v, "T") || strings.HasPrefix(v, "Z") {
				t.Fatalf("target pid %d is in state %q after gocr", pid, v)
			}
		case "TracerPid":
			if v != "0" {
				t.Fatalf("target pid %d is still traced by pid %s after gocr", pid, v)
			}
		}
	}
}

// assertNoProcess requires that a failed restore left nothing at pid.
func assertNoProcess(t *testing.T, pid int) {
	t.Helper()
	// Checked right away: a live process here means gocr handed over a
	// half-restored task instead of cleaning up.
	if s := procState(pid); s != "" && s != "Z" && s != "X" {
		t.Fatalf("failed restore left pid %d running (state %s)", pid, s)
	}
	// A zombie may be waiting for PID 1 to reap it.
	if !waitGone(pid, 3*time.Second) {
		t.Fatalf("failed restore left pid %d (state %s)", pid, procState(pid))
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
	if err := out.Close(); err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("read image dir: %v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			t.Fatalf("image dir %s holds non-regular %s", src, e.Name())
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), 0o644)
	}
	return dst
}

// imageFile returns the path of name in an image dir, failing with the
// directory's listing if the layout is not what the test expects.
func imageFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("image file %s missing (%v); the image dir holds %q", name, err, names)
	}
	return p
}

// dumpedCounter dumps a counter and returns its image dir and target,
// with the original dead and reaped.
func dumpedCounter(t *testing.T) (string, *target) {
	t.Helper()
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	return dir, tg
}

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

// checkIntactCounter proves a counter survived a failed gocr run as it
// was: running, not traced, still counting, and verifying PASS.
func checkIntactCounter(t *testing.T, tg *target) {
	t.Helper()
	if tg.exited() {
		t.Fatalf("target exited after the failed gocr run: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	n := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, n+10)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}
