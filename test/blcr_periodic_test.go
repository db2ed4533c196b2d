//go:build linux

package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/proc"
)

// Periodic checkpoints through the BLCR names (docs/BLCR.md, "Periodic
// checkpoints"): cr_run -D DIR supervising the counter, its generations,
// SIGUSR1 and SIGTERM, cr_restart DIR, a later cr_run restarting the job
// from DIR; and the options the BLCR names share with gocr dump and
// restore (--save-*, --relocate, --pidns, --callback-timeout), the
// progress line on a terminal and --stats.

// periodicTimeout bounds every wait for a state of a supervised job.
const periodicTimeout = 30 * time.Second

// waitUntil polls cond until it holds, failing after periodicTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(periodicTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, periodicTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobOf waits for cr_run (pid) to have its one child, the job of tg, and
// returns it. A cr_run that restarts the job has another child for a
// moment first, the restorer (restorer/launch.go), which is not tg's.
func jobOf(t *testing.T, tg *target, pid int) int {
	t.Helper()
	var kids []int
	waitUntil(t, fmt.Sprintf("cr_run %d has one child, its job", pid), func() bool {
		kids, _ = proc.Children(pid)
		return len(kids) == 1 && tg.belongsTo(kids[0])
	})
	return kids[0]
}

// startCrRun starts the counter under cr_run with opts and -D dir, and
// returns the target (tg.pid is cr_run) and the job's PID.
func startCrRun(t *testing.T, dir string, opts ...string) (*target, int) {
	t.Helper()
	wrap := append(append([]string{blcrTool(t, "cr_run")}, opts...), "-D", dir, "--")
	tg := startTargetOpts(t, "counter", startOpts{wrap: wrap})
	job := jobOf(t, tg, tg.pid)
	t.Cleanup(func() { tg.killRestored(t, job) })
	return tg, job
}

