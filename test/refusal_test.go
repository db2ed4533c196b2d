//go:build linux

package test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// This file holds the refusals that badinput_test.go does not: the machine
// or the environment is wrong rather than the argument (a full disk, a
// process someone else traces, a CPU without the image's register state, an
// executable gone or changed, images from a newer gocr), the command line
// itself (bad or missing flags, --help), and `gocr check` and `gocr show`.
// Every failure must be a non-zero exit with one line on stderr naming what
// is wrong, and lose nothing: a failed dump leaves its target running as it
// was, a failed restore leaves no process behind.

// TestDumpRefusals: dumps that cannot succeed because of the environment.
func TestDumpRefusals(t *testing.T) {
	needsGocr(t)

	t.Run("FullFilesystem", func(t *testing.T) {
		// The memory target has about 200 MiB of touched pages, far more
		// than the 2 MiB file system can take.
		mnt := t.TempDir()
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
			t.Fatalf("mount a 2 MiB tmpfs on %s: %v", mnt, err)
		}
		// Registered after TempDir, so it runs before the removal.
		t.Cleanup(func() {
			if err := syscall.Unmount(mnt, 0); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		})
		tg := startTarget(t, "memory", t.TempDir())
		dir := filepath.Join(mnt, "images")
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
		assertRefused(t, r, []string{"no space"}, nil)
		assertNoInventory(t, dir)
		// docs/IMAGES.md: "a failed dump removes every file it wrote".
		if left := listDir(t, mnt); len(left) > 0 {
			t.Errorf("failed dump left files behind on the full file system: %q", left)
		}
		// The memory target compares its whole /proc/self/maps and every
		// page, so a parasite left mapped or a page touched would FAIL.
		checkIntact(t, tg)
	})

	// Processes gocr could not restore as they are: refused, untouched.
	for _, c := range []struct {
		name   string
		wrap   func(t *testing.T) []string // argv in front of the counter
		status [2]string                   // a /proc/PID/status line the wrap must give, if any
		want   string
	}{
		// Restored without its filter, the process would run unconfined.
		{"Seccomp", func(*testing.T) []string { return targets["seccomp_exec"] }, [2]string{"Seccomp", "2"}, "seccomp"},
		// Restored in gocr's namespaces it would see another host name.
		{"Namespace", func(t *testing.T) []string {
			unshare, err := exec.LookPath("unshare")
			if err != nil {
				t.Skipf("needs unshare(1) to start a process in its own namespace: %v", err)
			}
			return []string{unshare, "--uts", "--"}
		}, [2]string{}, "uts namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := startTargetOpts(t, "counter", startOpts{wrap: c.wrap(t)})
			waitCounter(t, tg, 10)
			if c.status[0] != "" {
				if v := statusField(t, tg.pid, c.status[0]); v != c.status[1] {
					t.Fatalf("target pid %d has %s %q, want %q", tg.pid, c.status[0], v, c.status[1])
				}
			}
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), c.want}, nil)
			checkIntactCounter(t, tg)
		})
	}

	t.Run("AlreadyTraced", func(t *testing.T) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			t.Skipf("needs strace to trace the target: %v", err)
		}
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		tracer := startTracer(t, strace, tg.pid)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "traced"}, nil)
		// gocr must not have disturbed the other tracer either.
		if got := tracerPid(t, tg.pid); got != tracer.Process.Pid {
			t.Fatalf("after the refused dump pid %d is traced by %d, want strace (pid %d)", tg.pid, got, tracer.Process.Pid)
		}
		stopTracer(t, tracer, tg.pid)
		checkIntactCounter(t, tg)
	})
}

