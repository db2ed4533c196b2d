//go:build linux

package test

import (
	"os"
	"strconv"
	"testing"
)

// TestNamespaceFds: fds on the target's own namespace files (every type
// this kernel has, with their flags, close-on-exec, an O_PATH one and a
// dup) come back naming the namespaces the restored process is in
// (nsfds.c own). A restore into a new PID namespace refuses them first in
// one line, since its pid and mnt fds would name other namespaces; the
// images then restore as they are.
func TestNamespaceFds(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "nsfds", "own")
	dir := t.TempDir()
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	r := runGocr(t, nil, "restore", "-D", dir, "-d", "--pidns=always")
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "mnt namespace", "new PID namespace"}, nil)
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// TestNamespaceFdRefused: an fd on a namespace the process is not in (a
// uts namespace its reaped child unshared) is refused at dump, naming
// it, and the target runs on with it (nsfds.c foreign).
func TestNamespaceFdRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "nsfds", "foreign")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "uts:[", "uts namespace the process is not in"}, nil)
	checkIntact(t, tg)
}

// TestNamespaceFdsOwnTime: the same target in a time namespace of its
// own, not gocr's: restored on this boot into a time namespace with the
// same offsets, where it opens its fds on its time namespace itself
// (nsfds.c owntime).
func TestNamespaceFdsOwnTime(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsTimeNamespaces(t)
	tg := startTarget(t, "nsfds", "owntime")
	pid := checkpointRestore(t, tg, cycleOpts{})
	own, _ := timeNamespace(t, os.Getpid())
	if ns, _ := timeNamespace(t, pid); ns == own {
		t.Fatalf("restored pid %d is in gocr's time namespace %s, not one of its own", pid, ns)
	}
	checkResult(t, tg, pid)
}
