//go:build linux

package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// A restore in a new PID namespace: the restorer clones a reaper with
// CLONE_NEWPID|CLONE_NEWNS (gocr's child, so gocr waits for it), which is
// PID 1 there, mounts a procfs of the namespace on /proc and creates the
// root with clone3 set_tid naming its PID at the innermost level only;
// each process then forks its children the same way as in gocr's own
// namespace (man 2 clone3, set_tid; kernel/pid.c alloc_pid;
// restorer/c/restorer.c reaper_main). Every PID is free there, so such a
// restore never finds a PID taken. gocr itself sees other PIDs for the
// same processes (the outer level of NSpid, man 5 proc): it finds them
// through the pidfd each process hands over.

// Values of Options.PidNamespace.
const (
	PidnsNever  = "never"
	PidnsAuto   = "auto"
	PidnsAlways = "always"
)

func checkPidnsMode(mode string) error {
	switch mode {
	case "", PidnsNever, PidnsAuto, PidnsAlways:
		return nil
	}
	return fmt.Errorf("unknown --pidns %q: use auto, always or never", mode)
}

// choosePidns says whether the processes are restored in a new PID
// namespace, and otherwise claims their PIDs in gocr's. With auto, a PID
// held by another process (after the few seconds a zombie gets) means a
// new namespace, said in one line on stderr. Images of processes that
// lived in a namespace of their own hold that namespace's PIDs, which
// mean nothing in gocr's.
func choosePidns(ctx context.Context, mode string, inv *gocrpb.Inventory, procs []*proc) (bool, error) {
	switch mode {
	case PidnsAlways:
		return true, nil
	case PidnsAuto:
		if inv.PidNamespace {
			return true, nil
		}
		err := claimPids(ctx, procs)
		var taken *pidTakenError
		if errors.As(err, &taken) {
			fmt.Fprintf(os.Stderr, "gocr: %s: restoring in a new PID namespace, where every process has its dumped PID\n", taken.what())
			return true, nil
		}
		return false, err
	}
	if inv.PidNamespace {
		return false, fmt.Errorf("pid %d and the others lived in a PID namespace of their own, and their PIDs are that namespace's: restore them with --pidns=auto or --pidns=always", inv.RootPid)
	}
	return false, claimPids(ctx, procs)
}

// checkProcPaths refuses an fd on /proc/PID/ of a process outside the
// dump that the restored process, opening its path, would not find
// again: for a restore in a new namespace, any (the new namespace's /proc
// has no such process, or another one under that PID: its init is PID
// 1); otherwise, one whose process has ended since the dump
// (files.CheckOutsideProc).
func checkProcPaths(procs []*proc, pidns bool, inv *gocrpb.Inventory) error {
	// /proc/TID/ of a thread names it as well as /proc/PID/task/TID/.
	in := map[int32]bool{}
	for _, pr := range procs {
		in[pr.task.Pid] = true
		for _, th := range pr.task.Threads {
			in[th.Tid] = true
		}
	}
	for _, pr := range procs {
		for _, fd := range pr.files.GetFds() {
			p := fd.GetPath().GetProcPid()
			if p == 0 || in[p] {
				continue
			}
			if pidns {
				return fmt.Errorf("restore pid %d: fd %d is %s, of a process outside the dump, which a new PID namespace does not have", pr.task.Pid, fd.Fd, fd.File.GetPath())
			}
			boot, err := procfs.BootID()
			if err != nil {
				return err
			}
			if err := files.CheckOutsideProc(fd, inv.GetBootId() == boot); err != nil {
				return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
			}
		}
	}
	return nil
}

// hostPid is the PID gocr sees process idx of the restore by, read from
// its pidfd (man 5 proc_pid_fdinfo: "Pid:", the PID in the namespace of
// the procfs read, gocr's): 0 if its pidfd was not handed over yet, -1
// once it has been reaped.
func (c *created) hostPid(idx int) int {
	fd := c.pidfds[idx]
	if fd < 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0
			}
			return n
		}
	}
	return 0
}

// reaperEnded tells whether the namespace's reaper, gocr's child, has
// exited, reaping it: it ends only with the root (or killed), and the
// kernel then kills the whole namespace (man 7 pid_namespaces).
func (c *created) reaperEnded() (bool, string) {
	pid := c.hostPid(c.reaper)
	if pid <= 0 {
		return false, ""
	}
	var ws unix.WaitStatus
	if wpid, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); wpid == pid {
		return true, "the PID namespace's init ended: " + describeReaper(ws)
	}
	return false, ""
}

// describeReaper says how the reaper ended: it exits with the root's
// status (an exit code, or 128+signal), or was killed itself.
func describeReaper(ws unix.WaitStatus) string {
	if ws.Exited() {
		return fmt.Sprintf("the root ended with status %d", ws.ExitStatus())
	}
	return describeStatus(ws)
}

// hostTids maps the TID of every thread of the restored processes, as
// the namespace numbers it (and the images), to the one gocr sees it by:
// the last of NSpid is the innermost (man 5 proc).
func hostTids(c *created, procs []*proc) (map[int32]int, error) {
	m := map[int32]int{}
	for i, pr := range procs {
		if pr.plan == nil {
			continue
		}
		host := c.hostPid(i)
		if host <= 0 {
			return nil, fmt.Errorf("pid %d: no longer there", pr.task.Pid)
		}
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", host))
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", pr.task.Pid, err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := procfs.ReadStatus(tid)
			if err != nil || len(st.NSpid) < 2 {
				return nil, fmt.Errorf("pid %d: thread %d: no PID in the namespace (%v)", pr.task.Pid, tid, err)
			}
			m[int32(st.NSpid[len(st.NSpid)-1])] = tid
		}
		for _, th := range pr.task.Threads {
			if _, ok := m[th.Tid]; !ok {
				return nil, fmt.Errorf("pid %d: thread %d not found in the namespace", pr.task.Pid, th.Tid)
			}
		}
	}
	return m, nil
}
