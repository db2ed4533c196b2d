//go:build linux

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/internal/testhook"
)

// BLCR's tools, run as BLCR's users run them: the gocr binary under the
// names cr_checkpoint, cr_restart and cr_run (docs/BLCR.md). This file:
// cr_checkpoint and its options; blcr_restart_test.go: cr_restart, its
// failure classes, and cr_run.

var (
	blcrOnce sync.Once
	blcrErr  error
)

// blcrTool returns the path of a symbolic link named name (cr_checkpoint,
// cr_restart, cr_run) to the gocr binary: gocr dispatches on that name.
func blcrTool(t *testing.T, name string) string {
	t.Helper()
	gocr := gocrBinary(t)
	blcrOnce.Do(func() {
		for _, n := range []string{"cr_checkpoint", "cr_restart", "cr_run"} {
			if err := os.Symlink(gocr, filepath.Join(binDir, n)); err != nil {
				blcrErr = err
			}
		}
	})
	if blcrErr != nil {
		t.Fatalf("link BLCR names to gocr: %v", blcrErr)
	}
	return filepath.Join(binDir, name)
}

// blcrCall is how to run one BLCR tool.
type blcrCall struct {
	dir   string   // working directory ("": the test's)
	env   []string // added to the environment
	stdin *os.File
	extra []*os.File // fds 3, 4, ...
}

// runBLCR runs the BLCR tool name with args to completion.
func runBLCR(t *testing.T, c blcrCall, name string, args ...string) gocrRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, outPath, errPath := gocrCmd(t, ctx, c.stdin, args...)
	cmd.Path = blcrTool(t, name)
	cmd.Args[0] = cmd.Path
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	cmd.ExtraFiles = c.extra
	err := cmd.Run()
	r := gocrRun{args: append([]string{name}, args...), code: cmd.ProcessState.ExitCode()}
	out, _ := os.ReadFile(outPath)
	errb, _ := os.ReadFile(errPath)
	r.stdout, r.stderr = string(out), string(errb)
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v\n%v", name, gocrTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", name, err)
	}
	return r
}

// mustBLCR is runBLCR that requires success.
func mustBLCR(t *testing.T, c blcrCall, name string, args ...string) gocrRun {
	t.Helper()
	r := runBLCR(t, c, name, args...)
	if r.code != 0 {
		t.Fatalf("%s failed: %v", name, r)
	}
	return r
}

// restartDetached runs cr_restart -d on ctx (and extra args) and returns
// the restored PID, tg's, registering its cleanup.
func restartDetached(t *testing.T, tg *target, c blcrCall, args ...string) int {
	t.Helper()
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	mustBLCR(t, c, "cr_restart", append([]string{"-d"}, args...)...)
	if gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("cr_restart -d exited 0 but pid %d is not target %s\n%s", tg.pid, tg.name, tg.diagnostics())
	}
	return tg.pid
}

