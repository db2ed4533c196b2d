//go:build linux

package dump

import (
	"fmt"
	"os"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
)

// A job that gocr restore --pidns put in a PID namespace of its own lives
// under gocr's reaper (PID 1 there, named reaperName), in the reaper's
// mount namespace, which is gocr's with a procfs of the namespace on
// /proc (restorer/c/restorer.c reaper_main). Such a job is dumped with
// the PIDs it sees, the innermost of NSpid (man 5 proc), so that its
// images restore into a new namespace again with the same PIDs; gocr
// still reads /proc and traces it by the PIDs gocr sees.

// reaperName is the reaper's comm (restorer/c/restorer.c reaper_main).
const reaperName = "gocr-pidns"

// pidNamespace is the PID namespace a job lives in, one level below
// gocr's.
type pidNamespace struct {
	init  int // the reaper, by gocr's PID
	depth int // how many PIDs NSpid shows for each of its processes
}

// jobPidNamespace returns nil when pid is in gocr's PID namespace, the
// namespace when it is one a restore of gocr made and nothing in it
// differs from what such a restore makes again, or an error saying why
// it cannot be restored.
func jobPidNamespace(pid int) (*pidNamespace, error) {
	own, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return nil, nil // no PID namespaces in this kernel
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil, fmt.Errorf("read its pid namespace: %w", err)
	}
	if theirs == own {
		return nil, nil
	}
	self, err := proc.ReadStatus(os.Getpid())
	if err != nil {
		return nil, err
	}
	st, err := proc.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	if len(st.NSpid) != len(self.NSpid)+1 {
		return nil, fmt.Errorf("it is in a PID namespace %d levels below gocr's, which gocr cannot restore", len(st.NSpid)-len(self.NSpid))
	}
	// Its init: the ancestor whose PID is 1 in the namespace.
	init := pid
	for {
		s, err := proc.ReadStatus(init)
		if err != nil {
			return nil, fmt.Errorf("find its PID namespace's init: %w", err)
		}
		if s.NSpid[len(s.NSpid)-1] == 1 {
			if s.Name != reaperName {
				return nil, fmt.Errorf("it is in a PID namespace whose init (pid %d, %s) is not gocr's reaper, which gocr cannot restore", init, s.Name)
			}
			break
		}
		if len(s.NSpid) != len(st.NSpid) || s.PPid <= 0 {
			return nil, fmt.Errorf("it is in a PID namespace whose init gocr cannot find")
		}
		init = s.PPid
	}
	if err := checkReaperMounts(pid, init); err != nil {
		return nil, err
	}
	return &pidNamespace{init: init, depth: len(st.NSpid)}, nil
}

// checkReaperMounts: the job must see gocr's mounts and the reaper's
// procfs on /proc, nothing else, as a restore makes them again: its mount
// namespace is the reaper's, whose mounts are gocr's (the same file
// systems at the same places with the same options) and one more, a proc
// on /proc.
func checkReaperMounts(pid, init int) error {
	mine, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return fmt.Errorf("read its mnt namespace: %w", err)
	}
	reapers, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", init))
	if err != nil {
		return fmt.Errorf("read its PID namespace init's mnt namespace: %w", err)
	}
	if mine != reapers {
		return fmt.Errorf("it is in another mnt namespace than its PID namespace's init, which gocr cannot restore")
	}
	own, err := proc.ReadMounts(os.Getpid())
	if err != nil {
		return err
	}
	theirs, err := proc.ReadMounts(init)
	if err != nil {
		return err
	}
	count := map[proc.Mount]int{}
	for _, m := range own {
		count[m]++
	}
	var extra []proc.Mount
	for _, m := range theirs {
		if count[m] > 0 {
			count[m]--
			continue
		}
		extra = append(extra, m)
	}
	if len(extra) != 1 || extra[0].MountPoint != "/proc" || extra[0].FsType != "proc" {
		for _, m := range extra {
			if m.MountPoint != "/proc" || m.FsType != "proc" {
				return fmt.Errorf("its mount namespace has %s mounted on %s, which gocr's has not: gocr cannot restore it", m.FsType, m.MountPoint)
			}
		}
		return fmt.Errorf("its mount namespace differs from gocr's by more than its /proc: gocr cannot restore it")
	}
	for m, n := range count {
		if n > 0 {
			return fmt.Errorf("gocr's mount namespace has %s mounted on %s, which the job's has not: gocr cannot restore it", m.FsType, m.MountPoint)
		}
	}
	return nil
}

// pidTranslation maps the PIDs gocr sees the processes of a job in its
// own PID namespace by to the ones the job sees.
type pidTranslation struct {
	ns    *pidNamespace
	known map[int32]int32
}

