//go:build linux

package test

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestUnixPeerCred: every unix socket's peer credentials (SO_PEERCRED,
// SO_PEERGROUPS) come back as they were: a socketpair between a parent
// and its child, a listener, its accepted connection and its client in
// another process with other ids and groups, a connection accepted only
// after the restore, a socketpair made by a process that had exited, and
// datagram sockets connected by name, which have none (unixpeercred.c).
func TestUnixPeerCred(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	tg := startTargetOpts(t, "unixpeercred", startOpts{args: []string{"setuid"}})
	trackTree(t, tg.pid)
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestOrdinaryUserUnixPeerCred: the same job run, dumped and restored by
// an ordinary user: the credentials are the user's own, and the
// processes that record them are made with the user's capability alone.
func TestOrdinaryUserUnixPeerCred(t *testing.T) {
	needsUnixDiag(t)
	ou := setupOrdinaryUser(t)
	tg := startTargetOpts(t, "unixpeercred", startOpts{wrap: asUser(ou.uid, ou.gid)})
	pids := trackTree(t, tg.pid)
	dir := filepath.Join(ou.ownDir(t), "images")
	if r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump as %s failed: %v", testUserName, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	if r := ou.run(t, nil, "restore", "-d", "-D", dir); r.code != 0 {
		t.Fatalf("restore as %s failed: %v", testUserName, r)
	}
	checkResult(t, tg, tg.pid)
}

// TestUnixPeerCredPidnsRefused: in a new PID namespace no process of
// gocr's can have the pid a socket's peer credentials name, so a restore
// with --pidns=always refuses, naming the socket, and leaves the images
// to restore without it.
func TestUnixPeerCredPidnsRefused(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	tg := startTarget(t, "unixpeercred")
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	r := runGocr(t, nil, "restore", "-d", "--pidns=always", "-D", dir)
	assertRefused(t, r, []string{"unix socket inode", "SO_PEERCRED", "restore without --pidns"}, nil)
	waitAllGone(t, pids, "the refused restore")
	checkResult(t, tg, restoreDetached(t, tg, dir, nil))
}

// TestUnixPeerCredOutsideRefused: a socketpair whose both ends a process
// holds, made by its parent, alive and not dumped: its pid could not be
// given at restore, so the dump of the child alone refuses, naming the
// fd and the pid, and the child runs on untouched.
func TestUnixPeerCredOutsideRefused(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	tg := startTarget(t, "unixpeercred", "outside")
	trackTree(t, tg.pid)
	kids := childrenOf(tg.pid)
	if len(kids) != 1 {
		t.Fatalf("target pid %d has children %v, want one", tg.pid, kids)
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(kids[0]), "-D", t.TempDir())
	assertRefused(t, r, []string{"fd 91", "SO_PEERCRED", "pid " + strconv.Itoa(tg.pid), "live process outside the dump"}, nil)
	assertUntouched(t, kids[0])
	checkResult(t, tg, tg.pid)
}