// contextNames lists the entries of the context file path, which must be
// whole.
func contextNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open context: %v", err)
	}
	defer f.Close()
	entries, err := contextfile.Read(f, nil)
	if err != nil {
		t.Fatalf("context %s: %v", path, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return names
}

// TestBLCRCheckpointRunsOn: cr_checkpoint PID, with no option, writes
// context.PID (mode 0600) in its working directory and lets the job run
// on; the job, killed, comes back from it with cr_restart, and again from
// the same context, read through a descriptor (-F).
func TestBLCRCheckpointRunsOn(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	dir := t.TempDir()
	r := mustBLCR(t, blcrCall{dir: dir}, "cr_checkpoint", strconv.Itoa(tg.pid))
	if r.stderr != "" {
		t.Errorf("cr_checkpoint printed %q on success", r.stderr)
	}
	ctx := filepath.Join(dir, "context."+strconv.Itoa(tg.pid))
	st, err := os.Stat(ctx)
	if err != nil {
		t.Fatalf("no context file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("context file mode %v, want 0600", st.Mode().Perm())
	}
	// --run: the job goes on, untouched.
	assertUntouched(t, tg.pid)
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	// -F: the same context through a descriptor.
	byFd := filepath.Join(t.TempDir(), "by-fd")
	out, err := os.Create(byFd)
	if err != nil {
		t.Fatal(err)
	}
	mustBLCR(t, blcrCall{extra: []*os.File{out}}, "cr_checkpoint", "-F", "3", strconv.Itoa(tg.pid))
	out.Close()
	if a, b := contextNames(t, ctx), contextNames(t, byFd); !slices.Equal(a, b) {
		t.Errorf("-F wrote %v, -f %v", b, a)
	}
	tg.killOriginal(t)

	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r = mustBLCR(t, blcrCall{}, "cr_restart", "-d", "--verbose", ctx)
	if !strings.Contains(r.stderr, "1 processes restarted") {
		t.Errorf("cr_restart --verbose does not say what it restarted\n%v", r)
	}
	pid := tg.pid
	checkResult(t, tg, pid)
	os.Remove(tg.result)
	f, err := os.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pid = restartDetached(t, tg, blcrCall{extra: []*os.File{f}}, "-F", "3")
	checkResult(t, tg, pid)
}

// TestBLCRPipe: cr_checkpoint --kill -f - PID | cr_restart -f - moves a
// job through a pipe, with no file between: the job is killed before the
// context's end record goes down the pipe, so the restart finds its PID
// free; restored, the counter checks its own state.
func TestBLCRPipe(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	script := `"$1" --kill -f - "$3" | "$2" -d -f -`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", blcrTool(t, "cr_checkpoint"), blcrTool(t, "cr_restart"), strconv.Itoa(tg.pid))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	tg.waitDead(t, "cr_checkpoint --kill")
	if gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("pid %d does not run target %s after the pipe\n%s", tg.pid, tg.name, tg.diagnostics())
	}
	atDump := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, atDump+20)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}

// TestBLCRAfterCheckpoint: the signal options, each sent to the job once
// its context is complete.
func TestBLCRAfterCheckpoint(t *testing.T) {
	needsGocr(t)
	checkpoint := func(t *testing.T, tg *target, opt ...string) {
		t.Helper()
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", append(opt, "-f", ctx, strconv.Itoa(tg.pid))...)
		contextNames(t, ctx)
	}
	t.Run("stop", func(t *testing.T) {
		tg := startTarget(t, "counter")
		checkpoint(t, tg, "--stop")
		waitState(t, tg.pid, "T")
		syscall.Kill(tg.pid, syscall.SIGCONT)
		checkResult(t, tg, tg.pid)
	})
	t.Run("cont", func(t *testing.T) {
		tg := startTarget(t, "counter")
		syscall.Kill(tg.pid, syscall.SIGSTOP)
		waitState(t, tg.pid, "T")
		checkpoint(t, tg, "--cont")
		waitCounter(t, tg, counterLines(t, tg.logPath, false)+5)
		checkResult(t, tg, tg.pid)
	})
	// The counter answers SIGTERM with its own check: the signal came,
	// and the checkpoint left it whole.
	for _, opt := range [][]string{{"--term"}, {"--signal=TERM"}, {"-S", "15"}} {
		t.Run(strings.Join(opt, " "), func(t *testing.T) {
			tg := startTarget(t, "counter")
			checkpoint(t, tg, opt...)
			if v := waitResult(t, tg, tg.pid); v != "PASS" {
				t.Fatalf("after %s: %s", opt, v)
			}
		})
	}
	// --kill ends the job still frozen: its log ends exactly where its
	// stdout stood in the context, not one line further.
	t.Run("kill-exact", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 20)
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--kill", "-f", ctx, strconv.Itoa(tg.pid))
		tg.waitDead(t, "cr_checkpoint --kill")
		st, err := os.Stat(tg.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if pos := stdoutPos(t, ctx, tg.pid); st.Size() != pos {
			t.Fatalf("the job's log is %d bytes after --kill, its stdout was at %d in the context: it ran on after the checkpoint", st.Size(), pos)
		}
	})
	for opt, sig := range map[string]syscall.Signal{"--kill": syscall.SIGKILL, "--abort": syscall.SIGABRT} {
		t.Run(opt, func(t *testing.T) {
			tg := startTarget(t, "counter")
			checkpoint(t, tg, opt)
			tg.waitDead(t, "cr_checkpoint "+opt)
			ws := tg.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != sig {
				t.Fatalf("after %s the job ended with %v, want killed by %v", opt, tg.cmd.ProcessState, sig)
			}
		})
	}
}

