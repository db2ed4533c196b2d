//go:build linux

package test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/files"
)

// gocr's commands as a user sees them: usage errors and --help, check,
// show, dump --leave-running, and restore without -d waiting for the
// restored process.

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
	// Every fd shows its kind by name, as one key of its own message.
	var table struct {
		Fds []map[string]any `json:"fds"`
	}
	if err := json.Unmarshal([]byte(blocks["files-"+pid+".img"]), &table); err != nil || len(table.Fds) == 0 {
		t.Errorf("gocr show's files image has no fds (%v):\n%s", err, blocks["files-"+pid+".img"])
	}
	for _, fd := range table.Fds {
		var kinds []string
		for _, k := range files.Names() {
			if _, ok := fd[k]; ok {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) != 1 {
			t.Errorf("gocr show's fd %v names kinds %q, want exactly one", fd["fd"], kinds)
		}
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

// TestLeaveRunning: --leave-running leaves the original running untouched,
// and one image restores as many times as wanted.
func TestLeaveRunning(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--leave-running")
	if tg.exited() {
		t.Fatalf("original exited after dump --leave-running: %v\n%s", tg.cmd.ProcessState, tg.diagnostics())
	}
	assertUntouched(t, tg.pid)
	n := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, n+20)
	tg.killOriginal(t)

	for i := 1; i <= 2; i++ {
		// The first restore's verdict must not count for the second.
		if err := os.Remove(tg.result); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("remove previous result: %v", err)
		}
		pid := restoreDetached(t, tg, dir, nil)
		checkTreeView(t, pid, view, counterVolatile)
		checkResult(t, tg, pid)
		counterLines(t, tg.logPath, true)
		tg.killRestored(t, pid)
		if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("restore %d: pid %d still present", i, pid)
		}
	}
}

// TestRestoreWaits: without -d gocr restore waits for the restored process
// and exits with its status.
func TestRestoreWaits(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")

	fr := startForegroundRestore(t, tg, dir)
	checkTreeView(t, tg.pid, view, counterVolatile)
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(tg.pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM restored pid %d: %v", tg.pid, err)
	}
	fr.waitExit(t)
	if v := waitResult(t, tg, tg.pid); v != "PASS" {
		t.Fatalf("target %s: %s\nlast 20 lines of its log:\n%s", tg.name, v, logTail(tg.logPath, 20))
	}
	if code := fr.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("gocr restore exited with %v, want 0 (the target's status)\n%s", fr.cmd.ProcessState, fr.output())
	}
	counterLines(t, tg.logPath, true)
}
