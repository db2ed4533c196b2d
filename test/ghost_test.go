//go:build linux

package test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// Files deleted while open or mapped (files/ghost.go, dump/ghosts.go):
// saved once each, made again at restore at their path and unlinked.

// TestGhostFile: a deleted file open through three fds (two open file
// descriptions, one of them dup'ed), mapped shared read-write, shared
// read-only and private, and written after the unlink, comes back one
// deleted file (st_nlink 0, "PATH (deleted)") under all of them, with its
// contents, hole, mode, offsets and flags (the ghost target checks), and
// the oracle sees the same fd links, fdinfo and maps. The dump holds one
// copy of it.
func TestGhostFile(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "ghost", t.TempDir())
	dir := t.TempDir()
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, dir)
	var saved []string
	for _, name := range listDir(t, dir) {
		if strings.HasPrefix(name, "file-") {
			saved = append(saved, name)
		}
	}
	if len(saved) != 1 {
		t.Errorf("the dump saved %q, want one copy of the deleted file", saved)
	}
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestGhostFileRefusals: what gocr cannot make again exactly is refused in
// one line, the target running on untouched (at dump) or nothing left
// behind (at restore).
func TestGhostFileRefusals(t *testing.T) {
	needsGocr(t)
	t.Run("OverLimit", func(t *testing.T) {
		tg := startTarget(t, "ghost", t.TempDir())
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir(), "--ghost-limit", "65536")
		// The file is 1 MiB and 100 bytes (ghost.c SIZE).
		assertRefused(t, r, []string{"fd 3", "scratch", "1048676 bytes", "--ghost-limit"}, nil)
		checkIntact(t, tg)
	})
	t.Run("OverLimitCheckpoint", func(t *testing.T) {
		// cr_checkpoint takes gocr dump's --ghost-limit: refused under
		// it, checkpointed over it, the job running on both times.
		ctx := filepath.Join(t.TempDir(), "context")
		tg := startTarget(t, "ghost", t.TempDir())
		r := runBLCR(t, blcrCall{}, "cr_checkpoint", "--ghost-limit", "65536", "-f", ctx, strconv.Itoa(tg.pid))
		assertRefused(t, r, []string{"fd 3", "scratch", "1048676 bytes", "--ghost-limit"}, nil)
		checkIntact(t, tg)
		tg = startTarget(t, "ghost", t.TempDir())
		mustBLCR(t, blcrCall{}, "cr_checkpoint", "--ghost-limit", "2097152", "-f", ctx, strconv.Itoa(tg.pid))
		checkResult(t, tg, tg.pid)
	})
	t.Run("OtherLink", func(t *testing.T) {
		tg := startTarget(t, "ghost", t.TempDir(), "linked")
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{"fd 3", "scratch", "hard link"}, nil)
		checkIntact(t, tg)
	})
	t.Run("NameTakenAtDump", func(t *testing.T) {
		tmp := t.TempDir()
		tg := startTarget(t, "ghost", tmp)
		if err := os.WriteFile(filepath.Join(tmp, "scratch"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{"fd 3", "scratch", "taken its name"}, nil)
		checkIntact(t, tg)
	})
	t.Run("NameTaken", func(t *testing.T) {
		tmp := t.TempDir()
		tg := startTarget(t, "ghost", tmp)
		dir := t.TempDir()
		dump(t, tg.pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		path := filepath.Join(tmp, "scratch")
		if err := os.WriteFile(path, []byte("someone else's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "restore", "-d", "-D", dir)
		assertRefused(t, r, []string{path, "exists"}, nil)
		assertNoProcess(t, tg.pid)
		if b, err := os.ReadFile(path); err != nil || string(b) != "someone else's\n" {
			t.Errorf("the file at %s after the refused restore: %q, %v", path, b, err)
		}
	})
}

// TestOrdinaryUserGhostFile: the user's job with a deleted file is dumped
// and restored by the user, the file made again as theirs; the same dump
// edited to make the file root's, or set-user-ID, restores nothing.
func TestOrdinaryUserGhostFile(t *testing.T) {
	ou := setupOrdinaryUser(t)
	work := filepath.Join(ou.ownDir(t), "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, ou.uid, ou.gid); err != nil {
		t.Fatal(err)
	}
	tg := startTargetOpts(t, "ghost", startOpts{wrap: asUser(ou.uid, ou.gid), args: []string{work}})
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ou.ownDir(t), "images")
	if r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump as %s failed: %v", testUserName, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	src := copyDir(t, dir)
	for _, c := range []struct {
		name string
		edit func(*gocrpb.GhostFile)
		want string
	}{
		{"RootOwner", func(g *gocrpb.GhostFile) { g.Uid, g.Gid = 0, 0 }, "owner 0:0"},
		{"Setuid", func(g *gocrpb.GhostFile) { g.Mode |= syscall.S_ISUID }, "not that of a plain regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			crafted := rewriteDumpFiles(t, src, func(*gocrpb.Task) {}, func(f *gocrpb.Files) {
				if len(f.GhostFiles) != 1 {
					t.Fatalf("files image lists %d deleted files, want 1", len(f.GhostFiles))
				}
				c.edit(f.GhostFiles[0])
			})
			ou.giveTree(t, crafted)
			r := ou.run(t, nil, "restore", "-d", "-D", crafted)
			assertRefused(t, r, []string{"scratch", c.want}, nil)
			assertNoProcess(t, tg.pid)
			if _, err := os.Lstat(filepath.Join(work, "scratch")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused restore left %s/scratch behind: %v", work, err)
			}
		})
	}
	if r := ou.run(t, nil, "restore", "-d", "-D", dir); r.code != 0 {
		t.Fatalf("restore as %s failed: %v", testUserName, r)
	}
	checkTreeView(t, tg.pid, before, nil)
	checkResult(t, tg, tg.pid)
}

