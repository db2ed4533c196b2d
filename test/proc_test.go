//go:build linux

package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What the kernel shows of a process in /proc (proc(5)): whether it still
// runs, its place in the process tree, the fields of its status file.

// procState returns the one-letter state of pid from /proc/PID/stat, or ""
// if there is no such process.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The state follows the last ')' (comm may contain parentheses; proc(5)).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// gone reports whether pid no longer runs: absent, or a zombie waiting for
// PID 1 to reap it.
func gone(pid int) bool {
	s := procState(pid)
	return s == "" || s == "Z" || s == "X"
}

// waitGone waits until pid is no longer running: absent, or a zombie.
// It does not wait for PID 1 to reap an orphan, which on this kind of
// machine (a Firecracker guest, whose init reaps every second or two)
// took 1.2-1.7 s each time, most of a restore test's length; a restore
// that wants the PID again waits for the reaping itself
// (restorer/checks.go waitPidFree), and pid_max is raised for the run
// (raisePidMax), so no other test is given it meanwhile.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !gone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// waitReaped waits until pid is gone altogether: reaped, not a zombie,
// so that a restore may have it again at once (an orphan waits for PID 1,
// a second or two here).
func waitReaped(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for procState(pid) != "" {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// procEntry is one process as /proc/PID/stat shows it.
type procEntry struct {
	pid, ppid, pgid, sid int
	state                string
}

func (p procEntry) String() string {
	return fmt.Sprintf("pid %d ppid %d pgid %d sid %d state %s", p.pid, p.ppid, p.pgid, p.sid, p.state)
}

func readProcEntry(pid int) (procEntry, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procEntry{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procEntry{}, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return procEntry{}, fmt.Errorf("/proc/%d/stat: short: %q", pid, b)
	}
	e := procEntry{pid: pid, state: f[0]}
	for j, dst := range []*int{&e.ppid, &e.pgid, &e.sid} {
		if *dst, err = strconv.Atoi(f[j+1]); err != nil {
			return procEntry{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, j+4, err)
		}
	}
	return e, nil
}

// treeEntries returns root and all its descendants, sorted by PID, with
// the root's ppid set to 0: it is the test's child before the dump and
// init's after a restore.
func treeEntries(t *testing.T, root int) []procEntry {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list /proc: %v", err)
	}
	children := map[int][]procEntry{}
	var rootEntry *procEntry
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		e, err := readProcEntry(pid)
		if err != nil {
			continue // exited meanwhile
		}
		if pid == root {
			rootEntry = &e
		}
		children[e.ppid] = append(children[e.ppid], e)
	}
	if rootEntry == nil {
		return nil
	}
	rootEntry.ppid = 0
	out := []procEntry{*rootEntry}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	slices.SortFunc(out, func(a, b procEntry) int { return a.pid - b.pid })
	return out
}

func cmdlineOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

// statusField is the value of one "Key:\tvalue" line of /proc/PID/status.
func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of pid %d: %v", pid, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// tracerPid returns pid's TracerPid from /proc/PID/status.
func tracerPid(t *testing.T, pid int) int {
	t.Helper()
	v := statusField(t, pid, "TracerPid")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("parse TracerPid %q of pid %d: %v", v, pid, err)
	}
	return n
}

// uids returns the real and effective uid of pid from /proc/PID/status.
func uids(t *testing.T, pid int) (int, int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) < 2 {
				break
			}
			r, err1 := strconv.Atoi(f[0])
			e, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil {
				break
			}
			return r, e
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return 0, 0
}

// freePID returns a PID with no process behind it, counting down from
// pid_max where the kernel allocates last.
func freePID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatalf("read pid_max: %v", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("parse pid_max %q: %v", b, err)
	}
	for pid := max - 1; pid > 300; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no free pid below pid_max")
	return 0
}
