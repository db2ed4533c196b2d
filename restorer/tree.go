//go:build linux

package restorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// tree is the process table handed to the restorer.
type tree struct {
	procs []rstProc
	// pidfdSock is the source the restorer hands every new process's
	// pidfd to gocr through (created).
	pidfdSock int32
	flags     uint32 // rstTree*
	// The offsets of the time namespace made with rstTreeTimens.
	timensMonotonicNs int64
	timensBoottimeNs  int64
}

// useTimeNamespace has the restorer make the job's time namespace, if
// it needs one.
func (t *tree) useTimeNamespace(ns *timeNamespace) {
	if ns.make {
		t.flags |= rstTreeTimens
		t.timensMonotonicNs, t.timensBoottimeNs = ns.monotonicNs, ns.boottimeNs
	}
}

// buildTree orders the processes (parents first, as the inventory lists
// them) and works out how each gets its session and process group: a
// session or group led by a process of the dump is recreated by its
// leader; the root's, when led from outside (the shell that started the
// job), is the one gocr runs in, inherited by the root and inherited or
// joined by the others in it. The dump refuses any other group or
// session led from outside (dump/groups.go).
func buildTree(procs []*proc) (*tree, error) {
	t := &tree{}
	in := map[int32]bool{}
	for _, pr := range procs {
		in[pr.task.Pid] = true
	}
	for _, pr := range procs {
		task := pr.task
		rp := rstProc{Pid: task.Pid, Parent: -1, Pgid: task.Pgid, ExitStatus: task.ExitStatus, ExitSignal: uint32(unix.SIGCHLD), CttyFd: -1}
		if task.ExitSignal != nil {
			rp.ExitSignal = task.GetExitSignal()
		}
		if task.Zombie {
			rp.Zombie = 1
			copy(rp.Comm[:len(rp.Comm)-1], strings.Trim(task.Comm, "()"))
		}
		var parent *gocrpb.Task
		if pr.parent != nil {
			rp.Parent = int32(pr.parent.index)
			parent = pr.parent.task
			// Cloned again with the flag its own clone had: its
			// parent's restorer clones it (restorer.c run_proc).
			if task.SharesParentFiles {
				rp.Flags |= rstProcShareFiles
			}
			if task.SharesParentFs {
				rp.Flags |= rstProcShareFs
			}
		}
		switch {
		case task.Sid == task.Pid:
			rp.Flags |= rstProcSetsid
		case parent != nil && task.Sid != parent.Sid:
			return nil, fmt.Errorf("pid %d is in session %d, its parent %d in session %d: not supported", task.Pid, task.Sid, parent.Pid, parent.Sid)
		}
		switch {
		case task.Pgid == task.Pid && task.Sid != task.Pid:
			rp.Flags |= rstProcSetpgid
		case task.Pgid == task.Pid:
		case in[task.Pgid]:
			rp.Flags |= rstProcJoinPgid
		case parent != nil && task.Pgid == parent.Pgid:
		case parent != nil && task.Pgid == procs[0].task.Pgid:
			// The root's group, led from outside the dump: the root
			// keeps the one it inherits, and this process joins it.
			rp.Flags |= rstProcJoinRootPgid
			rp.Pgid = procs[0].task.Pid
		case parent != nil:
			return nil, fmt.Errorf("pid %d is in process group %d, led from outside the dump: not supported", task.Pid, task.Pgid)
		}
		t.procs = append(t.procs, rp)
	}
	leadRootGroup(t)
	sharers := map[int32]int{}
	for _, rp := range t.procs {
		if rp.Flags&(rstProcShareFiles|rstProcShareFs) == 0 {
			continue
		}
		if sharers[rp.Parent]++; sharers[rp.Parent] == rstSharersMax+1 {
			return nil, fmt.Errorf("pid %d has more than %d children sharing its fd table or cwd, root and umask: not supported", t.procs[rp.Parent].Pid, rstSharersMax)
		}
	}
	return t, nil
}

