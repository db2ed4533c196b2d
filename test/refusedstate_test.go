//go:build linux

package test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRefusedState: state a restore would silently change (docs/STATE.md)
// is refused at dump in one line naming it, and the target, checking that
// the state is still its own and works, runs on untouched.
func TestRefusedState(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	for _, c := range []struct {
		mode  string
		arg   string
		needs string              // a file the machine must have for the mode
		cpu   string              // a CPU feature (/proc/cpuinfo flags) it must have
		probe func() (int, error) // makes the fd the mode needs, if the machine lets it
		ldisc string              // a line discipline /proc/tty/ldiscs must list
		want  []string
	}{
		{mode: "thread-files", want: []string{"thread", "own fd table"}},
		{mode: "thread-fs", want: []string{"thread", "own cwd, root and umask"}},
		{mode: "thread-ns", want: []string{"thread", "another namespace than its process (uts)"}},
		{mode: "pid-children", want: []string{"creates its children in another pid namespace"}},
		{mode: "time-children", needs: "/proc/self/ns/time_for_children", want: []string{"creates its children in another time namespace"}},
		{mode: "time-split", needs: "/proc/self/ns/time", want: []string{"is in another time namespace than pid"}},
		{mode: "epoll-outside", want: []string{"watch on fd", "no fd of the dumped processes holds"}},
		{mode: "chardev", arg: "/dev/net/tun", needs: "/dev/net/tun", want: []string{"/dev/net/tun", "character device 10:200", "driver state"}},
		{mode: "async", want: []string{"anon_inode:inotify", "O_ASYNC"}},
		{mode: "detached", want: []string{"/file", "not mounted anywhere"}},
		{mode: "ldt", want: []string{"has an LDT"}},
		{mode: "pkey", cpu: "pku", want: []string{"protection key 1"}},
		{mode: "amx", cpu: "amx_tile", want: []string{"AMX tile data"}},
		{mode: "lam", cpu: "lam", want: []string{"tagged addresses (LAM"}},
		{mode: "epoll-disarmed", want: []string{"anon_inode:[eventpoll]", "EPOLLONESHOT watch on fd", "disarmed"}},
		{mode: "inotify-queued", want: []string{"anon_inode:inotify", "bytes of events wait to be read"}},
		{mode: "proc-shared", want: []string{"/stat", "shares its open file description with pid"}},
		{mode: "proc-ended", arg: "file", want: []string{"fd 3 (/proc/", "/stat)", "has ended since the fd was opened"}},
		{mode: "proc-ended", arg: "dir", want: []string{"fd 3 (/proc/", "(deleted)", "has ended since the fd was opened"}},
		{mode: "proc-thread", arg: "tid", want: []string{"fd 3 (/proc/", "/status)", "a /proc file of a thread of pid", "before the thread exists"}},
		{mode: "proc-thread", arg: "task", want: []string{"fd 3 (/proc/", "/task/", "a /proc file of a thread of pid", "before the thread exists"}},
		{mode: "lease", want: []string{"fd 3", "/tmp/gocr-refusedstate-lease-", "LEASE"}},
		{mode: "fdkind", arg: "pidfd", probe: func() (int, error) { return unix.PidfdOpen(os.Getpid(), 0) },
			want: []string{"fd 3 (anon_inode:[pidfd])", "not supported"}},
		{mode: "fdkind", arg: "userfaultfd", probe: func() (int, error) {
			fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
			if errno != 0 {
				return -1, errno
			}
			return int(fd), nil
		}, want: []string{"fd 3 (anon_inode:[userfaultfd])", "not supported"}},
		{mode: "fdkind", arg: "fanotify", probe: func() (int, error) { return unix.FanotifyInit(unix.FAN_CLASS_NOTIF, unix.O_RDONLY) },
			want: []string{"fd 3 (anon_inode:[fanotify])", "not supported"}},
		{mode: "fdkind", arg: "perf_event", probe: func() (int, error) {
			attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_TASK_CLOCK}
			attr.Size = uint32(unsafe.Sizeof(attr))
			return unix.PerfEventOpen(&attr, 0, -1, -1, 0)
		}, want: []string{"fd 3 (anon_inode:[perf_event])", "not supported"}},
		{mode: "pty", arg: "lockedtermios", want: []string{"fd 3 (/dev/ptmx", "termios are locked"}},
		{mode: "pty", arg: "pktstatus", want: []string{"fd 3 (/dev/ptmx", "packet-mode status byte"}},
		{mode: "pty", arg: "rdonly", want: []string{"fd 5 (/dev/ptmx)", "master opened other than read-write"}},
		{mode: "pty", arg: "async", want: []string{"fd 3 (/dev/ptmx)", "O_ASYNC"}},
		{mode: "pty", arg: "devtty", want: []string{"fd 5 (/dev/tty)", "not supported"}},
		{mode: "pty", arg: "notty", want: []string{"in session", "without its controlling terminal /dev/pts/"}},
		{mode: "pty", arg: "ldisc", needs: "/proc/tty/ldiscs", ldisc: "n_null", want: []string{"fd 4 (/dev/pts/", "line discipline 27", "only N_TTY"}},
		{mode: "pty", arg: "orphan", want: []string{"fd 3 (/dev/ptmx", "3 bytes written by a slave no dumped process holds"}},
		{mode: "pty", arg: "ixany", want: []string{"fd 3 (/dev/ptmx", "3 bytes wait to be read by the slave with IXON on outside canonical mode"}},
		{mode: "pty", arg: "ixon", want: []string{"fd 3 (/dev/ptmx", "3 bytes wait to be read by the slave with IXON on outside canonical mode"}},
		{mode: "pty", arg: "extproc", want: []string{"fd 3 (/dev/ptmx", "packet mode with EXTPROC"}},
		{mode: "pty", arg: "full", want: []string{"fd 3 (/dev/ptmx", "input buffer is full"}},
	} {
		name := c.mode
		switch c.mode {
		case "fdkind":
			name = c.arg
		case "pty", "proc-ended", "proc-thread":
			name = c.mode + "-" + c.arg
		}
		t.Run(name, func(t *testing.T) {
			if c.needs != "" {
				if _, err := os.Stat(c.needs); err != nil {
					t.Skipf("this machine lacks %s: %v", c.needs, err)
				}
			}
			if c.ldisc != "" {
				b, _ := os.ReadFile("/proc/tty/ldiscs")
				if !slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool { return strings.HasPrefix(l, c.ldisc+" ") }) {
					t.Skipf("this kernel has no line discipline %s (/proc/tty/ldiscs: %q)", c.ldisc, b)
				}
			}
			if c.cpu != "" && !cpuHas(t, c.cpu) {
				t.Skipf("this CPU lacks %s", c.cpu)
			}
			if c.probe != nil {
				fd, err := c.probe()
				if err != nil {
					t.Skipf("this machine does not give gocr's test a %s fd: %v", c.arg, err)
				}
				unix.Close(fd)
			}
			var args []string
			if c.arg != "" {
				args = []string{c.arg}
			}
			tg := startTarget(t, "refusedstate", append([]string{c.mode}, args...)...)
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, append([]string{strconv.Itoa(tg.pid)}, c.want...), nil)
			checkIntact(t, tg)
		})
	}

	// A dumped process tracing one outside the dump would lose its
	// tracee: ptrace attachments end with the dump.
	t.Run("tracer", func(t *testing.T) {
		tracee := startTarget(t, "counter")
		waitCounter(t, tracee, 10)
		tg := startTarget(t, "refusedstate", "tracer", strconv.Itoa(tracee.pid))
		if got := tracerPid(t, tracee.pid); got != tg.pid {
			t.Fatalf("pid %d is traced by %d, want the target %d", tracee.pid, got, tg.pid)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "traces pid " + strconv.Itoa(tracee.pid), "outside the dump"}, nil)
		checkIntact(t, tg) // it checks it still traces the counter
		checkIntactCounter(t, tracee)
	})

	// The same for a thread other than its process's leader: every
	// thread of the machine is looked at, not only leaders.
	t.Run("tracer of a thread", func(t *testing.T) {
		tracee := startTarget(t, "threads", "nopipe")
		ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(tracee.pid), "task"))
		if err != nil {
			t.Fatal(err)
		}
		tid := 0
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil && n != tracee.pid {
				tid = n
				break
			}
		}
		if tid == 0 {
			t.Fatalf("the threads target %d has no thread but its leader", tracee.pid)
		}
		tg := startTarget(t, "refusedstate", "tracer", strconv.Itoa(tid))
		if got := tracerPid(t, tid); got != tg.pid {
			t.Fatalf("thread %d is traced by %d, want the target %d", tid, got, tg.pid)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "traces pid " + strconv.Itoa(tracee.pid), "thread " + strconv.Itoa(tid), "outside the dump"}, nil)
		checkIntact(t, tg) // it checks it still traces the thread
	})
}

