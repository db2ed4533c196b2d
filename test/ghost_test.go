//go:build linux

package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	t.Run("OtherLink", func(t *testing.T) {
		tg := startTarget(t, "ghost", t.TempDir(), "linked")
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{"fd 3", "scratch", "hard link"}, nil)
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