// encode lays out the tree header, the process table and every plan.
func (t *tree) encode(procs []*proc) ([]byte, error) {
	hdr := binary.Size(rstTree{})
	tableOff := hdr
	off := pageAlign(uint64(tableOff + len(t.procs)*binary.Size(rstProc{})))
	var plans [][]byte
	for i, pr := range procs {
		if pr.plan == nil {
			continue
		}
		if err := checkSharedTableLocks(pr); err != nil {
			return nil, err
		}
		b, err := pr.plan.encode()
		if err != nil {
			return nil, err
		}
		t.procs[i].PlanOff = uint32(off)
		t.procs[i].CttyFd = pr.plan.cttyFd
		pr.plan.offset = uint32(off)
		plans = append(plans, b)
		off += uint64(len(b))
	}
	total := off
	if total > 1<<31 {
		return nil, fmt.Errorf("restore plan of %d bytes is too large", total)
	}
	out := make([]byte, total)
	var head bytes.Buffer
	binary.Write(&head, binary.LittleEndian, rstTree{
		Magic: rstTreeMagic, Version: rstVersion, Size: uint32(total),
		NrProcs: uint32(len(t.procs)), ProcsOff: uint32(tableOff), PidfdSock: t.pidfdSock, Flags: t.flags,
		TimensMonotonicNs: t.timensMonotonicNs, TimensBoottimeNs: t.timensBoottimeNs,
	})
	binary.Write(&head, binary.LittleEndian, t.procs)
	copy(out, head.Bytes())
	pi := 0
	for i := range procs {
		if procs[i].plan == nil {
			continue
		}
		b := plans[pi]
		pi++
		// Each plan records the size of the whole mapping it lives in:
		// the restorer moves all of it.
		binary.LittleEndian.PutUint32(b[offSize:], uint32(total))
		copy(out[t.procs[i].PlanOff:], b)
	}
	return out, nil
}

// checkSharedTableLocks refuses a POSIX lock the dump found held by a
// process sharing its parent's fd table (the dump refuses it already in
// the parent's fdinfo, files/locks.go dumpLocks): the table and everything
// in it is put in place by the parent alone (restorer.c restore_fds), and
// a POSIX lock, whose owner is the fd table (fs/locks.c, fl_owner is
// current->files) and which any close in it of the file releases
// (fs/open.c filp_close, locks_remove_posix), must be taken after the
// parent's last close, where the child has no step.
func checkSharedTableLocks(pr *proc) error {
	if !pr.task.SharesParentFiles {
		return nil
	}
	for _, fx := range pr.plan.fixups {
		if fx.Op == rstFixupPosixLock {
			return fmt.Errorf("pid %d shares its parent's fd table and holds a POSIX lock on fd %d: gocr cannot restore that", pr.task.Pid, fx.Fd)
		}
	}
	return nil
}

// checkDetachedStops refuses a restore with -d that would leave a stopped
// process in a process group orphaned by gocr's exit: when a process
// exits, the kernel sends SIGHUP, then SIGCONT, to every process group its
// exit orphans (no member left with a parent in another group of the same
// session) that has a stopped member (kernel/exit.c kill_orphaned_pgrp;
// POSIX.1 "orphaned process group"), so the job would be hung up or run on
// instead of staying stopped. The restored root is gocr's child, and its
// group is one of:
//   - a session of its own: gocr is in another session, nothing to orphan;
//   - a group of its own in gocr's session, which gocr's exit orphans
//     unless another of its processes has its parent in another group;
//   - gocr's own group (led from outside the dump), orphaned by gocr's
//     exit only if gocr's parent is in another group of the session and
//     nothing else holds the group to the session.
//
// The root's new parent after gocr (init, or a subreaper) is taken as
// holding nothing.
func checkDetachedStops(procs []*proc) error {
	root := procs[0].task
	if root.Sid == root.Pid {
		return nil
	}
	var stopped *gocrpb.Task
	for _, pr := range procs {
		t := pr.task
		if t.Zombie || t.Pgid != root.Pgid {
			continue
		}
		if pr.parent != nil && pr.parent.task.Pgid != t.Pgid {
			return nil // held by its parent, in the session (buildTree)
		}
		if t.StopSignal != 0 && stopped == nil {
			stopped = t
		}
	}
	if stopped == nil {
		return nil
	}
	if root.Pgid != root.Pid {
		held, err := ownGroupHeld()
		if err != nil || held {
			return err
		}
	}
	return fmt.Errorf("pid %d is stopped, in a process group that gocr restore -d would orphan by exiting, and the kernel then sends SIGHUP and SIGCONT to the group: restore it without -d (gocr then stays its parent)", stopped.Pid)
}

