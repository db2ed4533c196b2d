//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCrMoveBetweenNodes: BLCR's migration, a job moved to another node
// through a pipe with no shared file system for its program:
//
//	cr_checkpoint --kill --save-all -f - PID | ssh nodeB cr_restart -f -
//
// Two directories stand in for the nodes' file systems. The job's
// executable, library, mapped data and working files are in nodeA; nodeB
// has a copy of its working files and data (what a site stages), not the
// program. The restart side runs in a mount namespace of its own where
// nodeA is hidden under an empty tmpfs, as another machine would not
// have it: the program comes from the context (--save-all), the files
// from nodeB (--relocate), and the job checks its own state.
func TestCrMoveBetweenNodes(t *testing.T) {
	needsGocr(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("needs unshare(1) (util-linux) for the second node's mount namespace: %v", err)
	}
	root := t.TempDir()
	nodeA, nodeB := filepath.Join(root, "nodeA"), filepath.Join(root, "nodeB")
	j := newSavedJob(t, filepath.Join(nodeA, "job"))
	tg := j.start(t)
	moved := filepath.Join(nodeB, "job")
	if err := os.MkdirAll(filepath.Join(moved, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Staged as rsync -a would: a restart checks that a file reopened by
	// its path still has the dumped size and modification time.
	for _, f := range [][2]string{{j.data, filepath.Join(moved, "data")}, {filepath.Join(j.work, "file"), filepath.Join(moved, "work", "file")}} {
		copyFile(t, f[0], f[1], 0o644)
		st, err := os.Stat(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f[1], st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
	}

	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	// The second node: nodeA hidden (unshare makes its mounts private,
	// so the tmpfs is seen there alone), the restart reading the pipe.
	script := `"$1" --kill --save-all -f - "$3" |
unshare --mount sh -c 'mount -t tmpfs none "$1" && exec "$2" -d --relocate "$3" -f -' node2 "$4" "$2" "$5"`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", blcrTool(t, "cr_checkpoint"), blcrTool(t, "cr_restart"),
		strconv.Itoa(tg.pid), nodeA, nodeA+"="+nodeB)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	tg.waitDead(t, "cr_checkpoint --kill")
	if gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("pid %d does not run target %s after the move\n%s\n%s", tg.pid, tg.name, out, tg.diagnostics())
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", tg.pid)); err != nil || cwd != filepath.Join(moved, "work") {
		t.Errorf("moved job's cwd is %q (%v), want %s", cwd, err, filepath.Join(moved, "work"))
	}
	// The program is gone from the first node too.
	remove(t, j.exe, j.lib)
	checkResult(t, tg, tg.pid)
}