// TestRefusedDumpable2: a process left in dumpable mode 2 (it changed
// its credentials while fs.suid_dumpable was 2) would come back in mode
// 0, since PR_SET_DUMPABLE takes only 0 and 1: refused at dump. The
// sysctl is 2 only until the target has changed its gid.
func TestRefusedDumpable2(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	const sysctl = "/proc/sys/fs/suid_dumpable"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Skipf("this kernel has no %s: %v", sysctl, err)
	}
	restore := func() {
		if err := os.WriteFile(sysctl, old, 0); err != nil {
			t.Errorf("put %s back to %s: %v", sysctl, strings.TrimSpace(string(old)), err)
		}
	}
	t.Cleanup(restore)
	if err := os.WriteFile(sysctl, []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	tg := startTarget(t, "refusedstate", "dumpable2")
	restore()
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "dumpable in mode 2", "PR_SET_DUMPABLE"}, nil)
	checkIntact(t, tg)
}

// TestRefusedGroupOrphan: `dump --pgid` of a group with a member that is
// no descendant of its leader (an orphan, reparented away) is refused in
// one line naming it, and the group runs on.
func TestRefusedGroupOrphan(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "refusedstate", "group-orphan")
	r := runGocr(t, nil, "dump", "--pgid", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"in the selected group or session but not a descendant of its leader " + strconv.Itoa(tg.pid)}, nil)
	checkIntact(t, tg)
}

