//go:build linux

package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

func init() {
	type cTarget = struct {
		src   string
		flags []string
	}
	cTargets["pty"] = cTarget{"pty.c", nil}
	cTargets["ttyecho"] = cTarget{"ttyecho.c", nil}
}

// TestPty: a pseudo-terminal pair the job opened (master in the root, the
// slave the controlling terminal of a child's session, a grandchild's
// group in the foreground, data queued both ways) comes back with its
// index, termios, window size, packet mode, lock, exclusive mode, the
// slave's owner and mode, the data, the session's controlling terminal
// and its foreground group; each process checks its own.
func TestPty(t *testing.T) {
	needsRoot(t)
	hole := ptyHole(t)
	tg := startTarget(t, "pty")
	hole()
	pid := checkpointRestoreTree(t, tg)
	checkResult(t, tg, pid)
}

// TestPtyForegroundChecked is the mutation for TestPty: the target must
// notice a foreground group that is not the one it set.
func TestPtyForegroundChecked(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pty", "corrupt-fg")
	trackTree(t, tg.pid)
	expectFail(t, tg, "foreground group")
}

// TestPythonPty: a Python pty.fork() (the child on the slave, its
// controlling terminal; the parent's master holding unread echo), restored
// as a tree: keys the parent types into the master after the restore reach
// the child, and the master holds every echo.
func TestPythonPty(t *testing.T) {
	needsRoot(t)
	python, ok := targets["pystate"]
	if !ok {
		t.Skipf("no python3 interpreter: %v", targetErrs["pystate"])
	}
	targets["pypty"] = []string{python[0], filepath.Join(moduleRoot, "test", "targets", "pypty.py")}
	hole := ptyHole(t)
	tg := startTarget(t, "pypty")
	hole()
	pid := checkpointRestoreTree(t, tg)
	checkResult(t, tg, pid)
}

// TestPtyLeaveRunning: the data read out of the pair at dump is written
// straight back, exactly, and the pair locked again: the job, left
// running, finds everything as it was.
func TestPtyLeaveRunning(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "pty")
	trackTree(t, tg.pid)
	dump(t, tg.pid, t.TempDir(), "--leave-running")
	checkResult(t, tg, tg.pid)
}

// TestPtyCanonicalDataRefused: a complete line waiting for a slave in
// canonical mode is refused (its end is a mark no interface shows), in
// one line, and the job runs on with its data.
func TestPtyCanonicalDataRefused(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "pty", "canon")
	trackTree(t, tg.pid)
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "/dev/ptmx", "canonical mode"}, nil)
	checkIntact(t, tg)
}

// TestPtyPartialLine: a line typed into the pair in canonical mode but
// not ended (with a newline, a kill and a stop character typed after ^V,
// and its echo waiting for the master) comes back exactly: the master
// reads the echo once, the termios are the same, and the line's end
// typed after the restore gives the slave the whole line in one read.
// Dumped with --leave-running too: the job finds the line as it was.
func TestPtyPartialLine(t *testing.T) {
	needsRoot(t)
	t.Run("restore", func(t *testing.T) {
		hole := ptyHole(t)
		tg := startTarget(t, "pty", "partial")
		hole()
		pid := checkpointRestoreTree(t, tg)
		checkResult(t, tg, pid)
	})
	t.Run("leave-running", func(t *testing.T) {
		needsGocr(t)
		tg := startTarget(t, "pty", "partial")
		trackTree(t, tg.pid)
		dump(t, tg.pid, t.TempDir(), "--leave-running")
		checkResult(t, tg, tg.pid)
	})
}

// TestPtyRefusals: a pty whose master is outside the dump, and which is
// not the process's controlling terminal, is refused in one line naming
// the fd, and the job runs on.
func TestPtyRefusals(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "pty")
	pids := trackTree(t, tg.pid)
	if len(pids) == 0 {
		t.Fatal("the pty target has no child")
	}
	// The child alone: its slave's master stays in the root.
	child := pids[0]
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(child), "-D", t.TempDir())
	assertRefused(t, r, []string{"/dev/pts/", "master of this pty is outside"}, nil)
	checkResult(t, tg, tg.pid)
}

// TestControllingTerminalRefused: a session leader whose controlling
// terminal the restore could not give back (a pty it holds no slave fd
// of; a virtual console) is refused in one line, and keeps its terminal.
func TestControllingTerminalRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	for _, c := range []struct{ mode, want string }{
		{"pty-nofd", "whose controlling terminal /dev/pts/"},
		{"vt", "whose controlling terminal is device 4:1, not a pseudo-terminal"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			tg := startTarget(t, "cttyleader", c.mode)
			if c.mode == "vt" {
				st, err := proc.ReadStat(tg.pid)
				if err != nil {
					t.Fatal(err)
				}
				if st.TtyNr == 0 {
					t.Skip("/dev/tty1 could not be made a controlling terminal here (no virtual console, or another session's)")
				}
			}
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), "leads a session", c.want}, nil)
			checkIntact(t, tg)
		})
	}
}