// generationNumbers lists the generations in dir.
func generationNumbers(t *testing.T, dir string) []int {
	t.Helper()
	gens, err := contextfile.Generations(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ns []int
	for _, g := range gens {
		ns = append(ns, g.N)
	}
	return ns
}

// waitGeneration waits for generation n (or a later one) in dir and
// returns the generations then.
func waitGeneration(t *testing.T, dir string, n int) []int {
	t.Helper()
	var ns []int
	waitUntil(t, fmt.Sprintf("generation %d in %s", n, dir), func() bool {
		ns = generationNumbers(t, dir)
		return len(ns) > 0 && ns[len(ns)-1] >= n
	})
	return ns
}

// checkGeneration requires generation n of dir to read whole, with the
// dump's figures in it, the time the job was frozen among them. One
// removed meanwhile, as the oldest beyond --keep, is not checked.
func checkGeneration(t *testing.T, dir string, n int) {
	t.Helper()
	f, err := os.Open(contextfile.GenerationPath(dir, n))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stats []byte
	_, err = contextfile.Read(f, func(e contextfile.Entry, data io.Reader) error {
		if e.Name == "stats-dump.json" {
			stats, err = io.ReadAll(data)
		}
		return err
	})
	if err != nil {
		t.Fatalf("generation %d: %v", n, err)
	}
	var st struct {
		FrozenNs int64 `json:"frozen_ns"`
	}
	if err := json.Unmarshal(stats, &st); err != nil || st.FrozenNs <= 0 {
		t.Fatalf("generation %d: stats-dump.json %q (%v): want frozen_ns above 0", n, stats, err)
	}
}

// readJSON reads the JSON file path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

// TestCrRunPeriodic: cr_run --checkpoint-every=1s --keep=2 supervises the
// counter as its child, in a session of its own, and writes generations
// one after another, each whole with the time the job was frozen in its
// figures, never more than two once the newest is complete; --stats
// holds the latest one's figures.
func TestCrRunPeriodic(t *testing.T) {
	needsGocr(t)
	dir := filepath.Join(t.TempDir(), "gens")
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	tg, job := startCrRun(t, dir, "--checkpoint-every=1s", "--keep=2", "--stats", statsPath)
	if st, err := proc.ReadStat(job); err != nil || st.Session != job || st.Pgrp != job {
		t.Fatalf("job %d: stat %+v (%v): want it in a session and group of its own", job, st, err)
	}
	for n := 1; n <= 4; n++ {
		ns := waitGeneration(t, dir, n)
		// The newest is renamed into place before the oldest goes.
		if len(ns) > 3 {
			t.Fatalf("generations %v with --keep=2", ns)
		}
		for _, g := range ns {
			checkGeneration(t, dir, g)
		}
	}
	waitUntil(t, "two generations kept, the newest", func() bool {
		ns := generationNumbers(t, dir)
		return len(ns) == 2 && ns[0] == ns[1]-1
	})
	var st struct {
		Generation int    `json:"generation"`
		Context    string `json:"context"`
		Dump       struct {
			FrozenNs int64 `json:"frozen_ns"`
		} `json:"dump"`
		ContextBytes int64 `json:"context_bytes"`
	}
	readJSON(t, statsPath, &st)
	if st.Generation < 1 || st.Context != contextfile.GenerationPath(dir, st.Generation) || st.Dump.FrozenNs <= 0 || st.ContextBytes <= 0 {
		t.Fatalf("--stats: %+v", st)
	}
	checkResult(t, tg, job)
}

// TestCrRunSignals: SIGUSR1 to cr_run takes a generation at once (the
// interval is an hour); SIGTERM stops the checkpoints and goes on to the
// job, whose end is cr_run's: the counter checks itself and exits 0.
func TestCrRunSignals(t *testing.T) {
	needsGocr(t)
	dir := filepath.Join(t.TempDir(), "gens")
	tg, job := startCrRun(t, dir, "--checkpoint-every=1h")
	for n := 1; n <= 2; n++ {
		if err := syscall.Kill(tg.pid, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		waitGeneration(t, dir, n)
		checkGeneration(t, dir, n)
	}
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitResult(t, tg, job); v != "PASS" {
		t.Fatalf("counter after SIGTERM to cr_run: %s", v)
	}
	tg.waitDead(t, "the job's end")
	if code := tg.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("cr_run exited with %v after the job passed, want 0", tg.cmd.ProcessState)
	}
	counterLines(t, tg.logPath, true)
}

// TestCrRunRestart: a supervised job killed with its cr_run comes back
// with cr_restart DIR from the newest generation, or, the newest damaged,
// from the one before with a note; cr_run with the same command line
// then restarts it as its own child and goes on checkpointing it, and the
// counter's log and its own check prove it went on exactly.
func TestCrRunRestart(t *testing.T) {
	needsGocr(t)
	dir := filepath.Join(t.TempDir(), "gens")
	opts := []string{"--checkpoint-every=1s", "--keep=3"}
	tg, job := startCrRun(t, dir, opts...)
	waitGeneration(t, dir, 2)
	view, err := readTreeView(t, job)
	if err != nil {
		t.Fatalf("read what the kernel shows of the job, pid %d: %v", job, err)
	}
	if err := syscall.Kill(job, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tg.waitDead(t, "SIGKILL to the job")
	if ws := tg.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("cr_run ended with %v, want killed by SIGKILL as its job was", tg.cmd.ProcessState)
	}
	waitGone(job, pidGoneTimeout)
	ns := generationNumbers(t, dir)
	newest := contextfile.GenerationPath(dir, ns[len(ns)-1])
	before := contextfile.GenerationPath(dir, ns[len(ns)-2])

	statsPath := filepath.Join(t.TempDir(), "restart.json")
	var st struct {
		Context string   `json:"context"`
		Skipped []string `json:"skipped"`
		ReadNs  int64    `json:"read_ns"`
		TotalNs int64    `json:"total_ns"`
	}
	mustBLCR(t, blcrCall{}, "cr_restart", "-d", "--stats", statsPath, dir)
	readJSON(t, statsPath, &st)
	if st.Context != newest || len(st.Skipped) != 0 || st.ReadNs <= 0 || st.TotalNs < st.ReadNs {
		t.Fatalf("cr_restart DIR: --stats %+v, want the newest generation %s", st, newest)
	}
	if gone(job) || !tg.belongsTo(job) {
		t.Fatalf("pid %d is not the restarted counter", job)
	}
	// The counter's log offsets move on between the view and the
	// newest generation.
	checkTreeView(t, job, view, counterVolatile)
	tg.killRestored(t, job)

	damageEntry(t, newest, fmt.Sprintf("task-%d.img", job))
	r := mustBLCR(t, blcrCall{}, "cr_restart", "-d", "--stats", statsPath, dir)
	if lines := stderrLines(r); len(lines) != 1 || !strings.Contains(lines[0], newest) || !strings.Contains(lines[0], "damaged") || !strings.Contains(lines[0], filepath.Base(before)) {
		t.Fatalf("cr_restart past a damaged generation: want one line naming %s as damaged and %s\n%v", newest, filepath.Base(before), r)
	}
	readJSON(t, statsPath, &st)
	if st.Context != before || !slices.Equal(st.Skipped, []string{newest}) {
		t.Fatalf("cr_restart past a damaged generation: --stats %+v, want %s, %s skipped", st, before, newest)
	}
	if gone(job) || !tg.belongsTo(job) {
		t.Fatalf("pid %d is not the restarted counter", job)
	}
	tg.killRestored(t, job)

	// The same command line as the first: a restart now.
	cmd := exec.Command(blcrTool(t, "cr_run"), append(opts, "-D", dir, "--", targets["counter"][0], tg.result)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	// The restorer is cr_run's child for a moment first.
	waitUntil(t, fmt.Sprintf("cr_run %d has one child, the restarted job %d", cmd.Process.Pid, job), func() bool {
		kids, _ := proc.Children(cmd.Process.Pid)
		return len(kids) == 1 && kids[0] == job && tg.belongsTo(job)
	})
	highest := ns[len(ns)-1]
	waitGeneration(t, dir, highest+1)
	checkGeneration(t, dir, highest+1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitResult(t, tg, job); v != "PASS" {
		t.Fatalf("restarted counter: %s", v)
	}
	select {
	case <-exited:
	case <-time.After(periodicTimeout):
		t.Fatalf("cr_run still runs %v after its job passed", periodicTimeout)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("cr_run exited with %v after the job passed, want 0", cmd.ProcessState)
	}
	counterLines(t, tg.logPath, true)
}

// TestCrRestartPidns: cr_restart restores in a new PID namespace, with a
// note, when another program holds a PID (its --pidns=auto); with
// --pidns=never it fails, naming the option to pass; a PID held by the
// checkpointed job itself, still running after a checkpoint that let it
// go on, is refused rather than starting a second copy.
func TestCrRestartPidns(t *testing.T) {
	needsGocr(t)
	t.Run("TakenByAnother", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := checkpointed(t, tg)
		takePid(t, tg.pid)
		r := runBLCR(t, blcrCall{}, "cr_restart", "-d", "--pidns=never", ctx)
		blcrFailure(t, r, 75, fmt.Sprintf("pid %d is in use", tg.pid), "--pidns=auto")
		r = mustBLCR(t, blcrCall{}, "cr_restart", "-d", ctx)
		// Found first, so that its cleanup ends the job whatever fails.
		host, _ := nsJob(t, tg, tg.pid)
		if lines := stderrLines(r); len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("pid %d is in use", tg.pid)) || !strings.Contains(lines[0], "new PID namespace") {
			t.Fatalf("want one line saying pid %d is in use and a new PID namespace\n%v", tg.pid, r)
		}
		checkResult(t, tg, host)
	})
	t.Run("TakenByTheJob", func(t *testing.T) {
		tg := startTarget(t, "counter")
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "-f", ctx, strconv.Itoa(tg.pid))
		r := runBLCR(t, blcrCall{}, "cr_restart", "-d", ctx)
		blcrFailure(t, r, 75, fmt.Sprintf("pid %d is in use", tg.pid), "checkpointed job itself", "--pidns=always")
		checkIntactCounter(t, tg)
	})
}

