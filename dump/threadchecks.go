//go:build linux

package dump

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/gocr/gocr/proc"
)

// The restorer recreates a process's threads with clone3(CLONE_THREAD |
// CLONE_FILES | CLONE_FS | ...) in its namespaces: whatever a thread made
// its own since (unshare(2) and setns(2) act on the calling thread only)
// would come back as the process's. These checks refuse it.

// threadSharedKinds are what a thread can stop sharing with its process:
// unshare(CLONE_FILES) and unshare(CLONE_FS) in the thread (man 2 unshare).
var threadSharedKinds = []struct {
	typ  int
	what string
}{
	{kcmpFiles, "fd table (unshare CLONE_FILES)"},
	{kcmpFS, "cwd, root and umask (unshare CLONE_FS)"},
}

// checkThreadTables refuses a thread with an fd table or fs information
// of its own: kcmp(2) compares them by TID as well as by PID.
func checkThreadTables(pid int, tids []int) error {
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		for _, k := range threadSharedKinds {
			if kcmp(pid, tid, k.typ) != 0 {
				return fmt.Errorf("thread %d has its own %s, which gocr cannot restore", tid, k.what)
			}
		}
	}
	return nil
}

// checkThreadNamespaces refuses a process whose threads are not all in
// its namespaces, or that will create its children in other ones than its
// own: after unshare(CLONE_NEWPID) or unshare(CLONE_NEWTIME) the caller
// stays where it is and only its next children go to the new namespace,
// which /proc/PID/ns/pid_for_children and time_for_children show (man 7
// namespaces, man 2 unshare). The restored process would create them in
// its own. Every thread's links are under /proc/PID/task/TID/ns (man 5
// proc); two tasks are in one namespace when their links name the same
// inode (man 7 namespaces).
func checkThreadNamespaces(pid int, tids []int) error {
	leader, err := readNamespaces(pid, pid)
	if err != nil {
		return err
	}
	for child, own := range map[string]string{"pid_for_children": "pid", "time_for_children": "time"} {
		if l, ok := leader[own]; ok && leader[child] != l {
			return fmt.Errorf("the process creates its children in another %s namespace than its own (%s), which gocr cannot restore", own, child)
		}
	}
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		links, err := readNamespaces(pid, tid)
		if err != nil {
			return err
		}
		for name, l := range leader {
			if links[name] != l {
				return fmt.Errorf("thread %d is in another namespace than its process (%s), which gocr cannot restore", tid, name)
			}
		}
	}
	return nil
}

// readNamespaces reads the ns links of one thread, by name. A
// pid_for_children that cannot be read is a PID namespace without its
// init yet (fs/proc/namespaces.c: pidns_for_children_get gives none):
// it maps to "", unlike any link.
func readNamespaces(pid, tid int) (map[string]string, error) {
	dir := fmt.Sprintf("/proc/%d/task/%d/ns", pid, tid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("thread %d: read its namespaces: %w", tid, err)
	}
	links := map[string]string{}
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("thread %d: read its %s namespace: %w", tid, e.Name(), err)
		}
		links[e.Name()] = l
	}
	return links, nil
}

// checkTracees refuses a dumped thread that traces a task outside the
// dump: ptrace(2) attachments end with the dump (the tracer is killed or
// let go, which detaches its tracees: kernel/ptrace.c exit_ptrace) and
// nothing recreates them. TracerPid in every other task's status names
// its tracer (man 5 proc); the dumped threads themselves show gocr.
// Kernel threads found before the freeze and alive since are not read
// (kernelThreads). dumped maps every dumped thread to its process
// (dumpedThreads).
func checkTracees(dumped map[int]int, kthreads *kernelThreads) error {
	skip := kthreads.alive()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	traced := func(pid, tid, tracer int) error {
		owner, ok := dumped[tracer]
		if !ok {
			return nil
		}
		var name string
		if st, err := proc.ReadStatus(tid); err == nil {
			name = st.Name
		}
		return fmt.Errorf("pid %d traces pid %d (%s, thread %d), which is outside the dump: gocr cannot restore the trace", owner, pid, name, tid)
	}
	// Read while the processes are frozen, for every task of the
	// machine: only the lines needed, and a process's other threads
	// only where it has any (kernel threads, most tasks of a machine,
	// have none).
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, in := dumped[pid]; in || skip[pid] {
			continue
		}
		tracer, threads, err := proc.ReadTracerPid(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if err := traced(pid, pid, tracer); err != nil {
			return err
		}
		if threads == 1 {
			continue
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue // gone meanwhile
		}
		for _, te := range tasks {
			tid, err := strconv.Atoi(te.Name())
			if err != nil || tid == pid {
				continue
			}
			if _, in := dumped[tid]; in {
				continue
			}
			if tracer, _, err := proc.ReadTracerPid(tid); err == nil {
				if err := traced(pid, tid, tracer); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dumpedThreads maps every thread of the tree to its process.
func (tr *frozenTree) dumpedThreads() map[int]int {
	dumped := map[int]int{}
	for _, fp := range tr.procs {
		dumped[fp.pid] = fp.pid
		for _, tid := range fp.tids {
			dumped[tid] = fp.pid
		}
	}
	return dumped
}
