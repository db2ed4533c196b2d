//go:build linux

package test

import (
	"bufio"
	"fmt"
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

// TestGocrKilledMidDump: gocr is SIGKILLed while its parasite runs in the
// target (held there by the testhook.PauseAfterInfect hook). Nobody else
// has the target's registers, so the parasite must notice (its command
// pipe from gocr reaches EOF), close what was injected, unmap its region
// and rt_sigreturn to the target's own code. The target must go on
// counting exactly, untraced, with the fds and mappings it had before the
// dump and none of gocr's, and pass its own check; the image directory
// must not look complete.
func TestGocrKilledMidDump(t *testing.T) {
	// counter: exact continuation; regs: every vector register comes
	// back through the signal frame's xsave area; sleeper and pauser:
	// nanosleep (restart_syscall) and pause (-ERESTARTNOHAND) interrupted
	// by the freeze restart as if nothing happened; novdso: the way out
	// is the chain of the process's own code, not the vDSO's gadget.
	for _, name := range []string{"counter", "regs", "sleeper", "pauser", "novdso"} {
		t.Run(name, func(t *testing.T) { testGocrKilledMidDump(t, name) })
	}
}

func testGocrKilledMidDump(t *testing.T, name string) {
	needsRoot(t)
	needsGocr(t)
	var args []string
	if name == "novdso" {
		args = []string{"all"}
	}
	tg := startTarget(t, name, args...)
	before := fdsAndMaps(t, tg.pid)
	dir := t.TempDir()
	cmd := startGocr(t, testhook.Setting(testhook.PauseAfterInfect, "5s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
	// Wait until gocr holds with the parasite running: killing it while
	// it is still injecting the parasite is another case (the parasite
	// cannot take over yet).
	waitHook(t, cmd, testhook.PauseAfterInfect)
	if !hasParasite(tg.pid) {
		t.Fatalf("gocr holds after infection, but pid %d has no parasite mapping", tg.pid)
	}
	killGocr(t, cmd)
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
		t.Errorf("a killed dump left an inventory.img: the directory looks complete")
	}
	waitUntraced(t, tg.pid)
	waitNoParasite(t, tg.pid)
	if extra := fdsAndMaps(t, tg.pid).notIn(before); len(extra) > 0 {
		t.Errorf("pid %d after self-cure has what it did not have before the dump: %q", tg.pid, extra)
	}
	if name == "counter" {
		checkIntactCounter(t, tg)
		return
	}
	assertUntouched(t, tg.pid)
	if name == "sleeper" {
		time.Sleep(3500 * time.Millisecond) // one whole sleep after the cure
	}
	checkResult(t, tg, tg.pid)
}

// TestGocrKilledInInjectedSyscall: gocr is SIGKILLed while it injects the
// system calls that map the parasite, at fixed points (the testhook
// pause-injected-syscall-* hooks hold it there): with the first call's
// registers set but the call not yet run, in the syscall-enter-stop of
// the first call (memfd_create), of the mmap (the 2nd), and of the last
// call before the parasite starts (the 3rd: the socketpair). The kernel
// detaches the thread, which runs the
// call, then rt_sigreturn through the frame gocr wrote on its stack
// (ptrace.Injection): the counter must count on exactly, untraced, and
// pass its own check; the regs target must get every vector register
// back through the frame's xsave area; the novdso target, whose calls
// run on a chain of its own code, its vDSO area and its threads' counters
// as they were.
func TestGocrKilledInInjectedSyscall(t *testing.T) {
	for _, tc := range []struct {
		name, target, hook, nth string
		args                    []string
	}{
		{"FirstSet", "counter", testhook.PauseInjectedSyscallSet, "1", nil},
		{"FirstEntered", "counter", testhook.PauseInjectedSyscallEntered, "1", nil},
		{"MmapEntered", "counter", testhook.PauseInjectedSyscallEntered, "2", nil},
		{"LastEntered", "counter", testhook.PauseInjectedSyscallEntered, "3", nil},
		{"RegsMmapEntered", "regs", testhook.PauseInjectedSyscallEntered, "2", nil},
		{"NoVdsoFirstSet", "novdso", testhook.PauseInjectedSyscallSet, "1", []string{"all"}},
		{"NoVdsoMmapEntered", "novdso", testhook.PauseInjectedSyscallEntered, "2", []string{"all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needsRoot(t)
			needsGocr(t)
			tg := startTarget(t, tc.target, tc.args...)
			if tc.target == "counter" {
				waitCounter(t, tg, 10)
			}
			dir := t.TempDir()
			cmd := startGocr(t, testhook.Setting(tc.hook, tc.nth), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir)
			waitHook(t, cmd, tc.hook)
			if st := procState(tg.pid); st != "t" {
				t.Fatalf("gocr holds in an injected system call, but pid %d is in state %q, not t (traced)", tg.pid, st)
			}
			killGocr(t, cmd)
			if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
				t.Errorf("a killed dump left an inventory.img: the directory looks complete")
			}
			if tc.target == "counter" {
				checkIntactCounter(t, tg)
				return
			}
			waitUntraced(t, tg.pid)
			assertUntouched(t, tg.pid)
			checkResult(t, tg, tg.pid)
		})
	}
}

// waitUntraced waits until the kernel has detached pid from a dead
// tracer: it runs on its own, not stopped.
func waitUntraced(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		if strings.Contains(string(b), "\nTracerPid:\t0\n") && procState(pid) != "t" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still traced or stopped 5 s after gocr died (state %q)", pid, procState(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGocrKilledMidPageStreams: gocr dies while the parasite and its
// helper threads are writing the page streams. The parasite waits for its
// helpers, sees gocr gone, and returns the process to its own code: every
// word of its memory, its counter and its fds as they were, no helper
// thread left, no dump that looks complete.
func TestGocrKilledMidPageStreams(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "counter", "768")
	waitCounter(t, tg, 10)
	dir := t.TempDir()
	cmd := startGocr(t, "", "dump", "-t", strconv.Itoa(tg.pid), "-D", dir, "--page-streams", "3")
	// The last stream's image grows past its header once its helper
	// thread writes: kill gocr then, while 768 MiB are being copied.
	// Until the dump is complete its images are in a directory beside
	// dir (docs/IMAGES.md).
	pattern := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".gocr-tmp-*", fmt.Sprintf("pages-%d.2.img", tg.pid))
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			if st, err := os.Stat(m[0]); err == nil && st.Size() > 4096 {
				last = m[0]
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never grew past its header in 10 s", pattern)
		}
		time.Sleep(200 * time.Microsecond)
	}
	killGocr(t, cmd)
	if st, err := os.Stat(last); err == nil && st.Size() >= 4096+256<<20 {
		t.Fatalf("%s is complete (%d bytes): gocr was killed too late to test anything", last, st.Size())
	} else if err == nil {
		t.Logf("gocr killed with %s at %d of %d bytes", filepath.Base(last), st.Size(), 4096+256<<20)
	}
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err == nil {
		t.Errorf("a killed dump left an inventory.img: the directory looks complete")
	}
	// The helpers finish their writes, then the parasite cures itself.
	deadline = time.Now().Add(10 * time.Second)
	for {
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(tg.pid), "task"))
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(tg.pid), "fd"))
		if len(tasks) == 1 && len(fds) <= 4 && !hasParasite(tg.pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still has %d threads and %d fds 10 s after gocr died (the parasite's region mapped: %v); want 1 thread, its own 4 fds and no region",
				tg.pid, len(tasks), len(fds), hasParasite(tg.pid))
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkIntactCounter(t, tg)
}

