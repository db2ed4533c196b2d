//go:build linux

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
)

// Restores in a new PID namespace (gocr restore --pidns): the job keeps
// every dumped PID there, even one another process holds here, sees them
// in its /proc, and can be dumped and restored again from there.

// nsPids is the NSpid line of pid's status: its PID in each PID
// namespace, outermost first (man 5 proc).
func nsPids(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			var out []int
			for _, f := range strings.Fields(v) {
				n, _ := strconv.Atoi(f)
				out = append(out, n)
			}
			return out
		}
	}
	return nil
}

func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// nsJob waits until tg runs as PID nspid in a PID namespace one level
// below the test's and returns its PID here and that of its parent, the
// namespace's reaper (checked by its name). Cleanup SIGKILLs the reaper,
// which ends the whole namespace.
func nsJob(t *testing.T, tg *target, nspid int) (host, reaper int) {
	t.Helper()
	depth := len(nsPids(os.Getpid())) + 1
	deadline := time.Now().Add(15 * time.Second)
	for host == 0 {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			ns := nsPids(pid)
			if len(ns) == depth && ns[depth-1] == nspid && !gone(pid) && tg.belongsTo(pid) {
				host = pid
				break
			}
		}
		if host == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no process of target %s with pid %d in a PID namespace below the test's\n%s", tg.name, nspid, tg.diagnostics())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	reaper, err := ppidOf(host)
	if err != nil {
		t.Fatal(err)
	}
	if c := commOf(reaper); c != "gocr-pidns" {
		t.Fatalf("pid %d (pid %d in its namespace) has parent %d named %q, want gocr's reaper gocr-pidns", host, nspid, reaper, c)
	}
	if ns := nsPids(reaper); len(ns) != depth || ns[depth-1] != 1 {
		t.Fatalf("reaper %d has NSpid %v, want PID 1 in the namespace", reaper, ns)
	}
	t.Cleanup(func() {
		if commOf(reaper) == "gocr-pidns" {
			syscall.Kill(reaper, syscall.SIGKILL)
		}
		if !waitGone(reaper, pidGoneTimeout) || !waitGone(host, pidGoneTimeout) {
			t.Errorf("reaper %d or job %d still present %v after SIGKILL", reaper, host, pidGoneTimeout)
		}
	})
	return host, reaper
}

// dumpRestoreInPidns dumps the job restored in a PID namespace (host,
// under reaper) from there, waits for both to end and restores it with
// --pidns=auto, which takes it into a new namespace again; it returns
// the job's PID as the test sees it.
func dumpRestoreInPidns(t *testing.T, tg *target, host, reaper int) int {
	t.Helper()
	again := t.TempDir()
	dump(t, host, again)
	if !waitGone(host, pidGoneTimeout) || !waitGone(reaper, pidGoneTimeout) {
		t.Fatalf("job %d or reaper %d still present after the dump", host, reaper)
	}
	restore(t, nil, again, "-d", "--pidns=auto")
	host, _ = nsJob(t, tg, tg.pid)
	return host
}

// stderrLines are the non-empty lines of a gocr run's stderr.
//
// The note a restore prints when the job's group or session was led
// from outside the dump (it is then gocr restore's own) is left out: it
// says how the harness started the target, not what a test looks at.
func stderrLines(r gocrRun) []string {
	var out []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.TrimSpace(l) != "" && !strings.Contains(l, "led from outside the dump") {
			out = append(out, l)
		}
	}
	return out
}

