//go:build linux

package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/ipc"
	"github.com/gocr/gocr/proc"
)

// collectSysvIpc records the System V IPC objects (man 7 sysvipc) the
// frozen job uses. They belong to the IPC namespace, not to a process,
// so which are the job's is decided here:
//   - a shared memory segment attached by a process of the dump, which
//     must be attached by no process outside it (its nattch is the
//     dump's attachments), so its contents are the job's and stay still
//     while it is frozen;
//   - a semaphore set one of whose semaphores a process of the dump
//     changed last (semctl GETPID, man 2 semctl);
//   - a message queue a process of the dump sent to or received from
//     last (msg_lspid, msg_lrpid, man 2 msgctl).
//
// Objects the job created but does not use that way are not told apart
// from anyone else's and are left alone (docs/STATE.md). A process that
// may hold semaphore undo adjustments is refused (checkSemUndo).
func collectSysvIpc(dir *images.Dir, states []*state, tables *sysvTables) (*gocrpb.SysvIpc, error) {
	pids := map[int32]bool{}
	attached := map[int32][]attachment{}
	for _, st := range states {
		if st.mm == nil {
			continue
		}
		pids[st.task.Pid] = true
		for _, v := range st.mm.Vmas {
			if v.Kind == gocrpb.VmaKind_VMA_SYSV_SHM {
				attached[v.SysvShmId] = append(attached[v.SysvShmId], attachment{pid: int(st.task.Pid), vma: v})
			}
		}
	}
	sems, err := tables.sem, tables.semErr
	if err != nil {
		return nil, err
	}
	if err := checkSemUndo(states, sems); err != nil {
		return nil, err
	}
	out := &gocrpb.SysvIpc{}
	if len(attached) > 0 {
		segs, err := tables.shm, tables.shmErr
		if err != nil {
			return nil, err
		}
		for _, s := range segs {
			if a := attached[s.ID]; a != nil {
				shm, err := dumpShm(dir, s, a)
				if err != nil {
					return nil, fmt.Errorf("System V shared memory segment %d: %w", s.ID, err)
				}
				out.Shm = append(out.Shm, shm)
				delete(attached, s.ID)
			}
		}
		for id, a := range attached {
			return nil, fmt.Errorf("pid %d mapping %s: System V segment %d is not in /proc/sysvipc/shm (another IPC namespace?)", a[0].pid, vmaName(a[0].vma), id)
		}
	}
	for _, s := range sems {
		sem, err := dumpSem(s, pids)
		if err != nil {
			return nil, fmt.Errorf("System V semaphore set %d: %w", s.ID, err)
		}
		if sem != nil {
			out.Sem = append(out.Sem, sem)
		}
	}
	queues, err := tables.msg, tables.msgErr
	if err != nil {
		return nil, err
	}
	for _, q := range queues {
		if !pids[q.Lspid] && !pids[q.Lrpid] {
			continue
		}
		m, err := dumpMsgQueue(q)
		if err != nil {
			return nil, fmt.Errorf("System V message queue %d: %w", q.ID, err)
		}
		out.Msg = append(out.Msg, m)
	}
	if len(out.Shm)+len(out.Sem)+len(out.Msg) == 0 {
		return nil, nil
	}
	return out, nil
}

// sysvTables are the machine's System V IPC objects as /proc/sysvipc
// lists them, read once the job is frozen (beside.go): a list's error
// counts only where collectSysvIpc needs that list. Only the job's
// objects are recorded from them, and the job, frozen, changes none of
// those meanwhile.
type sysvTables struct {
	shm, sem, msg          []proc.SysvObject
	shmErr, semErr, msgErr error
}

type attachment struct {
	pid int
	vma *gocrpb.Vma
}

func permOf(o proc.SysvObject) *gocrpb.IpcPerm {
	return &gocrpb.IpcPerm{Key: o.Key, Id: o.ID, Uid: o.UID, Gid: o.GID, Cuid: o.CUID, Cgid: o.CGID, Mode: o.Mode & 0o777}
}

