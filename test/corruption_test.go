//go:build linux

package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/proc"
)

// TestTargetsDetectCorruption proves that the targets can fail: each case
// damages one piece of a ready target's state from outside with gdb (the
// kind of damage a faulty restore would do) and requires the target to
// report FAIL naming it. A target that passes here checks nothing. No gocr
// is involved, so this runs in standalone mode too.
// quickCorruptionCases are the cases of TestTargetsDetectCorruption that
// `make test` runs: one of each kind of check (a counter's log, memory,
// a thread's state, a socket's queue, an fd's offset).
var quickCorruptionCases = map[string]bool{
	"Counter": true, "MemoryHeapPage": true, "ThreadMask": true,
	"UnixsockQueuedByte": true, "GhostOffset": true,
}

func TestTargetsDetectCorruption(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: gdb attaches to targets it did not start (CAP_SYS_PTRACE)")
	}
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("needs gdb to corrupt target state: %v", err)
	}
	// A blocked syscall that is interrupted by a stop returns an
	// -ERESTART* code in rax (include/linux/errno.h); replacing it with
	// -EINTR makes the syscall fail the way a restore that forgot to
	// restart it would.
	fakeEINTR := []string{"set var $rax = -4"}
	counterSkew := []string{"frame function main", "set var counter = counter + 3", "set var got_term = 1"}

	cases := []struct {
		name, target string
		args         []string
		dirArg       bool // a fresh directory after args
		stdinPipe    bool
		// blockedIn, if set, is the system call number the target must be
		// blocked in before gdb fakes its result (0 is read: use -1 for
		// none); a fake result set before it entered the call is lost.
		blockedIn int
		gdb       func(t *testing.T, tg *target) []string
		after     func(t *testing.T, tg *target, w *os.File)
		want      string
	}{
		// A counter that jumps stays self-consistent (the harness's log
		// check catches the gap), so the flag is raised in the same stop:
		// the target checks before writing the next line.
		{name: "Counter", target: "counter", gdb: fixed(counterSkew...),
			want: "line before stdout's offset"},
		{name: "StaticCounter", target: "counter-static", gdb: fixed(counterSkew...),
			want: "line before stdout's offset"},
		{name: "MemoryHeapPage", target: "memory", dirArg: true,
			gdb: func(t *testing.T, tg *target) []string {
				heap := mappingStart(t, tg.pid, "[heap]")
				// MADV_DONTNEED (4) drops the page: it reads back as zero.
				return []string{fmt.Sprintf("call (int)madvise((void*)%#x, 4096, 4)", heap+1<<20)}
			},
			want: "heap: word at"},
		{name: "MemoryLayout", target: "memory", dirArg: true,
			gdb:  fixed("call (void*)mmap(0, 4096, 3, 0x22, -1, 0)"),
			want: "/proc/self/maps line"},
		{name: "FdOffset", target: "fds", dirArg: true,
			gdb:  fixed("call (long)lseek(77, 1, 1)"),
			want: "fd 77 (high) offset is 556, want 555"},
		{name: "Umask", target: "fds", dirArg: true,
			gdb:  fixed("call (int)umask(022)"),
			want: "umask is 022"},
		{name: "SchedNice", target: "sched",
			gdb:  fixed("call (int)setpriority(0, 0, 0)"),
			want: "main has nice 0, want 5"},
		// prctl(PR_SET_TIMERSLACK, 1000) and ioprio_set(IOPRIO_WHO_PROCESS,
		// 0, none) in the main thread, which attrs checks in place.
		{name: "AttrsTimerSlack", target: "attrs",
			gdb:  fixed("call (int)prctl(29, 1000, 0, 0, 0)"),
			want: "main has timer slack 1000, want 123456"},
		{name: "AttrsIoprio", target: "attrs",
			gdb:  fixed("call (long)syscall(251, 1, 0, 0)"),
			want: "main has I/O priority 0, want 0x4005"},
		{name: "PendingSignal", target: "signals",
			gdb:  fixed("call (int)kill((int)getpid(), 28)"),
			want: "pending set"},
		{name: "Disposition", target: "signals",
			gdb:  fixed("call (long)signal(1, (void*)1)"),
			want: "signal 1 handler"},
		{name: "SleeperEINTR", target: "sleeper", blockedIn: sysClockNanosleep, gdb: fixed(fakeEINTR...),
			want: "nanosleep 1 returned Interrupted system call"},
		{name: "PauserEINTR", target: "pauser", blockedIn: sysPause, gdb: fixed(fakeEINTR...),
			want: "pause returned -1 (Interrupted system call) before SIGTERM"},
		{name: "PipeEINTR", target: "pipe_reader", stdinPipe: true, blockedIn: sysRead, gdb: fixed(fakeEINTR...),
			want: "read(fd 0) after 0 bytes: Interrupted system call"},
		{name: "PipeData", target: "pipe_reader", stdinPipe: true,
			after: func(t *testing.T, tg *target, w *os.File) {
				if _, err := w.Write([]byte("hellp\n")); err != nil {
					t.Fatal(err)
				}
				w.Close()
			},
			want: `read 6 bytes "hellp`},
		{name: "RegisterR13", target: "regs", gdb: fixed("set var $r13 = 0"),
			want: "r13 is 0,"},
		{name: "RegisterMXCSR", target: "regs", gdb: fixed("set var $mxcsr = 0x1f80"),
			want: "mxcsr is 0x1f80"},
		// The upper half of ymm5: every CPU the regs target runs on has
		// AVX, and on one with AVX-512 it is zmm5's second quarter.
		// (zmm16-31 are not used: gdb 13 writes AVX-512 state at
		// Intel's fixed XSAVE offsets, which CPUs need not use; CPUID
		// leaf 0xD gives the real ones.)
		{name: "RegisterVector", target: "regs", gdb: fixed("set var $ymm5.v4_int64[3] = 5"),
			want: "mm5 qword 3 is 0x5,"},
		{name: "ThreadTLS", target: "threads",
			gdb:  inThread("t03-sleep", "set var tls_pattern[2] = 0"),
			want: "thread 03 (sleep, tid"},
		{name: "ThreadTLSValue", target: "threads",
			gdb:  inThread("t13-sleep", "set var tls_init = 7"),
			want: "TLS tls_init is 0x7"},
		{name: "ThreadSleepEINTR", target: "threads",
			gdb:  inThread("t08-sleep", fakeEINTR...),
			want: "thread 08 (sleep, tid"},
		{name: "ThreadPipeEINTR", target: "threads",
			gdb:  inThread("t04-pipe", fakeEINTR...),
			want: "read(pipe) failed: Interrupted system call"},
		// Both the counter and the spinning thread's own copy, so the
		// damage shows wherever in its loop the thread stopped: as a
		// mismatch, or as the counter going backwards.
		{name: "ThreadSpinCounter", target: "threads",
			gdb:  inThread("t10-spin", "set var local = 5", "set var thr[10].counter = 5"),
			want: "spin counter"},
		{name: "ThreadName", target: "threads",
			gdb:  inThread("t12-cond", `call (int)prctl(15, "bogus")`),
			want: "comm is bogus, want t12-cond"},
		// Thread 9's mask, applied in thread 18, blocks SIGUSR1 there.
		{name: "ThreadMask", target: "threads",
			gdb:  inThread("t18-sleep", "call (long)syscall(14, 0, &thr[9].mask, 0, 8)"),
			want: "signal mask: signal 10 is blocked, want unblocked"},
		// Thread 13 turns its alternate signal stack off (SS_DISABLE 2
		// in a stack_t written over its own buffer).
		{name: "ThreadAltstack", target: "threads",
			gdb: inThread("t13-sleep", "set var *(int *)&altstacks[13][8] = 2",
				"call (int)sigaltstack((void *)altstacks[13], 0)"),
			want: "sigaltstack is (nil)+0 flags 2, want"},
		// The recorded address, not the kernel's (a thread whose
		// clear_child_tid were moved could not be joined).
		{name: "ThreadTidAddress", target: "threads",
			gdb:  fixed("set var thr[15].tid_address = (void *)1"),
			want: "want 0x1"},
		{name: "GoChecksum", target: "goprog",
			gdb:  fixed("set var 'main.seqSum' = 'main.seqSum' + 1"),
			want: "pipeline checksum"},
		{name: "ChurnCounters", target: "churn",
			gdb:  fixed("set var joined = joined + 1000000"),
			want: "monitor: created"},
		{name: "PythonThreadsQueue", target: "pythreads",
			gdb: fixed(
				"set $g = (int)PyGILState_Ensure()",
				`call (int)PyRun_SimpleString("import __main__; __main__.q.queue.appendleft(-5)")`,
				"call (void)PyGILState_Release($g)"),
			want: "consumer got -5"},
		{name: "EventfdCount", target: "eventfd",
			gdb:  fixed("call (int)eventfd_read(40, &efds[0].add)"),
			want: "sem (fd 40) fdinfo eventfd-count:                4"},
		{name: "EventfdFlags", target: "eventfd",
			gdb:  fixed("call (int)fcntl(43, 4, 0)"),
			want: "empty (fd 43) F_GETFL 02, want 04002"},
		{name: "EpollWatchGone", target: "epoll",
			gdb:  fixed("call (int)epoll_ctl(50, 2, 61, 0)"),
			want: "epoll fd 50 watches"},
		{name: "EpollReadiness", target: "epoll",
			gdb:  fixed("call (long)write(61, &w[0].data, 8)"),
			want: "epoll_wait 1 reported B"},
		{name: "EpollMovedWatchGone", target: "epollmoved",
			gdb:  fixed("call (int)epoll_ctl(40, 2, 43, 0)"),
			want: "reported 0 events, want C's"},
		{name: "NamespaceFdOther", target: "nsfds", args: []string{"own"},
			gdb:  fixed("call (int)dup2(fds[1], fds[0])"),
			want: "net: fd"},
		{name: "InotifyDeletedWatchGone", target: "inotifydeleted", args: []string{"held"}, dirArg: true,
			gdb:  fixed("call (int)inotify_rm_watch(31, 2)"),
			want: "events queued after the restore"},
		{name: "SignalfdPending", target: "fdkinds", args: []string{"signalfd"},
			gdb:  fixed("call (long)read(50, &scratch, 128)"),
			want: "SIGUSR1 is not pending after restore"},
		{name: "TimerfdDisarmed", target: "fdkinds", args: []string{"timerfd"},
			gdb:  fixed("call (int)timerfd_settime(52, 0, &tfd_disarm, 0)"),
			want: "one-shot timerfd remaining 0.000000000 s"},
		{name: "InotifyWatchGone", target: "fdkinds", args: []string{"inotify"}, dirArg: true,
			gdb:  fixed("call (int)inotify_rm_watch(53, 1)"),
			want: "inotify fdinfo watches"},
		{name: "MemfdSeal", target: "fdkinds", args: []string{"memfd"},
			// F_ADD_SEALS, F_SEAL_GROW
			gdb:  fixed("call (int)fcntl(54, 1033, 4)"),
			want: "sealed memfd seals 0x6"},
		{name: "MemfdMode", target: "fdkinds", args: []string{"memfd"},
			gdb:  fixed("call (int)fchmod(54, 0777)"),
			want: "sealed memfd mode 0777, want 0640"},
		{name: "GhostContents", target: "ghost", dirArg: true,
			gdb:  fixed(`call (long)pwrite(3, "Z", 1, 0)`),
			want: "the file holds 0x5a at 0, want 0x5"},
		{name: "GhostOffset", target: "ghost", dirArg: true,
			gdb:  fixed("call (long)lseek(40, 0, 0)"),
			want: "fd 40: offset 0, want 100"},
		// F_SETFL O_NONBLOCK on a blocking pipe end.
		{name: "PipeFlags", target: "fdkinds", args: []string{"pipes"},
			gdb:  fixed("call (int)fcntl(60, 4, 04000)"),
			want: "pipe fd 60 (A read end) F_GETFL 04000, want 0"},
		{name: "FifoData", target: "fdkinds", args: []string{"fifo"}, dirArg: true,
			gdb:  fixed("call (long)read(55, &scratch, 1)"),
			want: "fifo: only 31 of 32 bytes written before the dump"},
		// One byte of fd 41's queue read, one sent after the rest:
		// as long, but not what was queued.
		{name: "UnixsockQueuedByte", target: "unixsock",
			gdb:  fixed("call (long)recv(41, rbuf, 1, 0)", "call (long)send(40, longmsg, 1, 0x4040)"),
			want: "stream-self: fd 41 bytes 0-5 are -rayA"},
		// SO_PASSCRED (16) off: in_child is 0 in the parent.
		{name: "UnixsockOption", target: "unixsock",
			gdb:  fixed("call (int)setsockopt(42, 1, 16, &in_child, 4)"),
			want: "dgram-self: fd 42 SO_PASSCRED 0, want 1"},
		// The first connection waiting on fd 80 accepted: the next
		// accept gives 84's, which sent nothing but its end of file.
		{name: "UnixnamedPendingTaken", target: "unixnamed", dirArg: true,
			gdb:  fixed("call (int)accept(80, (void *)0, (void *)0)"),
			want: "the first connection waiting on fd 80 is not 83's"},
		// The datagram from an unnamed socket read: fd 88's first is
		// then 89's.
		{name: "UnixnamedDatagramTaken", target: "unixnamed", dirArg: true,
			gdb:  fixed("call (long)recv(88, rbuf, 64, 0)"),
			want: "want 4 bytes anon"},
		// SO_REUSEADDR (2) off on the listener: have_log is 0, as
		// the case makes no log.sock.
		{name: "UnixnamedOption", target: "unixnamed", dirArg: true,
			gdb:  fixed("call (int)setsockopt(80, 1, 2, &have_log, 4)"),
			want: "SO_REUSEADDR: 80 0"},
		// Fd 80 made a socket naming another process (the child, which
		// connected 84), as a restore that made it elsewhere would.
		{name: "UnixpeercredOtherProcess", target: "unixpeercred",
			gdb:  fixed("call (int)dup2(84, 80)"),
			want: "fd 80 SO_PEERCRED pid"},
		{name: "LocksFlockDropped", target: "locks", dirArg: true,
			gdb:  fixed("call (int)flock(fds[0], 8)"), // LOCK_UN
			want: "has no FLOCK WRITE lock"},
		// Closing any fd of a file drops the process's POSIX locks on
		// it (man 2 fcntl, "Record locking").
		{name: "LocksPosixDropped", target: "locks", dirArg: true,
			gdb:  fixed("call (int)close(c2)"),
			want: "has no POSIX READ lock"},
		// The lock the child waits for let go: the child takes it.
		{name: "LockWaiterGotLock", target: "lockwait", dirArg: true,
			gdb:  fixed("call (int)close(held[0])"),
			want: "waiters on p, f and o"},
		{name: "ProcattrsOrphanGone", target: "procattrs",
			gdb:  fixed("call (int)kill(orphan, 9)", "call (int)waitpid(orphan, 0, 0)"),
			want: "read /proc/"},
		// rseq(2) (334) with RSEQ_FLAG_UNREGISTER (1) of glibc's area.
		{name: "ProcattrsRseqUnregistered", target: "procattrs",
			gdb:  fixed("call (long)syscall(334, (char *)$fs_base + (long)__rseq_offset, 32, 1, 0x53053053)"),
			want: "rseq area is no longer registered"},
		// set_robust_list(2) (273) of none.
		{name: "ProcattrsRobustList", target: "procattrs",
			gdb:  fixed("call (long)syscall(273, 0, 24)"),
			want: "robust futex list"},
		{name: "VmFlagsNoreservePage", target: "vmflags",
			gdb:  fixed("set var sparse[0] = 0"),
			want: "MAP_NORESERVE mapping: byte 0 changed"},
		{name: "VmFlagsAdviceDropped", target: "vmflags",
			gdb:  fixed("call (int)madvise(region[5], 16384, 0)"), // MADV_NORMAL
			want: "sequential mapping"},
		// Timer 0 sends SIGUSR1 every 50 ms: gdb lets it through
		// rather than abandon the call it interrupts.
		{name: "PosixTimerGone", target: "posixtimers",
			gdb:  fixed("handle SIGUSR1 nostop noprint pass", "call (int)timer_delete(tm[3])"),
			want: "/proc/self/timers differs"},
		{name: "PosixTimerInterval", target: "posixtimers",
			gdb:  fixed("handle SIGUSR1 nostop noprint pass", "call (int)timer_settime(tm[0], 0, &oneshot, 0)"),
			want: "timer 0 interval is 0 ms"},
		// PR_CAPBSET_DROP (24) of CAP_SYS_ADMIN (21), in the main thread.
		{name: "CapsBoundingSet", target: "caps", args: []string{"root"},
			gdb:  fixed("call (int)prctl(24, 21, 0, 0, 0)"),
			want: "thread main: bounding set"},
		{name: "PythonHeap", target: "pystate",
			gdb: fixed(
				"set $g = (int)PyGILState_Ensure()",
				`call (int)PyRun_SimpleString("import __main__; __main__.values[5] += 1")`,
				"call (void)PyGILState_Release($g)"),
			want: "list[5] is"},
		{name: "TreeZombieReaped", target: "tree",
			gdb:  fixed("call (int)waitpid(zombie_pid, 0, 1)"),
			want: "after restore, want Z"},
		{name: "TreePipeData", target: "tree",
			gdb:  fixed("call (long)read(60, &fail_msg, 1)"),
			want: "reader1: data pipe byte 0 is"},
		{name: "TreeSharedSlot", target: "tree",
			gdb:  fixed("set var shm->slot[3] = 0"),
			want: "shared slot of grp1 is 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case proves a target's own check can fail, which
			// matters when a target changes: a few kinds in `make
			// test`, all of them (about 45 s) under `make soak`.
			if !quickCorruptionCases[c.name] {
				soakOnly(t)
			}
			o := startOpts{settle: 200 * time.Millisecond, args: c.args}
			if c.dirArg {
				o.args = append(slices.Clone(c.args), t.TempDir())
			}
			var w *os.File
			if c.stdinPipe {
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close(); pw.Close() })
				o.stdin, w = r, pw
			}
			tg := startTargetOpts(t, c.target, o)
			// tree, unixsock, unixnamed and fdkinds' fifo mode have children.
			trackTree(t, tg.pid)
			if c.blockedIn != 0 {
				waitBlockedIn(t, tg.pid, c.blockedIn)
			}
			if c.gdb != nil {
				runGDB(t, tg, c.gdb(t, tg))
			}
			if c.after != nil {
				c.after(t, tg, w)
			}
			expectFail(t, tg, c.want)
		})
	}
	// The pipeline's root checks the output itself: a line injected into
	// the pipe to the consumer (what a restore that duplicated pipe data
	// would do) must make it FAIL.
	t.Run("PipelineInjectedLine", func(t *testing.T) {
		tg, pids := startPipeline(t)
		consumer := 0
		for _, pid := range pids {
			in, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid))
			out, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
			if strings.HasPrefix(in, "pipe:") && !strings.HasPrefix(out, "pipe:") && strings.Contains(cmdlineOf(pid), tg.dir) {
				consumer = pid
			}
		}
		if consumer == 0 {
			t.Fatalf("no consumer stage (stdin a pipe, stdout not) among %v", pids)
		}
		// Opening a pipe through /proc/PID/fd for writing gives a new
		// write end of the same pipe.
		w, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/0", consumer), os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("open the consumer's stdin pipe: %v", err)
		}
		_, err = w.Write([]byte("7\n"))
		w.Close()
		if err != nil {
			t.Fatalf("write into the consumer's pipe: %v", err)
		}
		stopPipeline(t, tg, tg.pid, "FAIL: out line")
		if code := tg.cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("pipeline reported FAIL but exited with %v, want 1", tg.cmd.ProcessState)
		}
	})
}