// TestCrSaveRelocate: cr_checkpoint's --save-* count in their order
// (--save-none drops those before it) and a job whose executable was
// saved restarts without it; cr_restart --relocate finds a job's files
// moved.
func TestCrSaveRelocate(t *testing.T) {
	needsGocr(t)
	fileEntries := func(ctx string) int {
		n := 0
		for _, name := range contextNames(t, ctx) {
			if strings.HasPrefix(name, "file-") {
				n++
			}
		}
		return n
	}
	t.Run("Save", func(t *testing.T) {
		j := newSavedJob(t, filepath.Join(t.TempDir(), "A"))
		tg := j.start(t)
		none := filepath.Join(t.TempDir(), "none")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--save-exe", "--save-none", "-f", none, strconv.Itoa(tg.pid))
		if n := fileEntries(none); n != 0 {
			t.Fatalf("--save-exe --save-none saved %d files, want none", n)
		}
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--kill", "--save-all", "--save-none", "--save-exe", "-f", ctx, strconv.Itoa(tg.pid))
		tg.waitDead(t, "cr_checkpoint --kill")
		if n := fileEntries(ctx); n != 1 {
			t.Fatalf("--save-all --save-none --save-exe saved %d files, want the executable alone", n)
		}
		remove(t, j.exe)
		pid := restartDetached(t, tg, blcrCall{}, ctx)
		checkResult(t, tg, pid)
	})
	t.Run("Relocate", func(t *testing.T) {
		j := newSavedJob(t, filepath.Join(t.TempDir(), "A"))
		tg := j.start(t)
		ctx := checkpointed(t, tg)
		moved := filepath.Join(filepath.Dir(j.dir), "B")
		if err := os.Rename(j.dir, moved); err != nil {
			t.Fatal(err)
		}
		blcrFailure(t, runBLCR(t, blcrCall{}, "cr_restart", "-d", "--relocate", "relative=/b", ctx), 64, "--relocate", "relative=/b")
		pid := restartDetached(t, tg, blcrCall{}, "--relocate", j.dir+"="+moved, ctx)
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != filepath.Join(moved, "work") {
			t.Errorf("restarted cwd is %q (%v), want %s", cwd, err, filepath.Join(moved, "work"))
		}
		checkResult(t, tg, pid)
	})
}