// TestGocrKilledInThreadStates: gocr dies while every other thread of the
// process runs the parasite's thread-state stub. Each thread sees the
// lifeline's EOF and returns to its own code through the signal frame
// gocr left it; the threads target then checks every thread (TIDs, masks,
// TLS, names, alternate stacks, blocked calls restarting, spinners
// counting).
func TestGocrKilledInThreadStates(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "threads", "nopipe")
	cmd := startGocr(t, testhook.Setting(testhook.PauseInThreadStates, "10s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	waitHook(t, cmd, testhook.PauseInThreadStates)
	// In the stub every thread but the first waits in read(2) (syscall
	// 0); the target's own threads spin, sleep or wait elsewhere.
	deadline := time.Now().Add(10 * time.Second)
	for !allInRead(tg.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the threads of pid %d never all waited in the stub's read", tg.pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	killGocr(t, cmd)
	time.Sleep(500 * time.Millisecond)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// allInRead reports whether every thread of pid but the first is in
// read(2), per /proc/PID/task/TID/syscall.
func allInRead(pid int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < 2 {
		return false
	}
	for _, e := range entries {
		if e.Name() == strconv.Itoa(pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "syscall"))
		if err != nil || !strings.HasPrefix(string(b), "0 ") {
			return false
		}
	}
	return true
}

// startGocr starts gocr with args and, if hook is not empty, that test
// hook in its environment (testhook.Setting); cleanup kills it if it
// still runs. Its stderr is read line by line into the returned command's
// lines channel (see waitHook).
func startGocr(t *testing.T, hook string, args ...string) *runningGocr {
	t.Helper()
	cmd := exec.Command(gocrBinary(t), args...)
	if hook != "" {
		cmd.Env = append(os.Environ(), hook)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runningGocr{Cmd: cmd, lines: make(chan string, 64)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case r.lines <- sc.Text():
			default: // nobody waits for more: drop it, never block gocr
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return r
}

// runningGocr is a gocr started by startGocr, still running.
type runningGocr struct {
	*exec.Cmd
	lines chan string // its stderr, a line at a time
}

// waitHook waits until gocr says the pause hook name holds it.
func waitHook(t *testing.T, r *runningGocr, name string) {
	t.Helper()
	want := testhook.Announcement(name)
	timeout := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("gocr ended without reaching the %s hook; stderr:\n%s", name, strings.Join(seen, "\n"))
			}
			if line == want {
				return
			}
			seen = append(seen, line)
		case <-timeout:
			t.Fatalf("gocr did not reach the %s hook in 20 s; stderr so far:\n%s", name, strings.Join(seen, "\n"))
		}
	}
}

// heldAt returns the setting that holds a gocr at the pause hook name
// until goOn: however long the test's work there takes, gocr goes on
// only once it is done (testhook.Pause, set to a path).
func heldAt(t *testing.T, name string) (setting string, goOn func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "go-on-"+name)
	return testhook.Setting(name, path), func() {
		t.Helper()
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// killGocr SIGKILLs a gocr from startGocr and reaps it.
func killGocr(t *testing.T, cmd *runningGocr) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// waitNoParasite waits until the parasite's region is gone from pid's
// mappings: a parasite that cured itself unmapped it on its way out.
func waitNoParasite(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for hasParasite(pid) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "maps"))
			t.Fatalf("pid %d still maps the parasite's region 5 s after gocr died:\n%s", pid, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// procHoldings is what a process holds as /proc shows it: each fd with
// what it names ("fd 3 -> pipe:[123]"), each mapping's line of
// /proc/PID/maps (man 5 proc_pid_maps).
type procHoldings []string

func fdsAndMaps(t *testing.T, pid int) procHoldings {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	ents, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	var h procHoldings
	for _, e := range ents {
		link, _ := os.Readlink(filepath.Join(dir, "fd", e.Name()))
		h = append(h, "fd "+e.Name()+" -> "+link)
	}
	maps, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
		h = append(h, line)
	}
	return h
}

// notIn lists what h holds that before did not. The stack and the heap
// may grow meanwhile: those lines are compared by name only.
func (h procHoldings) notIn(before procHoldings) []string {
	had := map[string]bool{}
	for _, s := range before {
		had[s] = true
		if name := growing(s); name != "" {
			had[name] = true
		}
	}
	var extra []string
	for _, s := range h {
		if name := growing(s); name != "" && had[name] {
			continue
		}
		if !had[s] {
			extra = append(extra, s)
		}
	}
	return extra
}

// growing is "[stack]" or "[heap]" for such a line of /proc/PID/maps.
func growing(line string) string {
	for _, name := range []string{"[stack]", "[heap]"} {
		if strings.HasSuffix(line, " "+name) {
			return name
		}
	}
	return ""
}

func hasParasite(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "maps"))
	return err == nil && containsLine(string(b), "/memfd: (deleted)")
}

func containsLine(s, sub string) bool {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		line := s[:i]
		if len(line) >= len(sub) && line[len(line)-len(sub):] == sub {
			return true
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return false
}

// TestGocrKilledMidRestore: gocr is SIGKILLed while the restored processes
// (a tree, with threads elsewhere covered by the same code) are parked in
// the restorer waiting for it. No one can finish them, so they must end
// themselves (the lifeline pipe reaches EOF) and leave no process behind.
func TestGocrKilledMidRestore(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "tree")
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")

	cmd := startGocr(t, testhook.Setting(testhook.PauseBeforeFinish, "10s"), "restore", "-D", dir, "-d")
	waitHook(t, cmd, testhook.PauseBeforeFinish)
	t.Cleanup(func() {
		for _, pid := range pids {
			if !gone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// Wait until every process of the tree exists again (parked).
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := procState(tg.pid) != ""
		for _, pid := range pids {
			if procState(pid) == "" {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree was not recreated within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	killGocr(t, cmd)
	waitAllGone(t, append([]int{tg.pid}, pids...), "gocr was killed before it released the restored processes")
}