// testTerminal is a pseudo-terminal the test owns, as a terminal emulator
// does: it types into the master and keeps what is written to the
// terminal.
type testTerminal struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
}

func openTestTerminal(t *testing.T) *testTerminal {
	t.Helper()
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("TIOCGPTN: %v", err)
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	s, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	// Non-blocking, so the runtime's poller reads it and Close ends the
	// read (os.NewFile).
	tt := &testTerminal{master: os.NewFile(uintptr(m), "ptmx"), slave: s}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := tt.master.Read(buf)
			tt.mu.Lock()
			tt.out.Write(buf[:max(n, 0)])
			tt.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { tt.slave.Close(); tt.master.Close(); <-done })
	return tt
}

// output is what was written to the terminal so far.
func (tt *testTerminal) output() string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.out.String()
}

// typeKeys writes keys to the terminal, as a user types them.
func (tt *testTerminal) typeKeys(t *testing.T, keys string) {
	t.Helper()
	if _, err := tt.master.Write([]byte(keys)); err != nil {
		t.Fatalf("type %q: %v", keys, err)
	}
}

// terminalProcess is a process started on a testTerminal.
type terminalProcess struct {
	*exec.Cmd
	exited chan struct{} // closed once it is reaped
}

// start starts argv as the leader of a session whose controlling
// terminal is tt, on its stdio, as a login shell runs.
func (tt *testTerminal) start(t *testing.T, argv ...string) *terminalProcess {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tt.slave, tt.slave, tt.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(pidGoneTimeout):
			t.Errorf("%v pid %d not gone after SIGKILL", argv, cmd.Process.Pid)
		}
	})
	return &terminalProcess{cmd, exited}
}

// waitExit waits for p to end and returns its exit code.
func (p *terminalProcess) waitExit(t *testing.T, diag func() string) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.ProcessState.ExitCode()
	case <-time.After(resultTimeout):
		t.Fatalf("%v still running after %v\n%s", p.Args, resultTimeout, diag())
	}
	return -1
}

// ptyHole opens a pseudo-terminal and returns a func that closes it. A
// test opens one before its job opens its own pty and closes it once the
// job is ready: devpts gives the lowest free index (fs/devpts/inode.c
// devpts_new_index), so a pty another process opens while the job is
// dumped takes the hole, not the index the restore needs again.
func ptyHole(t *testing.T) func() {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	var once sync.Once
	closeIt := func() { once.Do(func() { unix.Close(fd) }) }
	t.Cleanup(closeIt)
	return closeIt
}

