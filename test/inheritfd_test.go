//go:build linux

package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Fds joined to something outside the dump (a pipe from a producer the
// dump does not take, a logger's socket) are recorded by a key, as
// /proc/PID/fd names the file ("pipe:[INODE]"), and `gocr restore
// --inherit-fd fd[N]:KEY` gives gocr's own fd N in their place. Without
// it, stdio on a pipe gets gocr restore's own stdio, another fd on a pipe
// a new pipe whose other end is closed, each said in one line; anything
// else is refused.

// pipeEnds makes a pipe, closed when the test ends.
func pipeEnds(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// fileKey is the key gocr gives an fd on f: its /proc link, kind:[INODE].
func fileKey(t *testing.T, kind string, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino)
}

// runGocrFiles is runGocr with extra files, gocr's fds 3, 4, ...
func runGocrFiles(t *testing.T, stdin *os.File, extra []*os.File, args ...string) gocrRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, outPath, errPath := gocrCmd(t, ctx, stdin, args...)
	cmd.ExtraFiles = extra
	err := cmd.Run()
	r := gocrRun{args: args, code: cmd.ProcessState.ExitCode()}
	out, _ := os.ReadFile(outPath)
	errb, _ := os.ReadFile(errPath)
	r.stdout, r.stderr = string(out), string(errb)
	if ctx.Err() != nil {
		t.Fatalf("gocr %s did not finish within %v\n%v", strings.Join(args, " "), gocrTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run gocr %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// restoreGiven restores tg from dir with -d, extra as gocr's fds 3, 4,
// ..., and args; it requires success and returns the run.
func restoreGiven(t *testing.T, tg *target, dir string, stdin *os.File, extra []*os.File, args ...string) gocrRun {
	t.Helper()
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	r := runGocrFiles(t, stdin, extra, append([]string{"restore", "-D", dir, "-d"}, args...)...)
	if r.code != 0 || gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("restore failed, or pid %d is not target %s after it\n%v\n%s", tg.pid, tg.name, r, tg.diagnostics())
	}
	return r
}

// refusedRestore requires a restore of dir to fail in one line naming
// each of names, with no process of tg's left.
func refusedRestore(t *testing.T, tg *target, dir string, extra []*os.File, names []string, args ...string) {
	t.Helper()
	r := runGocrFiles(t, nil, extra, append([]string{"restore", "-D", dir, "-d"}, args...)...)
	assertRefused(t, r, names, nil)
	if !gone(tg.pid) {
		t.Fatalf("pid %d runs after a refused restore", tg.pid)
	}
}

// sameFile requires fd of pid to be the open file f: the same inode.
func sameFile(t *testing.T, pid, fd int, f *os.File) {
	t.Helper()
	var want, got unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &got); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || got.Dev != want.Dev {
		t.Fatalf("pid %d fd %d is inode %d, want the given file's, %d", pid, fd, got.Ino, want.Ino)
	}
}

// feed writes "hello\n" into a restored pipe_reader's pipe and closes
// every end the test holds, so the target reads it and then end of file.
func feed(t *testing.T, r, w *os.File) {
	t.Helper()
	r.Close()
	if _, err := w.Write([]byte("hello\n")); err != nil {
		t.Fatalf("write to the target's pipe: %v", err)
	}
	w.Close()
}

// TestInheritFdStdin: a target whose stdin is a pipe from a producer
// outside the dump (here the test) is dumped, with its key in `gocr show`;
// restored with --inherit-fd fd[3]:KEY, its stdin is the new pipe given
// as gocr's fd 3, from which it reads what the test writes, and gocr says
// nothing of stdio.
func TestInheritFdStdin(t *testing.T) {
	needsGocr(t)
	r, w := pipeEnds(t)
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
	key := fileKey(t, "pipe", r)
	dir := t.TempDir()
	if d := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); d.code != 0 || d.stderr != "" {
		t.Fatalf("want a dump that says nothing (gocr's stdin may stand in for a pipe)\n%v", d)
	}
	tg.waitDead(t, "a dump without --leave-running")
	r.Close()
	w.Close()

	show := runGocr(t, nil, "show", dir)
	if show.code != 0 || !strings.Contains(show.stdout, `"key": "`+key+`"`) {
		t.Fatalf("gocr show does not name stdin's key %s\n%v", key, show)
	}

	r2, w2 := pipeEnds(t)
	res := restoreGiven(t, tg, dir, nil, []*os.File{r2}, "--inherit-fd", "fd[3]:"+key)
	if lines := stderrLines(res); len(lines) != 0 {
		t.Fatalf("a restore given the pipe says %q", lines)
	}
	sameFile(t, tg.pid, 0, r2)
	feed(t, r2, w2)
	checkResult(t, tg, tg.pid)
}