// TestCrCheckpointCallbackTimeout: cr_checkpoint --callback-timeout bounds
// the wait for a libgocr callback that never gets ready: the checkpoint
// fails in one line, writes no context, and the job runs on untouched.
func TestCrCheckpointCallbackTimeout(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "callbacks", "hang")
	ctx := filepath.Join(t.TempDir(), "ctx")
	r := runBLCR(t, blcrCall{}, "cr_checkpoint", "--callback-timeout=1s", "-f", ctx, strconv.Itoa(tg.pid))
	blcrFailure(t, r, 1, strconv.Itoa(tg.pid), "--callback-timeout", "not ready")
	if _, err := os.Stat(ctx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed checkpoint left %s (%v)", ctx, err)
	}
	checkIntact(t, tg)
}

// onTerminal runs the BLCR tool name with args and its stderr on a new
// pseudo-terminal (pty(7): /dev/ptmx, unlocked with TIOCSPTLCK, its
// number from TIOCGPTN), hook in its environment, and returns what it
// wrote there.
func onTerminal(t *testing.T, hook, name string, args ...string) string {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&out, master) // until EIO: every slave end closed
	}()
	cmd := exec.Command(blcrTool(t, name), args...)
	cmd.Env = append(os.Environ(), hook)
	cmd.Stdout, cmd.Stderr = os.Stderr, slave
	err = cmd.Run()
	slave.Close()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal of %s stays open after it ended", name)
	}
	if err != nil {
		t.Fatalf("%s %q on a terminal: %v\n%s", name, args, err, out.String())
	}
	return out.String()
}

