//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

const (
	// readyTimeout bounds a target's setup: the 4 GiB one fills every
	// page before it says it is ready.
	readyTimeout = 120 * time.Second
	// reapTimeout bounds the wait for one killed process to be reaped.
	reapTimeout = 10 * time.Second
)

// becomeSubreaper makes this process the parent of every process orphaned
// below it (prctl(2), PR_SET_CHILD_SUBREAPER; kernel/exit.c,
// find_new_reaper). A restored process's parent, gocr restore, exits, so
// without it the restored process would go to PID 1, which reaps orphans
// 1-2 s late on this machine; as the bench's child it is killed by PID and
// reaped here, and its PID is free for the next restore at once.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// startTarget runs a bench/c program and waits for its ready file. os/exec
// gives it /dev/null as stdio, which restore reopens by path; a pipe would
// have to be dumped.
func (b *bench) startTarget(name string, args ...string) (int, error) {
	ready := filepath.Join(b.work, name+".ready")
	os.Remove(ready)
	cmd := exec.Command(filepath.Join(b.bin, name), append([]string{ready}, args...)...)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := os.Stat(ready); err == nil {
			return pid, nil
		}
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			return 0, fmt.Errorf("target %s %v exited before it was ready: %v", name, args, ws)
		}
		if time.Now().After(deadline) {
			b.kill(pid)
			return 0, fmt.Errorf("target %s %v not ready after %v", name, args, readyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill kills one of this process's children by PID and reaps it. Only PIDs
// it started or that a restore reparented to it qualify: a PID that has
// been reused by someone else's process is left alone.
func (b *bench) kill(pid int) {
	if ppid, err := parentOf(pid); err != nil || ppid != os.Getpid() {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

func parentOf(pid int) (int, error) {
	st, err := proc.ReadStat(pid)
	return st.PPid, err
}

// treeOf lists root and its descendants, breadth-first, root first. A
// process that exits during the walk is listed without its children.
func treeOf(root int) []int {
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		children, _ := proc.Children(pids[i])
		pids = append(pids, children...)
	}
	return pids
}

// endTree kills every process of a tree listed by treeOf, each by PID and
// children first, then reaps each, root first: the root is this process's
// child, and every other process is reparented to this child subreaper
// when its parent exits, so by the time its parent is reaped it can be
// reaped here. A PID is only killed while its parent is this process or
// another process of the tree, so a PID reused by someone else is never
// touched. It fails if a process cannot be reaped.
func (b *bench) endTree(pids []int) error {
	me := os.Getpid()
	in := make(map[int]bool, len(pids))
	for _, p := range pids {
		in[p] = true
	}
	for _, pid := range slices.Backward(pids) {
		if ppid, err := parentOf(pid); err == nil && (ppid == me || in[ppid]) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, pid := range pids {
		if err := reap(pid); err != nil {
			return err
		}
	}
	return nil
}

// reap waits for one killed process to be reaped by this process. A PID
// that is gone already counts as reaped.
func reap(pid int) error {
	deadline := time.Now().Add(reapTimeout)
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case p == pid:
			return nil
		case errors.Is(err, unix.ECHILD):
			// Not this process's child (wait4(2)): its parent has
			// not exited yet, so it is not reparented here yet, or
			// it is gone.
			if !proc.Exists(pid) {
				return nil
			}
		case err != nil && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("reap %d: %w", pid, err)
		}
		if time.Now().After(deadline) {
			ppid, _ := parentOf(pid)
			return fmt.Errorf("process %d (parent %d) not reaped %v after it was killed", pid, ppid, reapTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// endStray checks that this process has no child left, live or zombie,
// once a round is over (no other target or helper runs during the thread
// and tree rows): a restored process outside the restored tree, or one not
// reaped, would show here. It ends and reaps any it finds and reports them.
func (b *bench) endStray() error {
	stray, err := proc.Children(os.Getpid())
	if err != nil {
		return fmt.Errorf("list this bench's children: %w", err)
	}
	if len(stray) == 0 {
		return nil
	}
	for _, pid := range stray {
		b.endTree(treeOf(pid))
	}
	return fmt.Errorf("processes %v were left after the round", stray)
}