// waitFor polls cond until it holds, failing after resultTimeout.
func waitFor(t *testing.T, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(resultTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v\n%s", what, resultTimeout, diag())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fileHas tells whether path's contents are want.
func fileHas(path, want string) func() bool {
	return func() bool {
		b, _ := os.ReadFile(path)
		return string(b) == want
	}
}

// childrenOf lists pid's children (/proc/PID/task/PID/children, man 5
// proc).
func childrenOf(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// shellJobStdio are the oracle's keys (oracle_test.go) that a restore
// with --shell-job changes by design: the links of the job's stdio, now
// gocr's terminal (their fdinfo is compared).
var shellJobStdio = []string{"fd/0", "fd/1", "fd/2"}

// TestShellJob: a job a shell started in the foreground of its terminal
// is dumped, and restored by gocr restore --shell-job from another
// terminal: it reads the keys typed there, is the foreground of it, and
// job control works through gocr (Ctrl-Z stops the job and gocr; gocr
// continued, as a shell's fg does, gives the job the terminal again).
func TestShellJob(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to start the job from")
	}
	dir := t.TempDir()
	result := filepath.Join(dir, "result")
	echo := result + ".echo"
	term1 := openTestTerminal(t)
	shell := term1.start(t, bash, "--norc", "--noprofile", "-c", `set -m; "$@"; exec sleep 1000`, "bash", targets["ttyecho"][0], result)
	waitFor(t, "the job is ready", func() bool { _, err := os.Stat(result + ".ready"); return err == nil }, term1.output)
	kids := childrenOf(shell.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("the shell has children %v, want the job alone\n%s", kids, term1.output())
	}
	job := kids[0]
	// Not started: its Path names the executable, for belongsTo.
	tg := &target{name: "ttyecho", dir: dir, result: result, logPath: filepath.Join(dir, "log"), pid: job,
		cmd: exec.Command(targets["ttyecho"][0])}
	t.Cleanup(func() {
		if !gone(job) && tg.belongsTo(job) {
			syscall.Kill(job, syscall.SIGKILL)
		}
	})
	term1.typeKeys(t, "before\n")
	waitFor(t, "the job echoes what is typed before the dump", fileHas(echo, "before\n"), term1.output)
	before, err := readTreeView(t, job)
	if err != nil {
		t.Fatalf("read what the kernel shows of the job, pid %d: %v", job, err)
	}

	images := t.TempDir()
	dump(t, job, images)
	waitFor(t, "the dumped job is gone", func() bool { return gone(job) }, term1.output)

	term2 := openTestTerminal(t)
	gocr := term2.start(t, gocrBinary(t), "restore", "--shell-job", "-D", images)
	waitFor(t, "the job runs again", func() bool { return !gone(job) && tg.belongsTo(job) }, term2.output)
	term2.typeKeys(t, "after\n")
	waitFor(t, "the restored job echoes what is typed on gocr's terminal", fileHas(echo, "before\nafter\n"), term2.output)
	// --shell-job gives the job gocr's terminal as its stdio, by design.
	checkTreeView(t, job, before, shellJobStdio)

	term2.typeKeys(t, "\x1a") // Ctrl-Z
	stopped := func(pid int) func() bool { return func() bool { return strings.HasPrefix(procState(pid), "T") } }
	waitFor(t, "Ctrl-Z stops the job", stopped(job), term2.output)
	waitFor(t, "gocr stops with its job", stopped(gocr.Process.Pid), term2.output)
	// fg: gocr's group holds the terminal again; continuing it hands the
	// terminal to the job and continues the job.
	if err := syscall.Kill(gocr.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job runs again after fg", func() bool { return !stopped(job)() }, term2.output)
	term2.typeKeys(t, "again\n")
	waitFor(t, "the job reads the terminal after fg", fileHas(echo, "before\nafter\nagain\n"), term2.output)

	if err := syscall.Kill(job, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitResult(t, tg, job); v != "PASS" {
		t.Fatalf("restored job: %s\nterminal:\n%s", v, term2.output())
	}
	if code := gocr.waitExit(t, term2.output); code != 0 {
		t.Fatalf("gocr restore exited %d after its job passed\n%s", code, term2.output())
	}
}

// TestScriptRestored is the acceptance case: script(1), started from a
// shell on a terminal, runs a shell running cat, on the pty script opened.
// Dumped and restored with --shell-job on another terminal, the keys typed
// there go through script and its pty to cat, which writes them to a file.
func TestScriptRestored(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) (util-linux; make deps installs it)")
	}
	out := filepath.Join(t.TempDir(), "typed")
	term1 := openTestTerminal(t)
	// Opened before script opens its pty: the restore needs that index
	// free again, and a terminal opened later would take it.
	term2 := openTestTerminal(t)
	hole := ptyHole(t)
	// The temporary path has no quote in it.
	shell := term1.start(t, "/bin/sh", "-c", `"$0" -q -f -c "$1" /dev/null; exec sleep 1000`, script, "exec cat > '"+out+"'")
	var root int
	waitFor(t, "script starts", func() bool {
		kids := childrenOf(shell.Process.Pid)
		if len(kids) == 1 {
			root = kids[0]
		}
		return root != 0 && commOf(root) == "script"
	}, term1.output)
	pids := trackTree(t, root)
	term1.typeKeys(t, "before\n")
	waitFor(t, "cat gets what is typed before the dump", fileHas(out, "before\n"), term1.output)
	hole() // script's pty is open: cat read through it
	pids = trackTree(t, root)
	before, err := readTreeView(t, root)
	if err != nil {
		t.Fatalf("read what the kernel shows of script's tree, pid %d: %v", root, err)
	}

	images := t.TempDir()
	dump(t, root, images)
	waitAllGone(t, append(pids, root), "the dump")

	gocr := term2.start(t, gocrBinary(t), "restore", "--shell-job", "-D", images)
	waitFor(t, "script runs again", func() bool { return commOf(root) == "script" }, term2.output)
	t.Cleanup(func() {
		for _, pid := range append(pids, root) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	term2.typeKeys(t, "after restore\n")
	waitFor(t, "cat gets what is typed on gocr's terminal", fileHas(out, "before\nafter restore\n"), term2.output)
	// Beyond the stdio --shell-job changes by design, cat's output
	// file has grown by what was typed since the dump.
	checkTreeView(t, root, before, append([]string{"fd/1/pos"}, shellJobStdio...))
	// The end of input ends cat, then script, then gocr with its status.
	term2.typeKeys(t, "\x04")
	if code := gocr.waitExit(t, term2.output); code != 0 {
		t.Fatalf("gocr restore exited %d after script ended\n%s", code, term2.output())
	}
}