// TestPidnsTakenAuto: the target's PID is held by an unrelated process
// (takepid) when it is restored with --pidns=auto. gocr says so in one
// line and restores it in a new PID namespace under its dumped PID; the
// holder is untouched. pathfds checks itself and its child there: each
// has its PID, and the fds on their /proc files (its own stat, its /proc
// directory, its child's status) show them, so the job sees its own
// PIDs in /proc; so they do once more after a dump from the namespace.
func TestPidnsTakenAuto(t *testing.T) {
	needsGocr(t)
	tg := startTargetOpts(t, "pathfds", startOpts{args: []string{t.TempDir()}})
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	holder := takePid(t, tg.pid)
	r := runGocr(t, nil, "restore", "-D", dir, "-d", "--pidns=auto")
	if r.code != 0 {
		t.Fatalf("restore --pidns=auto failed: %v", r)
	}
	// Found first, so that its cleanup ends the job whatever fails.
	host, reaper := nsJob(t, tg, tg.pid)
	lines := stderrLines(r)
	if len(lines) != 1 {
		t.Fatalf("want one line on stderr: %v", r)
	}
	if want := fmt.Sprintf("pid %d is in use", tg.pid); !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "new PID namespace") {
		t.Fatalf("stderr %q does not say %q and that it restores in a new PID namespace", lines[0], want)
	}
	if ppid := readPpid(t, tg.pid); ppid != holder.Process.Pid {
		t.Fatalf("pid %d has parent %d after the restore, want takepid %d: not the unrelated process", tg.pid, ppid, holder.Process.Pid)
	}
	// Dumped from the namespace, its fds on /proc files name them by the
	// PIDs it sees, and come back so in a new namespace.
	host = dumpRestoreInPidns(t, tg, host, reaper)
	checkResult(t, tg, host)
}

// TestPidnsTree: the 20-process tree (sessions, groups, a zombie, pipes
// and shared memory between its processes) restored with --pidns=always
// checks every process's PID, parent, group and session itself, and its
// zombie's state through its /proc; so it does once more after a dump
// from the namespace.
func TestPidnsTree(t *testing.T) {
	needsGocr(t)
	tg, _, _, dir := dumpedTree(t)
	r := runGocr(t, nil, "restore", "-D", dir, "-d", "--pidns=always")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success and nothing on stderr: %v", r)
	}
	host, reaper := nsJob(t, tg, tg.pid)
	// Dumped from its namespace, with its zombie, groups and session,
	// and restored into a new one again.
	again := t.TempDir()
	dump(t, host, again)
	if !waitGone(host, pidGoneTimeout) || !waitGone(reaper, pidGoneTimeout) {
		t.Fatalf("job %d or reaper %d still present after the dump", host, reaper)
	}
	r = runGocr(t, nil, "restore", "-D", again, "-d", "--pidns=auto")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success and nothing on stderr: %v", r)
	}
	host, _ = nsJob(t, tg, tg.pid)
	checkResult(t, tg, host)
}

// TestPidnsDumpAgain: a job restored in a PID namespace is dumped from
// there (by the PID gocr sees) and restored again, twice: the images hold
// the PIDs the job sees and say it lived in a namespace of its own, so
// --pidns=auto restores them into a new one (and never refuses them, in
// one line); the reaper itself is refused. The counter's log shows no
// count lost or repeated across the three restores.
func TestPidnsDumpAgain(t *testing.T) {
	needsGocr(t)
	dir, tg := dumpedCounter(t)
	restore(t, nil, dir, "-d", "--pidns=always")
	host, reaper := nsJob(t, tg, tg.pid)
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(reaper), "-D", t.TempDir())
	if r.code == 0 || len(stderrLines(r)) != 1 || !strings.Contains(r.stderr, "init of its PID namespace") {
		t.Fatalf("dump of the reaper: want a refusal in one line naming the namespace's init: %v", r)
	}
	for round := 1; round <= 2; round++ {
		again := t.TempDir()
		dump(t, host, again)
		if !waitGone(host, pidGoneTimeout) || !waitGone(reaper, pidGoneTimeout) {
			t.Fatalf("round %d: job %d or reaper %d still present after the dump", round, host, reaper)
		}
		show := runGocr(t, nil, "show", again)
		if show.code != 0 || !strings.Contains(show.stdout, `"pid_namespace": true`) || !strings.Contains(show.stdout, fmt.Sprintf(`"root_pid": %d`, tg.pid)) {
			t.Fatalf("round %d: the images do not hold pid %d in a PID namespace of its own: %v", round, tg.pid, show)
		}
		never := runGocr(t, nil, "restore", "-D", again, "-d", "--pidns=never")
		if never.code == 0 || len(stderrLines(never)) != 1 || !strings.Contains(never.stderr, "--pidns=auto") {
			t.Fatalf("round %d: restore --pidns=never of a namespace's images: want a refusal in one line naming --pidns=auto: %v", round, never)
		}
		r := runGocr(t, nil, "restore", "-D", again, "-d", "--pidns=auto")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("round %d: want success and nothing on stderr: %v", round, r)
		}
		host, reaper = nsJob(t, tg, tg.pid)
	}
	checkResult(t, tg, host)
	counterLines(t, tg.logPath, true)
}

