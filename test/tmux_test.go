//go:build linux

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTmuxRestored: a tmux server (Debian's tmux, in the foreground: -D)
// with a window whose pane runs cat, which writes what it reads to a
// file, and a client attached on a terminal the test owns. With the
// client attached the server holds the client's terminal (the client
// passes it over its unix socket), a pty whose master, the test's, is
// outside the dump: the dump refuses it in one line naming the fd, and
// tmux runs on. Detached, the server and its
// pane are dumped and restored; a client attached again on another
// terminal shows the pane, and keys typed there reach cat.
func TestTmuxRestored(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tmux := needsProgram(t, "tmux", "tmux")
	dir := t.TempDir()
	sock, out, conf := filepath.Join(dir, "sock"), filepath.Join(dir, "typed"), filepath.Join(dir, "tmux.conf")
	// The temporary path has no quote in it.
	if err := os.WriteFile(conf, []byte(`new-session -d -s t -x 80 -y 24 "exec cat > '`+out+`'"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	term1 := openTestTerminal(t)
	// Opened before tmux opens its pane's pty: the restore needs that
	// index free again, and a terminal opened later would take it.
	term2 := openTestTerminal(t)
	hole := ptyHole(t)
	// A client needs to know its terminal; none may think it runs in
	// tmux already.
	client := []string{"env", "-u", "TMUX", "TERM=xterm", tmux, "-S", sock, "attach", "-t", "t"}

	server := exec.Command(tmux, "-D", "-S", sock, "-f", conf)
	// In a session of its own, as the daemon it is without -D.
	server.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := server.Start(); err != nil {
		t.Fatalf("start the tmux server: %v", err)
	}
	root := server.Process.Pid
	exited := make(chan struct{})
	go func() { server.Wait(); close(exited) }()
	t.Cleanup(func() {
		server.Process.Kill()
		<-exited
	})
	attached := func(tt *testTerminal) func() bool {
		// The status line names the session.
		return func() bool { return strings.Contains(tt.output(), "[t]") }
	}
	// The server reads its configuration, which makes the session, once
	// the first client comes; a client that comes before it listens
	// finds no server.
	tmuxCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command(tmux, append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm")
		return cmd
	}
	waitFor(t, "the tmux server has the session", func() bool { return tmuxCmd("has-session", "-t", "t").Run() == nil }, func() string { return "" })
	c1 := term1.start(t, client...)
	waitFor(t, "the client draws the session", attached(term1), term1.output)
	var cat int
	waitFor(t, "the pane runs cat", func() bool {
		for _, pid := range childrenOf(root) {
			if commOf(pid) == "cat" {
				cat = pid
			}
		}
		return cat != 0
	}, term1.output)
	term1.typeKeys(t, "before\r")
	waitFor(t, "cat gets what is typed before the dump", fileHas(out, "before\n"), term1.output)

	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(root), "-D", t.TempDir())
	assertRefused(t, r, []string{"fd", "/dev/pts/", "master of this pty is outside"}, nil)
	term1.typeKeys(t, "refused\r")
	waitFor(t, "cat gets what is typed after the refusal", fileHas(out, "before\nrefused\n"), term1.output)

	// Detached by a command: C-b d typed on the test's terminal was at
	// times passed to the pane instead (it echoed ^Bd), before any dump.
	detach := func() {
		t.Helper()
		if b, err := tmuxCmd("detach-client", "-s", "t").CombinedOutput(); err != nil {
			t.Fatalf("tmux detach-client: %v: %s", err, b)
		}
	}
	detach()
	if code := c1.waitExit(t, term1.output); code != 0 {
		t.Fatalf("the tmux client exited %d on detach\n%s", code, term1.output())
	}
	// The client's end reaches the server a moment after the client.
	waitFor(t, "the server lets go of the detached client's terminal", func() bool { return !holdsPath(root, term1.slave.Name()) }, term1.output)
	hole() // the pane's pty is open
	pids := trackTree(t, root)
	serverCmdline := cmdlineOf(root)
	// The server goes on with the detach once it has let go of the
	// terminal: it frees the client, and glibc's free may give the top
	// of its heap back to the kernel (seen: [heap] 72 KiB shorter after
	// the restore than in a view read a moment before the dump).
	before, err := readSettledTreeView(t, root)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tmux server's tree, pid %d: %v", root, err)
	}

	images := t.TempDir()
	dump(t, root, images)
	select {
	case <-exited:
	case <-time.After(pidGoneTimeout):
		t.Fatalf("the tmux server pid %d still runs %v after the dump", root, pidGoneTimeout)
	}
	waitAllGone(t, pids, "the dump")
	restore(t, nil, images, "-d")
	t.Cleanup(func() {
		if cmdlineOf(root) == serverCmdline {
			syscall.Kill(root, syscall.SIGKILL)
		}
	})
	if commOf(root) != "tmux: server" || commOf(cat) != "cat" {
		t.Fatalf("after the restore pid %d is %q and pid %d %q, want the tmux server and cat", root, commOf(root), cat, commOf(cat))
	}
	checkTreeView(t, root, before, nil)

	c2 := term2.start(t, client...)
	waitFor(t, "a client attached after the restore draws the session", attached(term2), term2.output)
	term2.typeKeys(t, "after restore\r")
	waitFor(t, "cat gets what is typed on the client attached after the restore", fileHas(out, "before\nrefused\nafter restore\n"), term2.output)
	// The pane's terminal echoes it, and tmux draws that on the client's.
	waitFor(t, "the client shows the pane's echo", func() bool { return strings.Contains(term2.output(), "after restore") }, term2.output)
	detach()
	if code := c2.waitExit(t, term2.output); code != 0 {
		t.Fatalf("the tmux client exited %d on detach after the restore\n%s", code, term2.output())
	}
}

// holdsPath tells whether an fd of pid links to path.
func holdsPath(pid int, path string) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		if l, _ := os.Readlink(filepath.Join(dir, fd.Name())); l == path {
			return true
		}
	}
	return false
}