// TestDumpBadPID: -t values that are no process at all.
func TestDumpBadPID(t *testing.T) {
	needsGocr(t)
	for _, c := range []struct {
		arg, name string
		// A value that is no number is a usage error, for which
		// urfave/cli also prints the command's help on stdout (as for
		// a missing flag); a number that is no pid is not.
		usage bool
	}{
		{"0", "Zero", false},
		{"-5", "Negative", false},
		{"abc", "NotANumber", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "images")
			r := runGocr(t, nil, "dump", "-t", c.arg, "-D", dir)
			assertRefused(t, r, []string{c.arg}, nil)
			if !c.usage && r.stdout != "" {
				t.Errorf("refused dump printed on stdout:\n%s", r.stdout)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("dump of pid %q created the image directory %s", c.arg, dir)
			}
		})
	}
}

// TestRestoreRefusals: restores that cannot succeed on this machine or
// from these images.
func TestRestoreRefusals(t *testing.T) {
	needsGocr(t)

	t.Run("CPULacksXsaveFeature", func(t *testing.T) {
		image, tg := dumpedCounter(t)
		src, err := images.Open(image)
		if err != nil {
			t.Fatalf("open the dump: %v", err)
		}
		xcr0 := src.Inventory().Xcr0
		if xcr0 == 0 {
			t.Fatalf("the dump's inventory records no xcr0")
		}
		// AMX tile data (18) first; any feature this CPU does not enable
		// will do.
		bit := -1
		for _, b := range []int{18, 17, 19, 9} {
			if xcr0&(1<<b) == 0 {
				bit = b
				break
			}
		}
		if bit < 0 {
			t.Skipf("this CPU enables every candidate xsave feature (xcr0 %#x)", xcr0)
		}
		bad := rewriteDump(t, image, func(task *gocrpb.Task) {
			task.Threads[0].XstateBv |= 1 << bit
		})
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", bad, "-d")
		assertRefused(t, r, []string{"cpu", "xsave"}, nil)
		assertNoProcess(t, tg.pid)

		// The same rewrite without the extra bit restores: the refusal
		// was about the feature, not a damaged copy.
		good := rewriteDump(t, image, func(*gocrpb.Task) {})
		pid := restoreDetached(t, tg, good, nil)
		checkResult(t, tg, pid)
		counterLines(t, tg.logPath, true)
	})

	t.Run("ExecutableDeleted", func(t *testing.T) {
		image, tg, exe := dumpedCounterCopy(t)
		if err := os.Remove(exe); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d")
		assertRefused(t, r, []string{exe}, nil)
		assertNoProcess(t, tg.pid)
	})

	t.Run("ExecutableChanged", func(t *testing.T) {
		image, tg, exe := dumpedCounterCopy(t)
		f, err := os.OpenFile(exe, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte{0}); err != nil {
			f.Close()
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d")
		assertRefused(t, r, []string{exe, "changed"}, nil)
		assertNoProcess(t, tg.pid)
	})

	t.Run("Images", func(t *testing.T) {
		image, tg := dumpedCounter(t)
		task := "task-" + strconv.Itoa(tg.pid) + ".img"

		t.Run("NewerFormat", func(t *testing.T) {
			dir := copyDir(t, image)
			inv := imageFile(t, dir, "inventory.img")
			b, err := os.ReadFile(inv)
			if err != nil {
				t.Fatal(err)
			}
			// docs/IMAGES.md: u32 LE format version at offset 8.
			if v := binary.LittleEndian.Uint32(b[8:12]); v != images.FormatVersion {
				t.Fatalf("inventory.img header says format %d, want %d: the layout is not what this test expects", v, images.FormatVersion)
			}
			binary.LittleEndian.PutUint32(b[8:12], images.FormatVersion+1)
			if err := os.WriteFile(inv, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			r := runGocr(t, nil, "restore", "-D", dir, "-d")
			assertRefused(t, r, []string{"inventory.img", "newer"}, nil)
			assertNoProcess(t, tg.pid)
		})

		t.Run("MissingTaskImage", func(t *testing.T) {
			dir := copyDir(t, image)
			if err := os.Remove(imageFile(t, dir, task)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			r := runGocr(t, nil, "restore", "-D", dir, "-d")
			assertRefused(t, r, []string{task}, nil)
			assertNoProcess(t, tg.pid)
		})
	})
}

// TestUsage: the command line itself is wrong, or asks for help.
func TestUsage(t *testing.T) {
	needsGocr(t)

	t.Run("MissingFlags", func(t *testing.T) {
		for _, c := range []struct {
			name string
			args []string
			want []string // in the first line of stderr
		}{
			{"RestoreWithoutDir", []string{"restore"}, []string{"images-dir", "not set"}},
			{"RestoreDetachWithoutDir", []string{"restore", "-d"}, []string{"images-dir", "not set"}},
			{"DumpWithoutPID", []string{"dump", "-D", "/nonexistent/gocr-test"}, []string{"tree", "not set"}},
			{"DumpWithoutAnything", []string{"dump"}, []string{"tree", "images-dir", "not set"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := runGocr(t, nil, c.args...)
				if r.code == 0 {
					t.Fatalf("want a failure\n%v", r)
				}
				first, _, _ := strings.Cut(r.stderr, "\n")
				for _, w := range c.want {
					if !strings.Contains(first, w) {
						t.Fatalf("first stderr line %q does not say %q\n%v", first, w, r)
					}
				}
			})
		}
	})

	t.Run("Help", func(t *testing.T) {
		for _, c := range []struct {
			cmd  string
			want []string
		}{
			{"dump", []string{
				"save a running process to a directory of images",
				"gocr dump -t PID -D DIR",
				"Freezes process PID",
				"--leave-running",
				"If the dump fails for any reason the processes keep running",
			}},
			{"restore", []string{
				"start a process again from a directory of images",
				"gocr restore -D DIR",
				"original process ID",
				"--detach",
				"If the restore fails, no process is left behind",
			}},
			{"check", []string{
				"tell whether this machine has what gocr needs",
				"kernel feature gocr relies on as ok or missing",
			}},
			{"show", []string{
				"print a dump's images as JSON",
				"gocr show DIR",
				"every image file in DIR",
			}},
		} {
			t.Run(c.cmd, func(t *testing.T) {
				r := runGocr(t, nil, c.cmd, "--help")
				if r.code != 0 {
					t.Fatalf("want exit 0\n%v", r)
				}
				if strings.TrimSpace(r.stderr) != "" {
					t.Errorf("--help wrote to stderr: %q", r.stderr)
				}
				// The description is wrapped at the terminal width
				// or not; compare with whitespace collapsed.
				out := strings.Join(strings.Fields(r.stdout), " ")
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("gocr %s --help does not say %q:\n%s", c.cmd, w, r.stdout)
					}
				}
			})
		}
	})
}

// TestCheck: this machine has everything gocr needs, and check says so.
func TestCheck(t *testing.T) {
	needsGocr(t)
	r := runGocr(t, nil, "check")
	if r.code != 0 {
		t.Fatalf("gocr check failed on the machine the tests run on\n%v", r)
	}
	if strings.TrimSpace(r.stderr) != "" {
		t.Errorf("gocr check wrote to stderr: %q", r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		t.Fatalf("gocr check printed %d lines, want one per feature\n%v", len(lines), r)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "ok" {
			t.Errorf("gocr check line %q is not \"ok FEATURE\"", l)
		}
	}
}

// TestShow: gocr show prints every image of a real dump as JSON, and fails
// on a damaged one.
func TestShow(t *testing.T) {
	needsGocr(t)
	image, tg := dumpedCounter(t)
	pid := strconv.Itoa(tg.pid)

	r := runGocr(t, nil, "show", image)
	if r.code != 0 {
		t.Fatalf("gocr show on a good dump failed\n%v", r)
	}
	blocks := showBlocks(t, r.stdout)
	for _, name := range []string{"inventory.img", "task-" + pid + ".img", "mm-" + pid + ".img",
		"files-" + pid + ".img", "pagemap-" + pid + ".img", "pages-" + pid + ".img"} {
		body, ok := blocks[name]
		if !ok {
			t.Errorf("gocr show printed no block for %s; blocks: %q", name, keys(blocks))
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Errorf("gocr show's block for %s is not valid JSON: %v\n%s", name, err, body)
		}
	}
	// The JSON says what the dump holds, not just anything parseable.
	var inv struct {
		RootPid int `json:"root_pid"`
	}
	if err := json.Unmarshal([]byte(blocks["inventory.img"]), &inv); err == nil && inv.RootPid != tg.pid {
		t.Errorf("gocr show's inventory has root_pid %d, want %d", inv.RootPid, tg.pid)
	}
	var task struct {
		Pid     int `json:"pid"`
		Threads []struct {
			Tid int `json:"tid"`
		} `json:"threads"`
	}
	if err := json.Unmarshal([]byte(blocks["task-"+pid+".img"]), &task); err == nil &&
		(task.Pid != tg.pid || len(task.Threads) != 1 || task.Threads[0].Tid != tg.pid) {
		t.Errorf("gocr show's task has pid %d and threads %+v, want pid %d with one thread %d", task.Pid, task.Threads, tg.pid, tg.pid)
	}
	// Files that are not images (stats-dump.json) are listed as skipped.
	imageName := regexp.MustCompile(`^(inventory|(task|mm|files|pagemap|pages)-[0-9]+)\.img$`)
	for name, body := range blocks {
		if !imageName.MatchString(name) && !strings.HasPrefix(body, "skipped:") {
			t.Errorf("gocr show printed %q for %s, which is not an image", body, name)
		}
	}

	t.Run("CorruptTask", func(t *testing.T) {
		dir := copyDir(t, image)
		task := "task-" + pid + ".img"
		path := imageFile(t, dir, task)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "show", dir)
		assertRefused(t, r, []string{task}, nil)
	})
}

// TestRestoredCounterDetectsCorruption: the restored counter still runs its
// own check, so a restore that broke it could not pass. The same damage as
// TestTargetsDetectCorruption's Counter case, applied after a real dump and
// restore, must make it FAIL.
func TestRestoredCounterDetectsCorruption(t *testing.T) {
	needsGocr(t)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("needs gdb to corrupt the restored counter: %v", err)
	}
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	pid := checkpointRestore(t, tg, cycleOpts{})
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	runGDB(t, tg, []string{"frame function main", "set var counter = counter + 3", "set var got_term = 1"})
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		t.Fatalf("SIGTERM restored pid %d: %v", pid, err)
	}
	v := waitResult(t, tg, pid)
	if want := "line before stdout's offset"; !strings.HasPrefix(v, "FAIL: ") || !strings.Contains(v, want) {
		t.Fatalf("restored counter verdict %q, want a FAIL containing %q\n%s", v, want, tg.diagnostics())
	}
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored counter pid %d reported FAIL but is still running (state %s)", pid, procState(pid))
	}
}