// TestRefusedHugetlb: a hugetlbfs mapping (MAP_HUGETLB) is refused at
// dump naming it, and the process keeps its huge page. The test reserves
// one huge page (vm.nr_hugepages) while it runs, as none may be.
func TestRefusedHugetlb(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	const sysctl = "/proc/sys/vm/nr_hugepages"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Skipf("this kernel has no huge pages (CONFIG_HUGETLBFS): %v", err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(old))); n == 0 {
		t.Cleanup(func() {
			if err := os.WriteFile(sysctl, old, 0); err != nil {
				t.Errorf("put %s back to %s: %v", sysctl, strings.TrimSpace(string(old)), err)
			}
		})
		if err := os.WriteFile(sysctl, []byte("1"), 0); err != nil {
			t.Skipf("cannot reserve a huge page (%s): %v", sysctl, err)
		}
		if b, _ := os.ReadFile(sysctl); strings.TrimSpace(string(b)) == "0" {
			t.Skip("the kernel found no memory for a huge page")
		}
	}
	tg := startTarget(t, "refusedstate", "hugetlb")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "hugetlbfs mappings"}, nil)
	checkIntact(t, tg)
}

// TestRefusedZombieCore: a zombie child whose exit status has the core
// flag would come back without it (a restored zombie dies of its signal
// without writing a core): refused at dump, naming it and its parent.
func TestRefusedZombieCore(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	// The target's child writes "core" into a directory of its own.
	if b, err := os.ReadFile("/proc/sys/kernel/core_pattern"); err != nil || strings.TrimSpace(string(b)) != "core" {
		t.Skipf("core_pattern is %q, not the kernel's default \"core\" the target relies on to dump core (%v)", strings.TrimSpace(string(b)), err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || rl.Max != unix.RLIM_INFINITY {
		t.Skipf("the hard RLIMIT_CORE is %d, not unlimited: the target's child could not dump core (%v)", rl.Max, err)
	}
	tg := startTarget(t, "refusedstate", "zombie-core")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"a zombie child of pid " + strconv.Itoa(tg.pid), "dumped core", "WCOREDUMP"}, nil)
	checkIntact(t, tg) // it reaps the child and checks WCOREDUMP
}

