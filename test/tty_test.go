//go:build linux

package test

import (
	"strconv"
	"testing"
)

func init() {
	cTargets["pty"] = struct {
		src   string
		flags []string
	}{"pty.c", nil}
}

// TestPty: a pseudo-terminal pair the job opened (master in the root, the
// slave the controlling terminal of a child's session, a grandchild's
// group in the foreground, data queued both ways) comes back with its
// index, termios, window size, packet mode, lock, exclusive mode, the
// slave's owner and mode, the data, the session's controlling terminal
// and its foreground group; each process checks its own.
func TestPty(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "pty")
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