// dumpShm records segment s, attached by the dump as a says, and saves
// its contents to shm-ID.img.
func dumpShm(dir *images.Dir, s proc.SysvObject, as []attachment) (*gocrpb.SysvShm, error) {
	if uint64(len(as)) != s.Nattch {
		return nil, fmt.Errorf("attached %d times, %d of them by the dump: a process outside the dump uses it", s.Nattch, len(as))
	}
	shm := &gocrpb.SysvShm{Perm: permOf(s), Size: s.Size, Removed: s.Mode&ipc.ShmDest != 0, Locked: s.Mode&ipc.ShmLocked != 0}
	whole := (s.Size + pageSize - 1) &^ (pageSize - 1)
	for _, a := range as {
		// shmat maps the whole segment (ipc/shm.c do_shmat); a part
		// unmapped or mprotected since splits the attachment, which
		// one shmat cannot make again.
		if a.vma.Pgoff != 0 || a.vma.End-a.vma.Start != whole {
			return nil, fmt.Errorf("pid %d mapping %s maps part of the segment (%d bytes): only whole attachments are restored", a.pid, vmaName(a.vma), s.Size)
		}
		// The mapping's name keeps the key the segment was made with,
		// even once IPC_RMID has made its key IPC_PRIVATE (ipc/shm.c
		// newseg names it "SYSV%08x"; do_shm_rmid).
		hex, ok := strings.CutPrefix(strings.TrimSuffix(a.vma.Name, " (deleted)"), "/SYSV")
		key, err := strconv.ParseUint(hex, 16, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("pid %d mapping %s: not a System V segment's name", a.pid, vmaName(a.vma))
		}
		if !shm.Removed && int32(key) != s.Key {
			return nil, fmt.Errorf("pid %d mapping %s names key %#x, the segment has %#x", a.pid, vmaName(a.vma), key, uint32(s.Key))
		}
		shm.Perm.Key = int32(key)
	}
	// map_files opens the segment's own file without attaching it, so
	// its shm_atime and shm_lpid stay as they were (man 5 proc).
	a := as[0]
	f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", a.pid, a.vma.Start, a.vma.End))
	if err != nil {
		return nil, fmt.Errorf("open its contents: %w", err)
	}
	defer f.Close()
	out, err := dir.CreateSysvShm(uint64(s.ID))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if err := copyExtents(out, images.PagesDataOffset, f, int64(s.Size)); err != nil {
		return nil, fmt.Errorf("save its contents: %w", err)
	}
	if err := images.FinishPages(out, int64(s.Size)); err != nil {
		return nil, err
	}
	return shm, nil
}