// ownGroupHeld tells whether gocr's exit leaves its own process group
// unorphaned: gocr's parent is in the same group or another session (the
// kernel then does not check, kernel/exit.c kill_orphaned_pgrp), or
// another member has its parent in another group of the session.
func ownGroupHeld() (bool, error) {
	self, err := procfs.ReadStat(os.Getpid())
	if err != nil {
		return false, err
	}
	parent, err := procfs.ReadStat(self.PPid)
	if err != nil {
		return false, err
	}
	if parent.Pgrp == self.Pgrp || parent.Session != self.Session {
		return true, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self.Pid {
			continue
		}
		st, err := procfs.ReadStat(pid)
		if err != nil || st.Pgrp != self.Pgrp || st.State == 'Z' || st.PPid <= 1 {
			continue
		}
		pp, err := procfs.ReadStat(st.PPid)
		if err == nil && pp.Pgrp != self.Pgrp && pp.Session == self.Session {
			return true, nil
		}
	}
	return false, nil
}

// leadRootGroup gives the root a process group of its own when others
// must join its group led from outside the dump and the group it would
// inherit from gocr restore is 0: a process the kernel started (a
// usermode helper, init's children before they setsid) is in group 0,
// which no process can join, as setpgid(2) takes a pgid of 0 for the
// caller's PID. Group 0 is no group to keep; a root leading its own
// keeps the processes of its group together (noteOutsideGroup says so).
func leadRootGroup(t *tree) {
	if len(t.procs) == 0 || unix.Getpgrp() != 0 {
		return
	}
	for _, rp := range t.procs {
		if rp.Flags&rstProcJoinRootPgid != 0 {
			t.procs[0].Flags |= rstProcSetpgid
			return
		}
	}
}

// checkOutsideGroupJoin refuses, for a restore in a new PID namespace, a
// process that must join the root's group led from outside the dump:
// setpgid(2) finds the group by its id in the caller's namespace
// (kernel/sys.c setpgid, find_vpid), where a group outside it has none.
func checkOutsideGroupJoin(t *tree) error {
	for _, rp := range t.procs {
		if rp.Flags&rstProcJoinRootPgid != 0 {
			return fmt.Errorf("pid %d is in the process group of pid %d, led from outside the dump, which no process in a new PID namespace can join: restore it without --pidns, its PIDs free", rp.Pid, rp.Pgid)
		}
	}
	return nil
}

// noteOutsideGroup says in one line on stderr when the root's process
// group or session was led from outside the dump (the shell that started
// the job) and it comes back in another: such a group or session cannot
// be made again, so the root joins the ones gocr restore runs in
// (buildTree), and getpgrp(2), getsid(2) and a kill(2) of the old group
// see the change. In a new PID namespace those are outside it, and the
// root sees them as 0 (man 7 pid_namespaces).
func noteOutsideGroup(root *gocrpb.Task, pidns, leadsOwn bool) {
	pgid, sid := int32(unix.Getpgrp()), int32(0)
	if s, err := unix.Getsid(0); err == nil {
		sid = int32(s)
	}
	if pidns {
		pgid, sid = 0, 0
	}
	var what []string
	switch {
	case root.Pgid != root.Pid && leadsOwn:
		what = append(what, fmt.Sprintf("process group %d (now its own: others of it join it, and gocr restore's is 0)", root.Pgid))
	case root.Pgid != root.Pid && root.Pgid != pgid:
		what = append(what, fmt.Sprintf("process group %d (now %d)", root.Pgid, pgid))
	}
	if root.Sid != root.Pid && root.Sid != sid {
		what = append(what, fmt.Sprintf("session %d (now %d)", root.Sid, sid))
	}
	if len(what) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "gocr: pid %d was in %s, led from outside the dump: it is restored in gocr restore's own\n", root.Pid, strings.Join(what, " and "))
}
