//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// logsOf is how many logs each kind of job writes (job.c).
var logsOf = map[string]int{"single": 1, "threads": 4, "tree": 5, "tcp": 2}

// processesOf is how many processes each kind of job has (job.c).
var processesOf = map[string]int{"single": 1, "threads": 1, "tree": 5, "tcp": 2}

// job is one running (or dumped) workload.
type job struct {
	bin    string // job.c built
	kind   string
	logDir string
	pids   []int // every process, the root first
}

// settle bounds every wait for the job to reach a state: far more than
// any of them takes on a loaded machine, and a wait that ends early
// costs nothing.
const settle = 10 * time.Second

// startJob starts a job of kind writing its logs into logDir and waits
// until every process exists and every log has a few lines.
func startJob(bin, kind, logDir string) (*job, error) {
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	// stdio on /dev/null: gocr restores a pipe only with both its ends
	// in the dump.
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	// Its stderr into a file beside the logs, for the evidence: why a
	// job that ended itself did (job.c says it there).
	errFile, err := os.OpenFile(filepath.Join(logDir, "stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer errFile.Close()
	cmd := exec.Command(bin, kind, logDir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, errFile
	// Its own session: gocr restores the job's session and groups, and
	// a process group of the harness's would have a leader outside it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start job %s: %w", kind, err)
	}
	// Reaps the root when gocr's dump kills it; its children are
	// reparented and reaped by init.
	go cmd.Wait()
	j := &job{bin: bin, kind: kind, logDir: logDir, pids: []int{cmd.Process.Pid}}
	deadline := time.Now().Add(settle)
	for {
		j.pids = append(j.pids[:1], descendants(j.pids[0])...)
		ready := len(j.pids) == processesOf[kind]
		for i := range logsOf[kind] {
			if n, err := j.count(i); err != nil || n < 5 {
				ready = false
			}
		}
		if ready {
			return j, nil
		}
		if time.Now().After(deadline) {
			j.kill()
			return nil, fmt.Errorf("job %s did not start all its processes and logs in %v", kind, settle)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// descendants lists every descendant of pid, by /proc/PID/task/TID/children.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	slices.Sort(out)
	return out
}

// count reads log i and returns its last count, or an error if the log
// is not 1, 2, ..., N, one a line. A last line without its newline is a
// write being read half done, and is left out.
func (j *job) count(i int) (int, error) {
	path := filepath.Join(j.logDir, fmt.Sprintf("log-%d", i))
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if k := bytes.LastIndexByte(b, '\n'); k >= 0 {
		b = b[:k+1]
	} else {
		b = nil
	}
	n := 0
	for line := range bytes.Lines(b) {
		n++
		if got := string(bytes.TrimSuffix(line, []byte{'\n'})); got != strconv.Itoa(n) {
			return 0, fmt.Errorf("%s: line %d is %q: a count lost or replayed", path, n, got)
		}
	}
	return n, nil
}

// alive returns which of the job's PIDs hold a live process of the job
// (not a zombie, running the job's binary).
func (j *job) alive() []int {
	var out []int
	for _, pid := range j.pids {
		if j.owns(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// owns reports whether pid is a live process running the job's binary.
func (j *job) owns(pid int) bool {
	st := procState(pid)
	if st == "" || st == "Z" || st == "X" {
		return false
	}
	// The command line, which a restore brings back with the memory
	// holding it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	arg0, _, _ := bytes.Cut(b, []byte{0})
	return err == nil && string(arg0) == j.bin
}

// procState is the State letter of /proc/PID/status, "" if there is no
// such process.
func procState(pid int) string {
	v, _ := statusField(fmt.Sprintf("/proc/%d/status", pid), "State")
	if v == "" {
		return ""
	}
	return v[:1]
}

func statusField(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no %s line", path, key)
}

// untouched says why the job's processes are not all running free: a
// process missing, or a thread traced (TracerPid) or stopped (state T or
// t); "" when they are.
func (j *job) untouched() string {
	for _, pid := range j.pids {
		if !j.owns(pid) {
			return fmt.Sprintf("process %d is gone (state %q)", pid, procState(pid))
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			status := fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name())
			if tp, _ := statusField(status, "TracerPid"); tp != "0" {
				return fmt.Sprintf("thread %s of %d is traced by %s", t.Name(), pid, tp)
			}
			if st, _ := statusField(status, "State"); strings.HasPrefix(st, "T") || strings.HasPrefix(st, "t") {
				return fmt.Sprintf("thread %s of %d is stopped (%s)", t.Name(), pid, st)
			}
		}
	}
	return ""
}

// growth is how many more lines every log must gain for the job to count
// as running on.
const growth = 20

// checkRuns waits until every process of the job runs free (untouched)
// and every log has grown by growth lines, each log without a gap or a
// repeat all along.
func (j *job) checkRuns() error {
	deadline := time.Now().Add(settle)
	for {
		why := j.untouched()
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", settle, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := make([]int, logsOf[j.kind])
	for i := range start {
		n, err := j.count(i)
		if err != nil {
			return err
		}
		start[i] = n
	}
	for i := range start {
		for {
			n, err := j.count(i)
			if err != nil {
				return err
			}
			if n >= start[i]+growth {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("log-%d grew from %d to only %d lines in %v: %s", i, start[i], n, settle, j.untouched())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if why := j.untouched(); why != "" {
		return fmt.Errorf("while its logs grew: %s", why)
	}
	return nil
}

// growing reports whether every log gains a line within d.
func (j *job) growing(d time.Duration) bool {
	start := make([]int, logsOf[j.kind])
	for i := range start {
		start[i], _ = j.count(i)
	}
	deadline := time.Now().Add(d)
	for i := range start {
		for {
			if n, _ := j.count(i); n > start[i] {
				break
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return true
}

// kill ends every process of the job still alive and waits until each is
// gone (reaped, or a zombie its parent will reap).
func (j *job) kill() error {
	for _, pid := range j.alive() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return j.waitGone()
}

// taken returns the job's PIDs that some process holds, after reaping
// those of them that are zombies: the harness is the subreaper of
// everything it starts (main), so the job's orphans, and a killed
// restore's, are its to reap. A PID counts whoever holds it: a process
// still in the restorer has another command line, but is the restore's.
func (j *job) taken() []int {
	var left []int
	for _, pid := range j.pids {
		if procState(pid) == "Z" {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		if procState(pid) != "" {
			left = append(left, pid)
		}
	}
	return left
}

// leftovers returns the harness's own child processes, after reaping
// the zombies among them. Once gocr is dead every process it had created
// is one of them (the harness is their subreaper), whether or not it
// holds a PID of the job yet: a killed restore has left nothing only when
// this is empty.
func leftovers() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%s/children", t.Name()))
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if procState(pid) == "Z" {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
			if procState(pid) != "" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// describe names who holds each of pids, for an error.
func describe(pids []int) string {
	var who []string
	for _, pid := range pids {
		ppid, _ := statusField(fmt.Sprintf("/proc/%d/status", pid), "PPid")
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		who = append(who, fmt.Sprintf("%d (state %s, parent %s, %q)", pid, procState(pid), ppid, bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return strings.Join(who, ", ")
}

// waitGone waits until each of the job's PIDs is free again, as a
// restore needs them.
func (j *job) waitGone() error {
	deadline := time.Now().Add(settle)
	for {
		left := j.taken()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PIDs of the job still taken after %v: %s", settle, describe(left))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// snapshot describes the job's processes for the evidence of a loss.
func (j *job) snapshot() string {
	var b strings.Builder
	for _, pid := range j.pids {
		fmt.Fprintf(&b, "== pid %d (owned by the job: %v)\n", pid, j.owns(pid))
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			for _, f := range []string{"status", "syscall", "stack"} {
				c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/%s", pid, t.Name(), f))
				fmt.Fprintf(&b, "-- task %s %s\n%s\n", t.Name(), f, c)
			}
		}
		for _, f := range []string{"maps", "fdinfo"} {
			if f == "fdinfo" {
				fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
				for _, fd := range fds {
					l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
					fmt.Fprintf(&b, "fd %s -> %s\n", fd.Name(), l)
				}
				continue
			}
			c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			fmt.Fprintf(&b, "-- %s\n%s\n", f, c)
		}
	}
	return b.String()
}