// newPidTranslation reads the namespace PID of every process and thread
// of the frozen tree.
func newPidTranslation(ns *pidNamespace, tree *frozenTree) (*pidTranslation, error) {
	tr := &pidTranslation{ns: ns, known: map[int32]int32{int32(ns.init): 1}}
	for _, fp := range tree.procs {
		for _, id := range append([]int{fp.pid}, fp.tids...) {
			st, err := proc.ReadStatus(id)
			if err != nil {
				return nil, fmt.Errorf("pid %d: %w", id, err)
			}
			if len(st.NSpid) != ns.depth {
				return nil, fmt.Errorf("pid %d (%s) is not in the PID namespace of the others (NSpid %v), which gocr cannot restore", id, st.Name, st.NSpid)
			}
			tr.known[int32(id)] = int32(st.NSpid[len(st.NSpid)-1])
		}
	}
	return tr, nil
}

// of is the PID the job sees for the one gocr sees, 0 for a process it
// cannot see (outside its namespace: getpgrp(2) and getsid(2) give 0 for
// a group or session led from there, man 7 pid_namespaces).
func (tr *pidTranslation) of(id int32) int32 {
	if id <= 0 {
		return id
	}
	if n, ok := tr.known[id]; ok {
		return n
	}
	n := int32(0)
	if st, err := proc.ReadStatus(int(id)); err == nil && len(st.NSpid) == tr.ns.depth {
		n = int32(st.NSpid[len(st.NSpid)-1])
	}
	tr.known[id] = n
	return n
}

// apply rewrites every PID the images record (docs/STATE.md): each
// process's own, its parent, group and session, its threads' TIDs, the
// thread its POSIX timers notify, and in its fds the process sharing one
// and the one that took a flock lock. The signal information of pending
// signals needs nothing: the kernel stores a sender's PID as the
// receiver's namespace numbers it (kernel/signal.c __send_signal_locked).
func (tr *pidTranslation) apply(states []*state) error {
	for _, st := range states {
		t := st.task
		t.Pid, t.Ppid, t.Pgid, t.Sid = tr.of(t.Pid), tr.of(t.Ppid), tr.of(t.Pgid), tr.of(t.Sid)
		for _, th := range t.Threads {
			th.Tid = tr.of(th.Tid)
		}
		for _, pt := range t.PosixTimers {
			if pt.NotifyTid == 0 {
				continue
			}
			if pt.NotifyTid = tr.of(pt.NotifyTid); pt.NotifyTid == 0 {
				return fmt.Errorf("pid %d: POSIX timer %d notifies a thread outside its PID namespace", t.Pid, pt.Id)
			}
		}
		if st.mm != nil {
			st.mm.Pid = t.Pid
		}
		if st.files == nil {
			continue
		}
		st.files.Pid = t.Pid
		for _, fd := range st.files.Fds {
			if fd.SharedPid != 0 {
				fd.SharedPid = tr.of(fd.SharedPid)
			}
			for _, w := range fd.GetEpoll().GetWatches() {
				if w.FileElsewhere {
					w.FilePid = tr.of(w.FilePid)
				}
			}
			// A connection not yet accepted names the process holding
			// its client, in the dump (files.holderCred); the peer
			// credentials are the namespace's already
			// (peerPidsInNamespace).
			if c := fd.GetUnixSocket().GetConnectorCred(); c.GetPid() != 0 {
				c.Pid = tr.of(c.Pid)
			}
			for _, l := range fd.Locks {
				l.Pid = tr.of(l.Pid)
			}
		}
	}
	return nil
}

// imagePid is the PID pid's images are named by.
func (tr *pidTranslation) imagePid(pid int) int {
	if tr == nil {
		return pid
	}
	return int(tr.of(int32(pid)))
}

// peerPidsInNamespace replaces the pid of each unix socket's peer
// credentials in table with the one the job sees, read by the parasite
// inside it: SO_PEERCRED numbers a pid as the reader's PID namespace does
// (net/core/sock.c cred_to_ucred, pid_vnr), and the process it names has
// often ended (each call of a restore's is made by a process that exits,
// restorer/peercred.go), so that gocr could not translate its own number
// through /proc.
func peerPidsInNamespace(p *parasite.Parasite, table *gocrpb.Files) error {
	var fds []int32
	var creds []*gocrpb.UnixPeerCred
	for _, fd := range table.GetFds() {
		if c := fd.GetUnixSocket().GetPeerCred(); c.GetPid() != 0 {
			fds = append(fds, fd.Fd)
			creds = append(creds, c)
		}
	}
	if len(fds) == 0 {
		return nil
	}
	pids, err := p.PeerPids(fds)
	if err != nil {
		return err
	}
	for i, c := range creds {
		if pids[i] == 0 {
			return fmt.Errorf("fd %d: its peer credentials (SO_PEERCRED) name pid %d, outside its PID namespace, which gocr cannot restore", fds[i], c.Pid)
		}
		c.Pid = pids[i]
	}
	return nil
}