// deletedFile is a new file of size bytes in dir, open read-only and
// already unlinked.
func deletedFile(t *testing.T, dir string, size int) (*os.File, string) {
	t.Helper()
	path := filepath.Join(dir, "stdin.log")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	return f, path
}

// TestGhostFileStdio: stdin on a deleted file is made again as any fd;
// one gocr cannot make again (its name taken since) or larger than
// --ghost-limit is dumped as joined outside the dump instead (a job's log
// removed under it), which the restore refuses without --inherit-fd and
// restores with it.
func TestGhostFileStdio(t *testing.T) {
	needsGocr(t)
	t.Run("Saved", func(t *testing.T) {
		f, _ := deletedFile(t, t.TempDir(), 100)
		tg := startTargetOpts(t, "pauser", startOpts{stdin: f})
		pid := checkpointRestore(t, tg, cycleOpts{})
		checkResult(t, tg, pid)
	})
	t.Run("NameTaken", func(t *testing.T) {
		f, path := deletedFile(t, t.TempDir(), 100)
		tg := startTargetOpts(t, "pauser", startOpts{stdin: f})
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		dump(t, tg.pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		r := runGocr(t, nil, "restore", "-D", dir, "-d")
		assertRefused(t, r, []string{"fd 0", path + " (deleted)", "--inherit-fd"}, nil)
		assertNoProcess(t, tg.pid)
	})
	t.Run("OverLimit", func(t *testing.T) {
		f, path := deletedFile(t, t.TempDir(), 2<<20)
		tg := startTargetOpts(t, "pauser", startOpts{stdin: f})
		dir := t.TempDir()
		dump(t, tg.pid, dir, "--ghost-limit", "1048576")
		tg.waitDead(t, "a dump without --leave-running")
		key := path + " (deleted)"
		r := runGocr(t, nil, "restore", "-D", dir, "-d")
		assertRefused(t, r, []string{"fd 0", key, "--inherit-fd"}, nil)
		assertNoProcess(t, tg.pid)
		given, _ := deletedFile(t, t.TempDir(), 10)
		pid := restoreDetached(t, tg, dir, given, "--inherit-fd", "fd[0]:"+key)
		sameFile(t, pid, 0, given)
		checkResult(t, tg, pid)
	})
}