// assertRefused is assertOneLineError that also logs the message, so a
// -v run shows what gocr says in each case.
func assertRefused(t *testing.T, r gocrRun, mustName, anyOf []string) {
	t.Helper()
	assertOneLineError(t, r, mustName, anyOf)
	t.Logf("gocr %s: %s", strings.Join(r.args, " "), strings.TrimSpace(r.stderr))
}

// checkIntact proves a target survived a failed gocr run: still running,
// not stopped or traced, and verifying PASS.
func checkIntact(t *testing.T, tg *target) {
	t.Helper()
	if tg.exited() {
		t.Fatalf("target exited after the failed gocr run: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

func assertNoInventory(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
		t.Fatalf("failed dump left %s/inventory.img, which marks a complete image", dir)
	}
}

// listDir returns every path under dir, relative to it.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return names
}

// startTracer attaches strace to pid and waits until the kernel shows it
// as pid's tracer. Cleanup kills strace by its PID if it still runs.
func startTracer(t *testing.T, strace string, pid int) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "strace.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(strace, "-f", "-o", os.DevNull, "-p", strconv.Itoa(pid))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start strace: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for tracerPid(t, pid) != cmd.Process.Pid {
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("strace exited before it traced pid %d: %v\n%s", pid, cmd.ProcessState, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("strace (pid %d) not tracing pid %d after 10s", cmd.Process.Pid, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd
}

// stopTracer ends strace with SIGTERM (it detaches on it) and waits until
// pid is no longer traced.
func stopTracer(t *testing.T, cmd *exec.Cmd, pid int) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM strace pid %d: %v", cmd.Process.Pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tracerPid(t, pid) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still traced by %d 10s after strace got SIGTERM", pid, tracerPid(t, pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dumpedCounterCopy dumps a counter run from its own copy of the binary and
// returns the image dir, the target (dead and reaped) and the copy's path.
func dumpedCounterCopy(t *testing.T) (string, *target, string) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "counter-copy")
	copyFile(t, targets["counter"][0], exe, 0o755)
	tg := startTargetOpts(t, "counter", startOpts{binary: exe})
	waitCounter(t, tg, 20)
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", tg.pid)); err != nil || got != exe {
		t.Fatalf("target runs %q (%v), want the copy %s", got, err, exe)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	return dir, tg, exe
}

// rewriteDump writes a new, complete image directory holding the dump in
// src with its task image passed through edit, by the images package's own
// writers: every framing and checksum is valid, only the content differs.
func rewriteDump(t *testing.T, src string, edit func(*gocrpb.Task)) string {
	t.Helper()
	in, err := images.Open(src)
	if err != nil {
		t.Fatalf("open %s: %v", src, err)
	}
	inv := in.Inventory()
	if len(inv.Pids) != 1 {
		t.Fatalf("dump of %d processes, this test rewrites one", len(inv.Pids))
	}
	pid := int(inv.RootPid)
	task, err := in.ReadTask(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Threads) == 0 {
		t.Fatalf("task image of pid %d has no threads", pid)
	}
	mm, err := in.ReadMm(pid)
	if err != nil {
		t.Fatal(err)
	}
	files, err := in.ReadFiles(pid)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := in.ReadPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	edit(task)

	dst := filepath.Join(t.TempDir(), "images")
	out, err := images.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.WriteTask(task); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteMm(mm); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteFiles(files); err != nil {
		t.Fatal(err)
	}
	pm, err := out.CreatePagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if err := pm.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	nstreams := 1
	for _, r := range ranges {
		nstreams = max(nstreams, int(r.Stream)+1)
	}
	for s := 0; s < nstreams; s++ {
		pin, size, err := in.OpenPages(pid, s)
		if err != nil {
			t.Fatal(err)
		}
		defer pin.Close()
		pout, err := out.CreatePages(pid, s)
		if err != nil {
			t.Fatal(err)
		}
		defer pout.Close()
		n, err := io.Copy(pout, pin)
		if err != nil {
			t.Fatalf("copy page data: %v", err)
		}
		if n != size {
			t.Fatalf("copied %d bytes of page data, the image holds %d", n, size)
		}
		if err := images.FinishPages(pout, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	return dst
}

// showBlocks splits gocr show's output into NAME -> text under its
// "=== NAME ===" header.
func showBlocks(t *testing.T, out string) map[string]string {
	t.Helper()
	header := regexp.MustCompile(`^=== (.+) ===$`)
	blocks := map[string]string{}
	name := ""
	var body strings.Builder
	flush := func() {
		if name != "" {
			blocks[name] = body.String()
		}
		body.Reset()
	}
	for _, line := range strings.Split(out, "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			flush()
			name = m[1]
			if _, dup := blocks[name]; dup {
				t.Fatalf("gocr show printed %s twice", name)
			}
			continue
		}
		if name == "" {
			if line != "" {
				t.Fatalf("gocr show printed %q before the first header", line)
			}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	return blocks
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