// stdoutPos is the offset of pid's stdout in the context file ctx, as
// gocr show prints it.
func stdoutPos(t *testing.T, ctx string, pid int) int64 {
	t.Helper()
	r := runGocr(t, nil, "show", ctx)
	if r.code != 0 {
		t.Fatalf("show %s: %v", ctx, r)
	}
	var files struct {
		Fds []struct {
			Fd  int
			Pos string
		}
	}
	if err := json.Unmarshal([]byte(showBlocks(t, r.stdout)[fmt.Sprintf("files-%d.img", pid)]), &files); err != nil {
		t.Fatalf("files image of pid %d in %s: %v", pid, ctx, err)
	}
	for _, fd := range files.Fds {
		if fd.Fd == 1 {
			pos, err := strconv.ParseInt(fd.Pos, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return pos
		}
	}
	t.Fatalf("no fd 1 in the files image of pid %d", pid)
	return 0
}

func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for procState(pid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d in state %q, want %s", pid, procState(pid), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBLCRScope: --tree (the default) takes the children, --pid the
// process alone (refusing one that shares a table with a child it would
// leave out), --pgid and --sid a whole group or session.
func TestBLCRScope(t *testing.T) {
	needsGocr(t)
	t.Run("pid", func(t *testing.T) {
		// A counter with a child it never waits for.
		tg := startTargetOpts(t, "counter", startOpts{wrap: []string{"/bin/sh", "-c", `sleep 1000 & exec "$@"`, "sh"}})
		children := trackTree(t, tg.pid)
		if len(children) != 1 {
			t.Fatalf("target has children %v, want one", children)
		}
		dir := t.TempDir()
		tree, alone := filepath.Join(dir, "tree"), filepath.Join(dir, "alone")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--tree", "-f", tree, strconv.Itoa(tg.pid))
		child := fmt.Sprintf("task-%d.img", children[0])
		if names := contextNames(t, tree); !slices.Contains(names, child) {
			t.Fatalf("--tree context lacks the child: %v", names)
		}
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--pid", "--kill", "-f", alone, strconv.Itoa(tg.pid))
		if names := contextNames(t, alone); slices.Contains(names, child) {
			t.Fatalf("--pid context holds the child: %v", names)
		}
		tg.waitDead(t, "cr_checkpoint --kill")
		if gone(children[0]) {
			t.Fatalf("the child left out by --pid did not run on")
		}
		pid := restartDetached(t, tg, blcrCall{}, alone)
		checkResult(t, tg, pid)
	})
	t.Run("pid-shared", func(t *testing.T) {
		tg := startTarget(t, "sharedtables", "files")
		children := trackTree(t, tg.pid)
		r := runBLCR(t, blcrCall{dir: t.TempDir()}, "cr_checkpoint", "--pid", strconv.Itoa(tg.pid))
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "child " + strconv.Itoa(children[0]), "fd table"}, nil)
		assertUntouched(t, tg.pid)
		checkResult(t, tg, tg.pid)
	})
	t.Run("pgid", func(t *testing.T) {
		tg := startTargetOpts(t, "counter", startOpts{pgroup: true})
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--pgid", "--kill", "-f", ctx, strconv.Itoa(tg.pid))
		tg.waitDead(t, "cr_checkpoint --kill")
		pid := restartDetached(t, tg, blcrCall{}, ctx)
		checkResult(t, tg, pid)
	})
	t.Run("sid", func(t *testing.T) {
		tg := startTargetOpts(t, "tree", startOpts{settle: 200 * time.Millisecond})
		settledTree(t, tg.pid, 20)
		pids := trackTree(t, tg.pid)
		ctx := filepath.Join(t.TempDir(), "ctx")
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--sid", "--kill", "-f", ctx, strconv.Itoa(tg.pid))
		tg.waitDead(t, "cr_checkpoint --kill")
		waitAllGone(t, pids, "cr_checkpoint --kill")
		pid := restartDetached(t, tg, blcrCall{}, ctx)
		checkResult(t, tg, pid)
	})
}

