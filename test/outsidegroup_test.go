//go:build linux

package test

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// TestOutsideGroupShared: a root in the process group it was started in
// (led by a process of the test's, outside the dump) with a grandchild that joined
// that group while its parent leads another (outsidegroup.c). The restore
// puts the grandchild back in the root's group; the oracle compares every
// process's group and session, and the target checks them itself. In a
// new PID namespace no process can join a group outside it, so a restore
// with --pidns=always refuses in one line first.
func TestOutsideGroupShared(t *testing.T) {
	needsRoot(t)
	leader := outsideGroupLeader(t)
	tg := startTargetOpts(t, "outsidegroup", startOpts{args: []string{"root"}, pgid: leader})
	es := outsideGroupTree(t, tg)
	if es[0].pgid != leader || es[2].pgid != es[0].pgid || es[1].pgid != es[1].pid {
		t.Fatalf("want the root and its grandchild in a group led from outside, the child in its own:\n%s", entriesString(es[:]))
	}
	pid := tg.pid
	if !standalone {
		dir := t.TempDir()
		before, err := readTreeView(t, tg.pid)
		if err != nil {
			t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
		}
		dump(t, tg.pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		r := runGocr(t, nil, "restore", "-D", dir, "-d", "--pidns=always")
		assertRefused(t, r, []string{"pid " + strconv.Itoa(es[2].pid), "process group", "PID namespace"}, nil)
		pid = restoreDetached(t, tg, dir, nil)
		checkTreeView(t, pid, before, nil)
	}
	checkResult(t, tg, pid)
}

// TestOutsideGroupOtherRefused: a child that joined a process group led
// from outside the dump, not the root's (its grandparent's), cannot be put
// back in it: the dump refuses, naming it and the group, and the tree runs
// on untouched (outsidegroup.c).
func TestOutsideGroupOtherRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	own := outsideGroupLeader(t)
	tg := startTargetOpts(t, "outsidegroup", startOpts{args: []string{"other", strconv.Itoa(own)}, pgroup: true})
	es := outsideGroupTree(t, tg)
	if es[0].pgid != tg.pid || es[2].pgid != own {
		t.Fatalf("want the root leading its group and its grandchild in group %d:\n%s", own, entriesString(es[:]))
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"pid " + strconv.Itoa(es[2].pid), "process group " + strconv.Itoa(own), "led from outside"}, nil)
	for _, e := range es {
		assertUntouched(t, e.pid)
	}
	checkIntact(t, tg)
}

// outsideGroupLeader starts a process that leads a process group of its
// own in the test's session, outside any dump, and returns its PID, the
// group's ID. The test's own group will not do: CI's runner may be in
// group 0 (a process the kernel started), which nothing can join
// (setpgid(2): a pgid of 0 means the caller's PID).
func outsideGroupLeader(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process group leader: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// outsideGroupTree returns outsidegroup's root, leader and member, in
// that order, once all three sleep.
func outsideGroupTree(t *testing.T, tg *target) [3]procEntry {
	t.Helper()
	var out [3]procEntry
	es := settledTree(t, tg.pid, 3)
	trackTree(t, tg.pid) // a failed test must not leave them behind
	for i := range out {
		for _, e := range es {
			if (i == 0 && e.pid == tg.pid) || (i > 0 && e.ppid == out[i-1].pid) {
				out[i] = e
			}
		}
	}
	if out[2].pid == 0 {
		t.Fatalf("tree of pid %d is not root, child, grandchild:\n%s", tg.pid, entriesString(es))
	}
	return out
}