// TestCrProgress: a checkpoint and a restart that take over a second (a
// test hook holds each for two) keep a progress line on a terminal; with
// stderr a file there is none. cr_checkpoint --stats says where the time
// went.
func TestCrProgress(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	pid := strconv.Itoa(tg.pid)
	hold := testhook.Setting(testhook.PauseAfterInfect, "2s")
	onTty := onTerminal(t, hold, "cr_checkpoint", "-f", filepath.Join(t.TempDir(), "ctx"), pid)
	if want := "\rcr_checkpoint: checkpoint of pid " + pid; !strings.Contains(onTty, want) {
		t.Fatalf("no progress line %q on the terminal:\n%q", want, onTty)
	}

	ctx := filepath.Join(t.TempDir(), "ctx")
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	r := mustBLCR(t, blcrCall{env: []string{hold}}, "cr_checkpoint", "--kill", "--stats", statsPath, "-f", ctx, pid)
	if strings.Contains(r.stderr, "\r") || strings.Contains(r.stderr, "checkpoint of pid") {
		t.Fatalf("a progress line with stderr a file:\n%q", r.stderr)
	}
	tg.waitDead(t, "cr_checkpoint --kill")
	var st struct {
		Dump struct {
			FrozenNs   int64 `json:"frozen_ns"`
			PagesBytes int64 `json:"pages_bytes"`
		} `json:"dump"`
		ContextBytes   int64 `json:"context_bytes"`
		ContextWriteNs int64 `json:"context_write_ns"`
		TotalNs        int64 `json:"total_ns"`
	}
	readJSON(t, statsPath, &st)
	fi, err := os.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Held two seconds while frozen (the test hook).
	if st.Dump.FrozenNs < int64(2*time.Second) || st.Dump.PagesBytes <= 0 || st.ContextBytes != fi.Size() || st.ContextWriteNs <= 0 || st.TotalNs < st.Dump.FrozenNs {
		t.Fatalf("--stats %+v for a context of %d bytes", st, fi.Size())
	}

	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	onTty = onTerminal(t, testhook.Setting(testhook.PauseBeforeLaunch, "2s"), "cr_restart", "-d", ctx)
	if want := "\rcr_restart: restoring 1 process"; !strings.Contains(onTty, want) {
		t.Fatalf("no progress line %q on the terminal:\n%q", want, onTty)
	}
	checkResult(t, tg, tg.pid)
}

// TestCrCheckpointEvery: cr_checkpoint --every checkpoints a running PID
// into generations: on SIGUSR1 at once; a second one on the same DIR is
// refused while the first runs; SIGTERM ends it by the signal, the job
// running on untouched; another goes on numbering from there, keeps
// --keep, and ends when the job does.
func TestCrCheckpointEvery(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	pid := strconv.Itoa(tg.pid)
	dir := filepath.Join(t.TempDir(), "gens")
	start := func(args ...string) (*exec.Cmd, chan struct{}) {
		cmd := exec.Command(blcrTool(t, "cr_checkpoint"), args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		})
		return cmd, exited
	}
	wait := func(exited chan struct{}, what string) {
		t.Helper()
		select {
		case <-exited:
		case <-time.After(periodicTimeout):
			t.Fatalf("cr_checkpoint --every still runs %v after %s", periodicTimeout, what)
		}
	}
	first, exited := start("--every=1h", "-D", dir, pid)
	// SIGUSR1 is caught once the directory exists.
	waitUntil(t, dir+" made", func() bool { _, err := os.Stat(dir); return err == nil })
	first.Process.Signal(syscall.SIGUSR1)
	waitGeneration(t, dir, 1)
	checkGeneration(t, dir, 1)
	r := runBLCR(t, blcrCall{}, "cr_checkpoint", "--every=1h", "-D", dir, pid)
	blcrFailure(t, r, 1, dir, "in use")
	first.Process.Signal(syscall.SIGTERM)
	wait(exited, "SIGTERM")
	if ws := first.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("cr_checkpoint --every ended with %v after SIGTERM, want killed by it", first.ProcessState)
	}
	if tg.exited() {
		t.Fatalf("the job ended with cr_checkpoint --every: %v", tg.cmd.ProcessState)
	}
	assertUntouched(t, tg.pid)
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)

	_, exited = start("--every=1s", "--keep=1", "-D", dir, pid)
	waitGeneration(t, dir, 3)
	waitUntil(t, "one generation kept", func() bool { return len(generationNumbers(t, dir)) == 1 })
	checkResult(t, tg, tg.pid)
	wait(exited, "the job ended")
}