// TestBLCRReplace: BLCR's policies for a context file already there:
// --atomic (the default) replaces it, --noclobber refuses, --backup keeps
// it as FILE.~N~ or NAME, --clobber writes in its place; a backup is a
// context to restart from.
func TestBLCRReplace(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx")
	pid := strconv.Itoa(tg.pid)
	checkpoint := func(opts ...string) {
		t.Helper()
		mustBLCR(t, blcrCall{}, "cr_checkpoint", append(append(opts, "-f", ctx), pid)...)
		waitCounter(t, tg, counterLines(t, tg.logPath, false)+3)
	}
	checkpoint()
	first := contextNames(t, ctx)
	before, _ := os.ReadFile(ctx)
	r := runBLCR(t, blcrCall{}, "cr_checkpoint", "--noclobber", "-f", ctx, pid)
	assertRefused(t, r, []string{ctx, "exists"}, nil)
	if after, _ := os.ReadFile(ctx); string(after) != string(before) {
		t.Fatalf("--noclobber changed the context file")
	}
	checkpoint("--atomic")
	checkpoint("--backup")
	checkpoint("--backup")
	checkpoint("--backup=" + filepath.Join(dir, "named"))
	checkpoint("--clobber")
	for _, name := range []string{"ctx", "ctx.~1~", "ctx.~2~", "named"} {
		if names := contextNames(t, filepath.Join(dir, name)); !slices.Equal(names, first) {
			t.Errorf("%s holds %v, want %v", name, names, first)
		}
	}
	if left := listDir(t, dir); len(left) != 4 {
		t.Errorf("directory holds %v, want ctx, ctx.~1~, ctx.~2~, named", left)
	}
	checkIntactCounter(t, tg)
	os.Remove(tg.result)
	restored := restartDetached(t, tg, blcrCall{}, filepath.Join(dir, "ctx.~1~"))
	checkResult(t, tg, restored)
}

// TestBLCRTime: a checkpoint still running after --time gives up, the job
// running on as it was and no context written.
func TestBLCRTime(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	dir := t.TempDir()
	r := runBLCR(t, blcrCall{dir: dir, env: []string{testhook.Setting(testhook.PauseAfterInfect, "60s")}},
		"cr_checkpoint", "--time=1", "--kill", strconv.Itoa(tg.pid))
	// The hook's announcement is a line of its own.
	r.stderr = strings.ReplaceAll(r.stderr, testhook.Announcement(testhook.PauseAfterInfect)+"\n", "")
	assertRefused(t, r, []string{"--time"}, nil)
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("a checkpoint that gave up left %v", left)
	}
	checkIntactCounter(t, tg)
}

// TestBLCRQuietVerbose: --quiet prints nothing on failure (the exit code
// tells), --verbose says what was done.
func TestBLCRQuietVerbose(t *testing.T) {
	needsGocr(t)
	missing := strconv.Itoa(freePID(t))
	r := runBLCR(t, blcrCall{dir: t.TempDir()}, "cr_checkpoint", missing)
	assertRefused(t, r, []string{"cr_checkpoint", missing}, nil)
	r = runBLCR(t, blcrCall{dir: t.TempDir()}, "cr_checkpoint", "--quiet", missing)
	if r.code != 1 || r.stderr != "" {
		t.Errorf("--quiet: want exit 1 and nothing on stderr\n%v", r)
	}
	tg := startTarget(t, "counter")
	r = mustBLCR(t, blcrCall{dir: t.TempDir()}, "cr_checkpoint", "--verbose", strconv.Itoa(tg.pid))
	for _, s := range []string{"dumped", "context written"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("--verbose does not say %q\n%v", s, r)
		}
	}
	r = runBLCR(t, blcrCall{}, "cr_checkpoint", "--stop", "--kill", strconv.Itoa(tg.pid))
	if r.code != 64 {
		t.Errorf("two signal options: want exit 64\n%v", r)
	}
	checkIntactCounter(t, tg)
}