// TestPidnsNeverTaken: with --pidns=never, as without --pidns, a PID
// another process holds fails the restore in one line naming it, and the
// restore leaves nothing: no process of the target anywhere, the holder
// untouched.
func TestPidnsNeverTaken(t *testing.T) {
	needsGocr(t)
	dir, tg := dumpedCounter(t)
	holder := takePid(t, tg.pid)
	// Reapers already there (another test's job) are not this restore's.
	reapers := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && commOf(pid) == "gocr-pidns" {
			reapers[pid] = true
		}
	}
	for _, args := range [][]string{{"--pidns=never"}, nil} {
		r := runGocr(t, nil, append([]string{"restore", "-D", dir, "-d"}, args...)...)
		assertInUse(t, r.code, stderrLines(r), tg.pid)
		if ppid := readPpid(t, tg.pid); ppid != holder.Process.Pid {
			t.Fatalf("pid %d has parent %d after the failed restore, want takepid %d", tg.pid, ppid, holder.Process.Pid)
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && !gone(pid) && (tg.belongsTo(pid) || commOf(pid) == "gocr-pidns" && !reapers[pid]) {
				t.Fatalf("the failed restore %v left pid %d (%s)", args, pid, commOf(pid))
			}
		}
	}
}

// TestPidnsKillReaper: SIGKILL to the namespace's reaper ends the job:
// the kernel kills every process of a namespace whose init dies (man 7
// pid_namespaces).
//
// --pidfile gets the job's PID as seen outside the namespace; one that
// cannot be written fails the restore, leaving no process.
func TestPidnsKillReaper(t *testing.T) {
	needsGocr(t)
	dir, tg := dumpedCounter(t)
	pidfile := filepath.Join(t.TempDir(), "job.pid")
	if r := runGocr(t, nil, "restore", "-D", dir, "-d", "--pidns=always", "--pidfile", filepath.Join(pidfile, "no")); r.code == 0 || !strings.Contains(r.stderr, "pid file") {
		t.Fatalf("a pid file in a missing directory: want a refusal naming it: %v", r)
	}
	restore(t, nil, dir, "-d", "--pidns=always", "--pidfile", pidfile)
	host, reaper := nsJob(t, tg, tg.pid)
	if b, err := os.ReadFile(pidfile); err != nil || string(b) != fmt.Sprintf("%d\n", host) {
		t.Errorf("pid file holds %q (%v), want the job's PID here, %d", b, err, host)
	}
	if err := syscall.Kill(reaper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(host, pidGoneTimeout) {
		t.Fatalf("job %d still present (state %s) %v after its reaper %d was killed", host, procState(host), pidGoneTimeout, reaper)
	}
}

// TestPidnsExitStatus: gocr restore without -d exits with the job's
// status in a namespace too: 137 when the job is SIGKILLed; and a
// SIGTERM sent to the reaper from outside goes to the job, which passes
// its check and exits 0, and so does gocr. (The log is not checked as a
// whole: the first restore's counting goes on past the point the second
// one starts again from.)
func TestPidnsExitStatus(t *testing.T) {
	needsGocr(t)
	dir, tg := dumpedCounter(t)
	var lastErr string
	foreground := func(signal func(host, reaper int)) int {
		ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
		defer cancel()
		cmd, outPath, errPath := gocrCmd(t, ctx, nil, "restore", "-D", dir, "--pidns=always")
		before, err := os.Stat(tg.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		host, reaper := nsJob(t, tg, tg.pid)
		// The job is found as soon as the restore made it; only once it
		// writes its log (the dumped one is dead) does it run its own
		// code, the restore done: a signal before would end the restore.
		waitFor(t, "the restored counter writes its log", func() bool {
			st, err := os.Stat(tg.logPath)
			return err == nil && (st.Size() != before.Size() || !st.ModTime().Equal(before.ModTime()))
		}, tg.diagnostics)
		signal(host, reaper)
		err = cmd.Wait()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			o, _ := os.ReadFile(outPath)
			e, _ := os.ReadFile(errPath)
			t.Fatalf("gocr restore did not end with its job: stdout %s, stderr %s", o, e)
		}
		e, _ := os.ReadFile(errPath)
		lastErr = string(e)
		return cmd.ProcessState.ExitCode()
	}
	if code := foreground(func(host, _ int) { syscall.Kill(host, syscall.SIGKILL) }); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("gocr restore exited %d after its job was SIGKILLed, want %d; stderr: %s", code, 128+int(syscall.SIGKILL), lastErr)
	}
	if code := foreground(func(_, reaper int) { syscall.Kill(reaper, syscall.SIGTERM) }); code != 0 {
		t.Fatalf("gocr restore exited %d after its job passed, want 0; stderr: %s\n%s", code, lastErr, tg.diagnostics())
	}
	// Written before it exited, which gocr waited for.
	if b, err := os.ReadFile(tg.result); err != nil || string(b) != "PASS\n" {
		t.Fatalf("counter's verdict: %q (%v)\n%s", b, err, tg.diagnostics())
	}
}