// TestInheritFdStdinDefault: without --inherit-fd, the same stdin gets
// gocr restore's own, and gocr says so in one line naming the fd and its
// key.
func TestInheritFdStdinDefault(t *testing.T) {
	needsGocr(t)
	r, w := pipeEnds(t)
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
	key := fileKey(t, "pipe", r)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	r.Close()
	w.Close()

	r2, w2 := pipeEnds(t)
	res := restoreGiven(t, tg, dir, r2, nil)
	lines := stderrLines(res)
	if len(lines) != 1 || !strings.Contains(lines[0], "fd 0 ("+key+")") || !strings.Contains(lines[0], "--inherit-fd") {
		t.Fatalf("want one line naming fd 0, %s and --inherit-fd\n%v", key, res)
	}
	t.Logf("gocr restore: %s", lines[0])
	sameFile(t, tg.pid, 0, r2)
	feed(t, r2, w2)
	checkResult(t, tg, tg.pid)
}

// TestInheritFdStdinDup: fd 5, a dup of stdin on a pipe from outside the
// dump (one open file description), gets what stdin gets: gocr restore's
// own stdin, the same file, both named in the one line; the target reads
// what the test writes there through fd 5.
func TestInheritFdStdinDup(t *testing.T) {
	needsGocr(t)
	r, w := pipeEnds(t)
	key := fileKey(t, "pipe", r)
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r, args: []string{"5"},
		wrap: []string{"/bin/sh", "-c", `exec "$@" 5<&0`, "sh"}})
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	r.Close()
	w.Close()

	r2, w2 := pipeEnds(t)
	res := restoreGiven(t, tg, dir, r2, nil)
	lines := stderrLines(res)
	if len(lines) != 1 || !strings.Contains(lines[0], "fd 0 ("+key+")") || !strings.Contains(lines[0], "fd 5 ("+key+")") || !strings.Contains(lines[0], "own stdio") {
		t.Fatalf("want one line naming fd 0 and fd 5 (%s), given the restore's own stdio\n%v", key, res)
	}
	sameFile(t, tg.pid, 0, r2)
	sameFile(t, tg.pid, 5, r2)
	feed(t, r2, w2)
	checkResult(t, tg, tg.pid)
}

// fdFlags are the status flags fdinfo shows for pid's fd (man 5 proc).
func fdFlags(t *testing.T, pid, fd int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no flags in fdinfo of pid %d fd %d", pid, fd)
	return 0
}

