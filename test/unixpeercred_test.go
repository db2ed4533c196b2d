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

// TestUnixPeerCredPidns: restored in a new PID namespace, every socket's
// SO_PEERCRED pid, ids and groups read as dumped (unixpeercred.c checks
// them): the calls are made there, by processes with the dumped pids, the
// agent making them being the namespace's PID 1 and then its reaper; so
// again once dumped from that namespace and restored in another.
func TestUnixPeerCredPidns(t *testing.T) {
	needsRoot(t)
	needsUnixDiag(t)
	tg := startTargetOpts(t, "unixpeercred", startOpts{args: []string{"setuid"}})
	pids := trackTree(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	restore(t, nil, dir, "-d", "--pidns=always")
	host, reaper := nsJob(t, tg, tg.pid)
	// Dumped from its namespace and restored in a new one again.
	host = dumpRestoreInPidns(t, tg, host, reaper)
	checkResult(t, tg, host)
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
