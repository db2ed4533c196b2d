//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	readyTimeout = 120 * time.Second
	// reapTimeout bounds the wait for one killed process to be reaped.
	reapTimeout = 10 * time.Second
)

// startTarget runs a bench/c program with stdio on /dev/null (so that
// restore reopens them by path) and waits for its ready file.
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
// it started or that a restore reparented to it qualify: anything else is
// left alone.
func (b *bench) kill(pid int) {
	if ppid, err := parentOf(pid); err != nil || ppid != os.Getpid() {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

func parentOf(pid int) (int, error) {
	_, ppid, err := statOf(pid)
	return ppid, err
}

// statOf reads a process's state letter and parent from /proc/PID/stat.
func statOf(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses; fields after the
	// last ')' are fixed: state, ppid.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// treeOf lists root and its descendants, breadth-first, root first.
func treeOf(root int) []int {
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, childrenOf(pids[i])...)
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
			// Not (yet) this process's child: its parent has not
			// exited yet, or it is gone.
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
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
	stray := childrenOf(os.Getpid())
	if len(stray) == 0 {
		return nil
	}
	for _, pid := range stray {
		b.endTree(treeOf(pid))
	}
	return fmt.Errorf("processes %v were left after the round", stray)
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