// TestPidnsSignalStopsRestore: a restore in a new namespace that fails
// (SIGTERM to gocr while the tree is parked before finishing) removes
// what it created, the reaper and every process in its namespace, and
// nothing else.
func TestPidnsSignalStopsRestore(t *testing.T) {
	needsGocr(t)
	tg, _, _, dir := dumpedTree(t)
	r := startGocr(t, testhook.Setting(testhook.PauseBeforeFinish, "30s"), "restore", "-D", dir, "-d", "--pidns=always")
	waitHook(t, r, testhook.PauseBeforeFinish)
	host, reaper := nsJob(t, tg, tg.pid)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", host))
	if err != nil {
		t.Fatal(err)
	}
	var inside []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && l == ns {
			inside = append(inside, pid)
		}
	}
	// The 20 processes of the tree (one of them a zombie) and the reaper.
	if len(inside) != 21 {
		t.Fatalf("%d processes in the restore's PID namespace, want 21: %v", len(inside), inside)
	}
	stopGocr(t, r)
	for _, pid := range append(inside, reaper) {
		assertNoProcess(t, pid)
	}
}

// TestPidnsPosixTimers: a POSIX timer that notifies one thread
// (SIGEV_THREAD_ID) names that thread by its TID in the namespace once
// dumped from there: /proc/self/timers, which the target compares with
// what it read before the first dump, and the signal reaching its thread
// show it (posixtimers.c).
func TestPidnsPosixTimers(t *testing.T) {
	needsGocr(t)
	if _, err := unix.PrctlRetInt(77, 2, 0, 0, 0); err != nil {
		t.Skipf("this kernel cannot recreate POSIX timers under their IDs (prctl PR_TIMER_CREATE_RESTORE_IDS: %v)", err)
	}
	tg := startTarget(t, "posixtimers")
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	restore(t, nil, dir, "-d", "--pidns=always")
	host, reaper := nsJob(t, tg, tg.pid)
	host = dumpRestoreInPidns(t, tg, host, reaper)
	checkResult(t, tg, host)
}
