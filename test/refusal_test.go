//go:build linux

package test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// executable gone or changed, images from a newer gocr). Usage errors are
// in commands_test.go. Every failure must be a non-zero exit with one line
// on stderr naming what is wrong, and lose nothing: a failed dump leaves its
// target running as it was, a failed restore leaves no process behind.

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

	// The init of gocr's own PID namespace (gocr run inside it, with
	// nsenter): the kernel ignores SIGKILL sent to it from inside, so a
	// dump that went on to end it would wait for it forever, with it
	// stopped; and PID 1 could never be restored there.
	t.Run("PidNamespaceInit", func(t *testing.T) {
		var tools []string
		for _, name := range []string{"unshare", "nsenter"} {
			p, err := exec.LookPath(name)
			if err != nil {
				t.Skipf("needs %s(1) to run a PID namespace and gocr inside it: %v", name, err)
			}
			tools = append(tools, p)
		}
		tg := startTargetOpts(t, "counter", startOpts{wrap: []string{tools[0], "--pid", "--fork", "--mount-proc", "--kill-child", "--"}})
		init := onlyChild(t, tg.pid)
		t.Cleanup(func() { tg.killRestored(t, init) })
		if v := statusField(t, init, "NSpid"); !strings.HasSuffix(v, "\t1") {
			t.Fatalf("the counter (pid %d) has NSpid %q: not the init of its PID namespace", init, v)
		}
		waitCounter(t, tg, 10)
		r := runGocrVia(t, []string{tools[1], "-t", strconv.Itoa(init), "--pid", "--mount", "--"}, "dump", "-t", "1", "-D", t.TempDir())
		assertRefused(t, r, []string{"pid 1 ", "init of its pid namespace"}, nil)
		assertUntouched(t, init)
		waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
		checkResult(t, tg, init)
		counterLines(t, tg.logPath, true)
	})

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

// onlyChild returns the one child of pid (a wrapper's target).
func onlyChild(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("pid %d has children %q, want exactly one", pid, f)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// runGocrVia is runGocr with gocr run by the command prefix (nsenter).
// Should gocr outlive the prefix's command after the timeout, its output
// goes to files, so nothing waits for it.
func runGocrVia(t *testing.T, prefix []string, args ...string) gocrRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, outPath, errPath := gocrCmd(t, ctx, nil, args...)
	cmd.Args = append(append([]string(nil), prefix...), cmd.Args...)
	cmd.Path = prefix[0]
	err := cmd.Run()
	r := gocrRun{args: args, code: cmd.ProcessState.ExitCode()}
	out, _ := os.ReadFile(outPath)
	errb, _ := os.ReadFile(errPath)
	r.stdout, r.stderr = string(out), string(errb)
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v\n%v", strings.Join(cmd.Args, " "), gocrTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return r
}

// TestPipePacketsRefused: a packet pipe (O_DIRECT, man 2 pipe) holding
// packets is refused, since their boundaries would come back as one
// stream, and the target still reads them one at a time afterwards.
func TestPipePacketsRefused(t *testing.T) {
	needsGocr(t)
	tg := startTargetOpts(t, "fdkinds", startOpts{args: []string{"packets"}})
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 66", "packet"}, nil)
	checkIntact(t, tg)
}

// TestUnixSocketRefusals: each unix socket gocr cannot restore exactly,
// and a socket of a family gocr does not restore (netlink, packet), is
// refused in one line naming its fd and why; the target then finds the
// socket as it was (its queued data, fd or credentials in flight, pending
// connection and what it sent).
func TestUnixSocketRefusals(t *testing.T) {
	needsUnixDiag(t)
	needsGocr(t)
	for _, c := range []struct{ mode, want string }{
		{"dgramfrom", "a socket outside the dumped processes"},
		{"pendingdata", "a connection not yet accepted holds"},
		{"outside", "outside the dumped processes"},
		{"fds", "fds in flight"},
		{"creds", "credentials"},
		// unixsock.c's "udp" socket is restored now (TestUDPSockets).
		// No kind matches: refused naming the family.
		{"netlink", "family netlink, protocol NETLINK_ROUTE"},
		{"packet", "family packet"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			tg := startTargetOpts(t, "unixsock", startOpts{args: []string{c.mode}})
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 70", c.want}, nil)
			checkIntact(t, tg)
		})
	}
}

// TestThreadCredentialsRefused: credentials are per thread, restored as
// the process's, so a thread whose capabilities or securebits differ from
// its process's is refused, and both threads keep their own.
func TestThreadCredentialsRefused(t *testing.T) {
	needsGocr(t)
	for _, c := range []struct{ mode, want string }{
		{"thread-caps", "credentials"},
		{"thread-securebits", "securebits"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			tg := startTargetOpts(t, "caps", startOpts{args: []string{c.mode}})
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), "thread", c.want}, nil)
			checkIntact(t, tg)
		})
	}
}

// TestDumpBadPID: -t values that are no process at all, or that are not
// plain decimal: each is one line on stderr (no usage text), and no image
// directory is made. A PID written with a leading zero is refused, not
// read as octal (020000 would be 8192) nor guessed at: the process it
// names in decimal is left alone.
func TestDumpBadPID(t *testing.T) {
	needsGocr(t)
	for _, c := range []struct {
		arg, name string
	}{
		{"0", "Zero"},
		{"-5", "Negative"},
		{"abc", "NotANumber"},
		{"020000", "Octal"},
		{"0x10", "Hex"},
		{"1_000", "Underscore"},
		{"+5", "Plus"},
		{"99999999", "AbovePIDMax"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "images")
			r := runGocr(t, nil, "dump", "-t", c.arg, "-D", dir)
			assertRefused(t, r, []string{c.arg}, nil)
			if r.stdout != "" {
				t.Errorf("refused dump printed on stdout:\n%s", r.stdout)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("dump of pid %q created the image directory %s", c.arg, dir)
			}
		})
	}
	t.Run("LeadingZeroOfLivePID", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		arg := "0" + strconv.Itoa(tg.pid)
		r := runGocr(t, nil, "dump", "-t", arg, "-D", filepath.Join(t.TempDir(), "images"))
		assertRefused(t, r, []string{arg, "decimal"}, nil)
		checkIntactCounter(t, tg)
	})
	t.Run("BadFlagValue", func(t *testing.T) {
		r := runGocr(t, nil, "dump", "-t", "1", "-D", t.TempDir(), "--page-streams", "many")
		assertRefused(t, r, []string{"many", "page-streams"}, nil)
		if r.stdout != "" {
			t.Errorf("a bad flag value printed on stdout:\n%s", r.stdout)
		}
	})
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

	// Rewritten in place to the same size, a file shows its change only
	// by its modification time, which the error names.
	t.Run("ExecutableTouched", func(t *testing.T) {
		image, tg, exe := dumpedCounterCopy(t)
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(exe, later, later); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		r := runGocr(t, nil, "restore", "-D", image, "-d")
		assertRefused(t, r, []string{exe, "changed", "modification time"}, nil)
		if strings.Contains(r.stderr, "size") {
			t.Errorf("the error names the size, which did not change: %s", r.stderr)
		}
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