// TestReplacedFileRefused: a file replaced at its path between the dump
// and the restore (a rotated log) is not the one the process had open:
// on the boot of the dump its device and inode tell, and the restore
// refuses in one line naming it, leaving nothing behind. With the file
// put back, the same images restore.
func TestReplacedFileRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	image, tg := dumpedCounter(t)
	// The counter's stdout is its log, a regular file reopened by path.
	kept := tg.logPath + ".dumped"
	if err := os.Rename(tg.logPath, kept); err != nil {
		t.Fatal(err)
	}
	copyFile(t, kept, tg.logPath, 0o644)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r := runGocr(t, nil, "restore", "-D", image, "-d")
	assertRefused(t, r, []string{tg.logPath, "not the one fd 1 had open", "replaced"}, nil)
	assertNoProcess(t, tg.pid)

	if err := os.Rename(kept, tg.logPath); err != nil {
		t.Fatal(err)
	}
	pid := restoreDetached(t, tg, image, nil)
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	checkResult(t, tg, pid)
	counterLines(t, tg.logPath, true)
}

// TestRefusedStdioLock: a flock on stdio joined to something outside the
// dump that the restore replaces (the restore gives the file --inherit-fd
// names, or its own stdio) would not come back on what the restore gives:
// refused at dump naming the fd, and the job runs on with its lock
// (fdinfo lists the locks of the open file description, fs/proc/fd.c
// show_fd_locks). Stdin on a unix socket whose peer is outside, and on a
// file no kind of gocr's restores (a pidfd).
func TestRefusedStdioLock(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	for _, c := range []struct {
		name string
		open func(t *testing.T) *os.File
		want []string
	}{
		{"socket", func(t *testing.T) *os.File { f, _ := socketEnds(t); return f },
			[]string{"fd 0 (socket:[", ") holds a lock on a socket from outside the dumped processes, which the restore replaces"}},
		{"pidfd", func(t *testing.T) *os.File {
			fd, err := unix.PidfdOpen(os.Getpid(), 0)
			if err != nil {
				t.Skipf("this kernel gives no pidfd: %v", err)
			}
			f := os.NewFile(uintptr(fd), "pidfd")
			t.Cleanup(func() { f.Close() })
			return f
		}, []string{"fd 0 (anon_inode:[pidfd]) holds a lock on a file the restore would replace"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdin := c.open(t)
			if err := unix.Flock(int(stdin.Fd()), unix.LOCK_EX); err != nil {
				t.Skipf("this kernel takes no flock on a %s: %v", c.name, err)
			}
			tg := startTargetOpts(t, "pauser", startOpts{stdin: stdin})
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, append([]string{strconv.Itoa(tg.pid)}, c.want...), nil)
			b, err := os.ReadFile("/proc/" + strconv.Itoa(tg.pid) + "/fdinfo/0")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "FLOCK") {
				t.Errorf("the job's stdin lost its lock:\n%s", b)
			}
			checkIntact(t, tg)
		})
	}
}

// TestRefusedOtherDevpts: a pty of another devpts instance (a
// container's, mounted with newinstance) is not one gocr's /dev/ptmx can
// make again: its master and its slave are each refused at dump naming
// the fd, and the job runs on with the pair.
func TestRefusedOtherDevpts(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	dir := t.TempDir()
	// ptmxmode: the instance's ptmx node is 0000 by default
	// (Documentation/filesystems/devpts.rst).
	if err := unix.Mount("devpts", dir, "devpts", 0, "newinstance,ptmxmode=0666"); err != nil {
		t.Skipf("cannot mount a devpts instance of its own: %v", err)
	}
	// Registered first, so it runs after the targets are killed.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	for _, c := range []struct{ which, want string }{
		{"master", "fd 3 (" + dir + "/ptmx): pty: a pty master opened from " + dir + "/ptmx, not gocr's /dev/ptmx"},
		{"slave", "fd 3 (" + dir + "/0): pty: a pty slave of another devpts than gocr's /dev/pts"},
	} {
		t.Run(c.which, func(t *testing.T) {
			tg := startTarget(t, "refusedstate", "devpts", dir, c.which)
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), c.want}, nil)
			checkIntact(t, tg)
		})
	}
}