// copyExtents copies the first size bytes of src, a tmpfs file, to dst
// at base: only its data extents (lseek SEEK_DATA/SEEK_HOLE, man 2
// lseek), so pages never touched stay holes. dst is then size long.
func copyExtents(dst *os.File, base int64, src *os.File, size int64) error {
	fd := int(src.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("SEEK_DATA: %w", err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("SEEK_HOLE: %w", err)
		}
		hole = min(hole, size)
		if _, err := io.Copy(io.NewOffsetWriter(dst, base+data), io.NewSectionReader(src, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return dst.Truncate(base + size)
}

// dumpSem records set s if a process of the dump changed one of its
// semaphores last, or returns nil.
func dumpSem(s proc.SysvObject, pids map[int32]bool) (*gocrpb.SysvSem, error) {
	ours := false
	for i := range int(s.Nsems) {
		// semctl GETPID: the last process to change semaphore i
		// (ipc/sem.c semctl_main).
		pid, err := ipc.SemGetPid(int(s.ID), i)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) {
			// Removed since /proc/sysvipc/sem listed it (man 2
			// semctl): not the job's to restore.
			return nil, nil
		}
		if errors.Is(err, unix.EACCES) && i == 0 {
			// Not readable by gocr's user, which is the job's when
			// not root: left to the namespace, as a set someone else
			// used last is (checkSemUndo still looks at it).
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("GETPID of semaphore %d: %w", i, err)
		}
		if pids[int32(pid)] {
			ours = true
			break
		}
	}
	if !ours {
		return nil, nil
	}
	vals, err := ipc.SemGetAll(int(s.ID), int(s.Nsems))
	if err != nil {
		return nil, fmt.Errorf("GETALL: %w", err)
	}
	sem := &gocrpb.SysvSem{Perm: permOf(s)}
	for _, v := range vals {
		sem.Values = append(sem.Values, uint32(v))
	}
	return sem, nil
}

// dumpMsgQueue records queue q and every message in it, in order, read
// with MSG_COPY, which copies a message without taking it from the queue
// nor recording a receiver (ipc/msg.c do_msgrcv; man 2 msgop). It needs
// CONFIG_CHECKPOINT_RESTORE, without which msgrcv ignores the flag and
// would take the message: a kernel that does so is caught by the count.
func dumpMsgQueue(q proc.SysvObject) (*gocrpb.SysvMsgQueue, error) {
	ds, err := ipc.MsgStat(int(q.ID))
	if err != nil {
		return nil, fmt.Errorf("IPC_STAT: %w", err)
	}
	m := &gocrpb.SysvMsgQueue{Perm: permOf(q), Qbytes: ds.Qbytes}
	// No message is larger than its queue's msg_qbytes (ipc/msg.c
	// do_msgsnd).
	buf := make([]byte, 8+max(ds.Qbytes, 1))
	for i := range ds.Qnum {
		typ, n, err := ipc.MsgRecv(int(q.ID), buf, int64(i), ipc.IPCNowait|ipc.MsgCopy)
		if err != nil {
			return nil, fmt.Errorf("read message %d of %d (msgrcv MSG_COPY): %w", i, ds.Qnum, err)
		}
		m.Messages = append(m.Messages, &gocrpb.SysvMsg{Type: typ, Text: slices.Clone(buf[8 : 8+n])})
	}
	after, err := ipc.MsgStat(int(q.ID))
	if err != nil {
		return nil, fmt.Errorf("IPC_STAT: %w", err)
	}
	if after.Qnum != ds.Qnum || after.Cbytes != ds.Cbytes || after.Lrpid != ds.Lrpid {
		return nil, fmt.Errorf("changed while it was read (%d messages, then %d): used by a process outside the dump, or MSG_COPY is not supported (CONFIG_CHECKPOINT_RESTORE)", ds.Qnum, after.Qnum)
	}
	return m, nil
}

// checkSemUndo refuses a process that may hold System V semaphore undo
// adjustments (SEM_UNDO, man 2 semop): no interface reads them, and the
// dump's end applies them (ipc/sem.c exit_sem), so the restored process
// would believe it holds what it does not. Adjustments belong to a set
// and go with it (ipc/sem.c freeary), and only a process that may alter
// a set makes them (semop checks, ipc/util.c ipcperms), so only a process
// that may alter one of the namespace's sets now is looked at. What kcmp
// shows is whether it has an undo list, which a process also gets by
// making a thread (ipc/sem.c copy_semundo, CLONE_SYSVSEM): such processes
// are refused too, as no interface tells an empty list from one with
// adjustments. The process without a list to compare with is one gocr
// starts and lets exit, unreaped: exit_sem has dropped its list.
//
// A set no semop changed since the process started (sem_otime, set by
// every semop, ipc/sem.c do_semtimedop; 0 if none ever did) holds no
// adjustment of the process's: its threads share its list (CLONE_SYSVSEM)
// and are younger, and fork gives a child no list (copy_semundo). Only a
// process made by clone(CLONE_SYSVSEM) without CLONE_THREAD shares an
// older process's list; it is told by its list being its parent's (kcmp),
// and judged by the oldest such ancestor's start; should that creator
// have exited, what it left in the list is not seen (docs/STATE.md).
func checkSemUndo(states []*state, sems []proc.SysvObject) error {
	// No set any semop changed, none holds an adjustment: nothing to
	// read (the processes' start times, their parents') while frozen.
	if !slices.ContainsFunc(sems, func(s proc.SysvObject) bool { return s.Otime != 0 }) {
		return nil
	}
	btime, err := proc.BootTime()
	if err != nil {
		return err
	}
	var suspects []int32
	for _, st := range states {
		if st.mm == nil {
			continue
		}
		start, err := listStart(int(st.task.Pid), btime)
		if err != nil {
			return err
		}
		for _, s := range sems {
			// Whole seconds on both sides: one second of margin.
			if s.Otime == 0 || s.Otime+1 < start {
				continue
			}
			if mayAlter(st.task.Creds, s) {
				suspects = append(suspects, st.task.Pid)
				break
			}
		}
	}
	if len(suspects) == 0 {
		return nil
	}
	ref := exec.Command("/proc/self/exe", "--version")
	ref.Args[0] = "gocr-semundo-reference"
	if err := ref.Start(); err != nil {
		return fmt.Errorf("start a process to compare semaphore undo lists with: %w", err)
	}
	defer ref.Wait()
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, ref.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		return fmt.Errorf("wait for the semaphore undo reference: %w", err)
	}
	for _, pid := range suspects {
		none, err := ipc.SameSemUndo(ref.Process.Pid, int(pid))
		if err != nil {
			return fmt.Errorf("pid %d: look for System V semaphore undo adjustments (kcmp KCMP_SYSVSEM): %w", pid, err)
		}
		if !none {
			return fmt.Errorf("pid %d may hold System V semaphore undo adjustments (SEM_UNDO), which cannot be read: it has an undo list, as a process gets by semop with SEM_UNDO or by making threads, and may alter System V semaphore sets", pid)
		}
	}
	return nil
}

// listStart is when, in seconds since the epoch, pid's semaphore undo
// list may have got its first adjustment: pid's start, or that of the
// oldest of its ancestors that shares the list with it (kcmp
// KCMP_SYSVSEM).
func listStart(pid int, btime int64) (int64, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	for st.PPid > 1 {
		parent, err := proc.ReadStat(st.PPid)
		if err != nil {
			break // gone: judged by the oldest one still there
		}
		same, err := ipc.SameSemUndo(st.PPid, pid)
		if err != nil || !same {
			break
		}
		st = parent
	}
	return btime + int64(st.StartTime/userHz), nil
}

// userHz is the clock tick of /proc/PID/stat's times (man 5 proc:
// sysconf(_SC_CLK_TCK), USER_HZ, 100 on x86-64).
const userHz = 100

// capIPCOwner is CAP_IPC_OWNER (include/uapi/linux/capability.h).
const capIPCOwner = 15

// mayAlter tells whether a process with creds may alter semaphore set s
// (ipc/util.c ipcperms: the owner's or creator's bits, then the group's,
// then the others'; or CAP_IPC_OWNER).
func mayAlter(c *gocrpb.Creds, s proc.SysvObject) bool {
	if c == nil || c.CapEff&(1<<capIPCOwner) != 0 {
		return true
	}
	bits := s.Mode
	switch {
	case c.Euid == s.UID || c.Euid == s.CUID:
		bits >>= 6
	case c.Egid == s.GID || c.Egid == s.CGID || slices.Contains(c.Groups, s.GID) || slices.Contains(c.Groups, s.CGID):
		bits >>= 3
	}
	return bits&0o2 != 0
}