// TestInheritFdNonStdio: fd 5, a pipe from a producer outside the dump,
// dumped with --external naming its key (one naming no pipe is refused):
// the restore refuses it without --inherit-fd, and refuses a given file of another
// type or access mode; given the read end of a new pipe, fd 5 is that pipe
// with the status flags it had (O_APPEND, set on it before the dump), and
// the target reads from it.
func TestInheritFdNonStdio(t *testing.T) {
	needsGocr(t)
	r, w := pipeEnds(t)
	if _, err := unix.FcntlInt(r.Fd(), unix.F_SETFL, unix.O_APPEND); err != nil {
		t.Fatalf("F_SETFL O_APPEND on a pipe: %v", err)
	}
	// The shell moves the pipe to fd 5 and gives the target /dev/null
	// as stdin.
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r, args: []string{"5"},
		wrap: []string{"/bin/sh", "-c", `exec "$@" 5<&0 </dev/null`, "sh"}})
	key := fileKey(t, "pipe", r)
	flags := fdFlags(t, tg.pid, 5)
	if flags&unix.O_APPEND == 0 {
		t.Fatalf("target's fd 5 has flags %#o, without the O_APPEND set on its description", flags)
	}
	dir := t.TempDir()
	pid := strconv.Itoa(tg.pid)

	d := runGocr(t, nil, "dump", "-t", pid, "-D", dir, "--external", key, "--external", "pipe:[1]")
	assertRefused(t, d, []string{"--external pipe:[1]"}, nil)
	assertUntouched(t, tg.pid)

	d = runGocr(t, nil, "dump", "-t", pid, "-D", dir, "--external", key)
	if d.code != 0 {
		t.Fatalf("dump with --external %s failed\n%v", key, d)
	}
	if l := strings.TrimSpace(d.stderr); strings.Contains(l, "\n") || !strings.Contains(l, "fd 5 ("+key+")") || !strings.Contains(l, "--inherit-fd") {
		t.Fatalf("want one line at dump naming fd 5, %s and --inherit-fd\n%v", key, d)
	}
	tg.waitDead(t, "a dump without --leave-running")
	r.Close()
	w.Close()

	refusedRestore(t, tg, dir, nil, []string{"fd 5", key, "--inherit-fd"})
	sock, _ := socketEnds(t)
	refusedRestore(t, tg, dir, []*os.File{sock}, []string{"fd 5", "a socket", "a pipe"}, "--inherit-fd", "fd[3]:"+key)
	r2, w2 := pipeEnds(t)
	refusedRestore(t, tg, dir, []*os.File{w2}, []string{"fd 5", "for writing", "for reading"}, "--inherit-fd", "fd[3]:"+key)
	refusedRestore(t, tg, dir, []*os.File{r2}, []string{"pipe:[1]", "names no fd"}, "--inherit-fd", "fd[3]:"+key, "--inherit-fd", "fd[3]:pipe:[1]")
	refusedRestore(t, tg, dir, nil, []string{"no fd 900 open"}, "--inherit-fd", "fd[900]:"+key)
	if got, _ := unix.FcntlInt(r2.Fd(), unix.F_GETFL, 0); got&unix.O_APPEND != 0 {
		t.Fatalf("a refused restore left O_APPEND on the pipe given to it (flags %#o)", got)
	}

	restoreGiven(t, tg, dir, nil, []*os.File{r2}, "--inherit-fd", "fd[3]:"+key)
	sameFile(t, tg.pid, 5, r2)
	if got := fdFlags(t, tg.pid, 5); got != flags {
		t.Fatalf("restored fd 5 has flags %#o, want %#o as dumped", got, flags)
	}
	feed(t, r2, w2)
	checkResult(t, tg, tg.pid)
}

// TestInheritFdClosedPipe: fds 3 and 4 of a target, the read end of a
// pipe holding unread data and the write end of another, whose other ends
// the test holds outside the dump, are dumped without any option; restored,
// each is a new pipe of the same direction whose other end is closed
// (targets/outsidepipes.c checks the data and then end of file, EPIPE with
// SIGPIPE, the status flags and the pipe size), said in one line naming
// both, and the oracle finds the fds as they were.
func TestInheritFdClosedPipe(t *testing.T) {
	needsGocr(t)
	tg, dir, keyA, keyB, view := dumpOutsidePipes(t)
	res := restoreGiven(t, tg, dir, nil, nil)
	lines := stderrLines(res)
	if len(lines) != 1 || !strings.Contains(lines[0], "fd 3 ("+keyA+")") || !strings.Contains(lines[0], "fd 4 ("+keyB+")") ||
		!strings.Contains(lines[0], "other end is closed") {
		t.Fatalf("want one line naming fd 3 (%s) and fd 4 (%s), given pipes whose other end is closed\n%v", keyA, keyB, res)
	}
	t.Logf("gocr restore: %s", lines[0])
	checkTreeView(t, tg.pid, view, nil)
	checkResult(t, tg, tg.pid)
}

// TestInheritFdClosedPipeGiven: the same fd 3, dumped without any option,
// is given the pipe --inherit-fd fd[3]:KEY names instead (of the target's
// size, into which the test writes what the target wants to read, then
// closes), and the line then names fd 4 only.
func TestInheritFdClosedPipeGiven(t *testing.T) {
	needsGocr(t)
	tg, dir, keyA, keyB, _ := dumpOutsidePipes(t)
	r2, w2 := pipeEnds(t)
	if _, err := unix.FcntlInt(r2.Fd(), unix.F_SETPIPE_SZ, 16384); err != nil {
		t.Fatalf("F_SETPIPE_SZ: %v", err)
	}
	res := restoreGiven(t, tg, dir, nil, []*os.File{r2}, "--inherit-fd", "fd[3]:"+keyA)
	sameFile(t, tg.pid, 3, r2)
	lines := stderrLines(res)
	if len(lines) != 1 || strings.Contains(lines[0], "fd 3 ") || !strings.Contains(lines[0], "fd 4 ("+keyB+")") {
		t.Fatalf("with --inherit-fd for fd 3, want one line naming fd 4 only\n%v", res)
	}
	r2.Close()
	if _, err := w2.Write([]byte("left\n")); err != nil {
		t.Fatalf("write to the given pipe: %v", err)
	}
	w2.Close()
	checkResult(t, tg, tg.pid)
}