func fixed(cmds ...string) func(*testing.T, *target) []string {
	return func(*testing.T, *target) []string { return cmds }
}

// inThread runs cmds in the target's thread named comm, selected by its
// TID with gdb's Python API (gdb numbers threads its own way).
func inThread(comm string, cmds ...string) func(*testing.T, *target) []string {
	return func(t *testing.T, tg *target) []string {
		tid := tidByComm(t, tg.pid, comm)
		sel := fmt.Sprintf("python [th.switch() for th in gdb.selected_inferior().threads() if th.ptid[1] == %d]", tid)
		// "info thread" shows which thread the commands ran in.
		return append([]string{sel, "thread"}, cmds...)
	}
}

// runGDB attaches gdb to the target, runs cmds and detaches.
func runGDB(t *testing.T, tg *target, cmds []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-nx", "-batch", "-p", strconv.Itoa(tg.pid)}
	for _, c := range cmds {
		args = append(args, "-ex", c)
	}
	out, err := exec.CommandContext(ctx, "gdb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb %q: %v\n%s", cmds, err, out)
	}
	// Some corruptions make the target report at once; whether it did
	// so properly is up to expectFail.
	t.Logf("gdb output:\n%s", out)
}

// expectFail asks the target for its verdict and requires a FAIL that
// contains want, and exit status 1.
func expectFail(t *testing.T, tg *target, want string) {
	t.Helper()
	// The pidfd-backed handle: the target may already have reported and
	// exited.
	if err := tg.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGTERM pid %d: %v", tg.pid, err)
	}
	v := waitResult(t, tg, tg.pid)
	if !strings.HasPrefix(v, "FAIL: ") || !strings.Contains(v, want) {
		t.Fatalf("target %s verdict %q, want a FAIL containing %q\n%s", tg.name, v, want, tg.diagnostics())
	}
	select {
	case <-tg.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("target %s did not exit after reporting", tg.name)
	}
	if code := tg.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("target %s reported FAIL but exited with %v, want 1", tg.name, tg.cmd.ProcessState)
	}
}

// mappingStart returns the start address of the mapping named name in
// /proc/PID/maps.
func mappingStart(t *testing.T, pid int, name string) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 6 && fields[5] == name {
			start, _, _ := strings.Cut(fields[0], "-")
			v, err := strconv.ParseUint(start, 16, 64)
			if err != nil {
				t.Fatalf("parse maps line %q: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("no %s mapping in /proc/%d/maps", name, pid)
	return 0
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
	pid := checkpointRestore(t, tg, cycleOpts{volatile: counterVolatile})
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

// System call numbers on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl);
// sysRead is read's 0 as -1, so that 0 can mean no wait.
const (
	sysRead           = -1
	sysPause          = 34
	sysClockNanosleep = 230
)

// waitBlockedIn waits until pid's main thread is blocked in system call
// nr (sysRead for read), as /proc/PID/syscall shows it.
func waitBlockedIn(t *testing.T, pid, nr int) {
	t.Helper()
	if nr == sysRead {
		nr = 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc, err := proc.ReadSyscall(pid, pid)
		if err == nil && !sc.Running && sc.Nr == int64(nr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not blocked in system call %d after 10 s (%+v, %v)", pid, nr, sc, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