// dumpOutsidePipes starts the outsidepipes target on two pipes whose
// other ends the test holds, writes "left\n" into the one it reads, and
// dumps it; it returns the target, the images, the pipes' keys (fds 3 and
// 4) and the oracle's view from before the dump.
func dumpOutsidePipes(t *testing.T) (tg *target, dir, keyA, keyB string, view treeView) {
	t.Helper()
	ar, aw := pipeEnds(t)
	br, bw := pipeEnds(t)
	// Before the target starts: (*os.File).Fd makes the open file
	// description, which the target shares, blocking.
	keyA, keyB = fileKey(t, "pipe", ar), fileKey(t, "pipe", bw)
	tg = startTargetOpts(t, "outsidepipes", startOpts{extra: []*os.File{ar, bw}})
	if _, err := aw.Write([]byte("left\n")); err != nil {
		t.Fatalf("write into the target's pipe: %v", err)
	}
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir = t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	for _, f := range []*os.File{ar, aw, br, bw} {
		f.Close()
	}
	return tg, dir, keyA, keyB, view
}

// socketEnds makes a unix socketpair, closed when the test ends.
func socketEnds(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(sv[0]), "socket"), os.NewFile(uintptr(sv[1]), "socket")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestInheritFdStdioSocket: stdin on a unix socket whose other end is
// outside the dump (a logger's, a supervisor's) is dumped by its key; gocr
// restore's own stdin cannot stand in for a socket, so the restore refuses
// it without --inherit-fd, and with --inherit-fd fd[0]:KEY gives gocr's
// stdin, here the end of another socketpair.
func TestInheritFdStdioSocket(t *testing.T) {
	needsGocr(t)
	before, _ := socketEnds(t)
	after, _ := socketEnds(t)
	tg := startTargetOpts(t, "pauser", startOpts{stdin: before})
	key := fileKey(t, "socket", before)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	r := runGocr(t, after, "restore", "-D", dir, "-d")
	assertRefused(t, r, []string{"fd 0", key, "--inherit-fd"}, nil)
	if !gone(tg.pid) {
		t.Fatalf("pid %d runs after a refused restore", tg.pid)
	}
	pid := restoreDetached(t, tg, dir, after, "--inherit-fd", "fd[0]:"+key)
	checkTreeView(t, pid, view, nil)
	sameFile(t, pid, 0, after)
	checkResult(t, tg, pid)
}

// TestInheritFdBLCR: cr_restart --inherit-fd gives the job's stdin, a
// pipe from outside the checkpoint, the new pipe given as its fd 3; a
// malformed one is a usage error (exit 64) in one line.
func TestInheritFdBLCR(t *testing.T) {
	needsGocr(t)
	r, w := pipeEnds(t)
	tg := startTargetOpts(t, "pipe_reader", startOpts{stdin: r})
	key := fileKey(t, "pipe", r)
	ctx := checkpointed(t, tg)
	r.Close()
	w.Close()

	bad := runBLCR(t, blcrCall{}, "cr_restart", "-d", "--inherit-fd", "3:"+key, ctx)
	if bad.code != 64 {
		t.Fatalf("cr_restart --inherit-fd 3:%s: want exit 64\n%v", key, bad)
	}
	assertRefused(t, bad, []string{"--inherit-fd", "fd[N]:KEY"}, nil)

	r2, w2 := pipeEnds(t)
	res := restartDetached(t, tg, blcrCall{extra: []*os.File{r2}}, "--inherit-fd", "fd[3]:"+key, ctx)
	sameFile(t, res, 0, r2)
	feed(t, r2, w2)
	checkResult(t, tg, res)
}
