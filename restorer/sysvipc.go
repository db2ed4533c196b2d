//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/ipc"
	procfs "github.com/gocr/gocr/proc"
)

// sysvObjects are the System V IPC objects a restore made, or found left
// behind by the dumped job, before the processes that use them exist.
// Each gets its dumped id: the id is what the job holds, so it must be
// the same (dump/sysvipc.go says which objects are the job's).
//
// An object already at its id that has the dumped key, creator and shape
// (size, number of semaphores) is the job's own, left behind when the
// dump ended the job: System V objects outlive their processes (man 7
// sysvipc), and an id is not given again until its slot's sequence
// number wraps (ipc/util.c ipc_addid, ipc_buildid). It is set back to its
// dumped state; a segment still attached by anyone is not. Any other
// object at the id, or at the key, fails the restore in one line.
type sysvObjects struct {
	// remove undoes what this restore created, newest first.
	remove []func()
	// held are gocr's own attachments of segments the job had removed
	// (IPC_RMID) while attached: they keep such a segment alive until
	// the restored processes have attached it (detach).
	held [][]byte
}

// makeSysvIpc makes every object of s, or finds it left behind.
// Segments removed while attached are made first, since a segment the
// job made later may have taken their key.
func makeSysvIpc(dir *images.Dir, s *gocrpb.SysvIpc) (_ *sysvObjects, err error) {
	o := &sysvObjects{}
	if s == nil {
		return o, nil
	}
	defer func() {
		if err != nil {
			o.undo()
		}
	}()
	for _, removed := range []bool{true, false} {
		for _, shm := range s.Shm {
			if shm.Removed != removed {
				continue
			}
			if err := o.makeShm(dir, shm); err != nil {
				return nil, fmt.Errorf("restore System V shared memory segment %d (key %#x): %w", shm.Perm.GetId(), uint32(shm.Perm.GetKey()), err)
			}
		}
	}
	for _, sem := range s.Sem {
		if err := o.makeSem(sem); err != nil {
			return nil, fmt.Errorf("restore System V semaphore set %d (key %#x): %w", sem.Perm.GetId(), uint32(sem.Perm.GetKey()), err)
		}
	}
	for _, q := range s.Msg {
		if err := o.makeMsg(q); err != nil {
			return nil, fmt.Errorf("restore System V message queue %d (key %#x): %w", q.Perm.GetId(), uint32(q.Perm.GetKey()), err)
		}
	}
	return o, nil
}

// detach lets go of gocr's attachments, once every restored process has
// attached its segments: a segment removed while attached then lives as
// long as the job's attachments, as it did.
func (o *sysvObjects) detach() {
	for _, b := range o.held {
		unix.SysvShmDetach(b)
	}
	o.held = nil
}

// undo removes what this restore created, and nothing else.
func (o *sysvObjects) undo() {
	o.detach()
	for i := len(o.remove) - 1; i >= 0; i-- {
		o.remove[i]()
	}
	o.remove = nil
}

// existing finds the object at id and at key in rows (/proc/sysvipc).
func existing(rows []procfs.SysvObject, id, key int32) (atID, atKey *procfs.SysvObject) {
	for i := range rows {
		if rows[i].ID == id {
			atID = &rows[i]
		}
		if key != 0 && rows[i].Key == key {
			atKey = &rows[i]
		}
	}
	return atID, atKey
}

// whose names an object for a message.
func whose(o *procfs.SysvObject) string {
	return fmt.Sprintf("id %d, key %#x, made by uid %d, owned by uid %d", o.ID, uint32(o.Key), o.CUID, o.UID)
}

// claim decides whether the object the image describes is made anew (it
// returns nil) or is the job's own left behind (it returns it), or is
// taken by another object (an error).
func claim(kind string, rows []procfs.SysvObject, p *gocrpb.IpcPerm, removed bool, same func(*procfs.SysvObject) bool) (*procfs.SysvObject, error) {
	atID, atKey := existing(rows, p.Id, p.Key)
	if removed {
		// Its key is the job's no more: another object may have it.
		atKey = nil
	}
	if atID != nil {
		if !removed && atID.Key == p.Key && atID.CUID == p.Cuid && atID.CGID == p.Cgid && same(atID) {
			return atID, nil
		}
		return nil, fmt.Errorf("its id is taken by another %s (%s)", kind, whose(atID))
	}
	if atKey != nil {
		return nil, fmt.Errorf("its key is taken by another %s (%s)", kind, whose(atKey))
	}
	return nil, nil
}

// withNextID runs create, the get call that makes an object, with the
// IPC namespace's next_id sysctl set to id, so the object gets that id
// (man 5 proc, /proc/sys/kernel/{shm,sem,msg}_next_id; ipc/util.c
// ipc_idr_alloc). The kernel clears it when an object takes it; it is
// cleared here too if none did. The kernel takes the first free slot
// from the id's on, so the id made is checked, and an object that did
// not get it is removed.
func withNextID(kind string, id int32, create func() (int, error), remove func(int)) error {
	path := "/proc/sys/kernel/" + kind + "_next_id"
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if v := strings.TrimSpace(string(old)); v != "-1" {
		return fmt.Errorf("%s is %s: another restore is making IPC objects", path, v)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(int(id))), 0); err != nil {
		return fmt.Errorf("set %s to %d: %w", path, id, err)
	}
	got, err := create()
	if err != nil {
		os.WriteFile(path, []byte("-1"), 0)
		return err
	}
	if got != int(id) {
		remove(got)
		return fmt.Errorf("made with id %d instead: the id was taken meanwhile", got)
	}
	return nil
}

// asCreator wraps get, the call that makes an object, to run on a thread
// whose effective ids are the dumped creator's: the kernel records them
// as the creator (ipc/util.c ipc_addid, current_euid_egid), and only a
// thread's own ids change with the raw setresuid/setresgid system calls
// (man 2 setresuid, "C library/kernel differences"). The thread is
// locked to its goroutine and never unlocked, so it ends with it
// (runtime.LockOSThread). The next_id sysctl is written before, with
// gocr's own ids and capabilities.
func asCreator(p *gocrpb.IpcPerm, get func() (int, error)) func() (int, error) {
	if uint32(os.Geteuid()) == p.Cuid && uint32(os.Getegid()) == p.Cgid {
		return get
	}
	return func() (int, error) {
		type result struct {
			id  int
			err error
		}
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			const keep = ^uintptr(0) // -1: leave this id as it is
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, keep, uintptr(p.Cgid), keep); e != 0 {
				res <- result{-1, fmt.Errorf("become creator gid %d: %w", p.Cgid, e)}
				return
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(p.Cuid), keep); e != 0 {
				res <- result{-1, fmt.Errorf("become creator uid %d: %w", p.Cuid, e)}
				return
			}
			id, err := get()
			res <- result{id, err}
		}()
		r := <-res
		return r.id, r.err
	}
}

func (o *sysvObjects) makeShm(dir *images.Dir, shm *gocrpb.SysvShm) error {
	p := shm.Perm
	rows, err := procfs.ReadSysvShm()
	if err != nil {
		return err
	}
	found, err := claim("segment", rows, p, shm.Removed, func(e *procfs.SysvObject) bool {
		return e.Size == shm.Size && e.Mode&ipc.ShmDest == 0
	})
	if err != nil {
		return err
	}
	if found != nil && found.Nattch != 0 {
		return fmt.Errorf("the job's segment is still there, attached %d times by processes outside the restore", found.Nattch)
	}
	id := int(p.Id)
	if found == nil {
		err = withNextID("shm", p.Id, asCreator(p, func() (int, error) {
			return unix.SysvShmGet(int(p.Key), int(shm.Size), ipc.IPCCreat|ipc.IPCExcl|0o600)
		}), func(got int) { unix.SysvShmCtl(got, ipc.IPCRmid, nil) })
		if err != nil {
			return err
		}
		o.remove = append(o.remove, func() { unix.SysvShmCtl(id, ipc.IPCRmid, nil) })
	}
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if err := fillShm(dir, shm, b, found != nil); err != nil {
		unix.SysvShmDetach(b)
		return err
	}
	desc := unix.SysvShmDesc{Perm: unix.SysvIpcPerm{Uid: p.Uid, Gid: p.Gid, Mode: p.Mode}}
	if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &desc); err != nil {
		unix.SysvShmDetach(b)
		return fmt.Errorf("set owner %d:%d and mode %#o: %w", p.Uid, p.Gid, p.Mode, err)
	}
	switch {
	case shm.Locked:
		// SHM_LOCK (man 2 shmctl): CAP_IPC_LOCK, or the owner within
		// RLIMIT_MEMLOCK.
		if _, err := unix.SysvShmCtl(id, ipc.ShmLock, nil); err != nil {
			unix.SysvShmDetach(b)
			return fmt.Errorf("SHM_LOCK: %w", err)
		}
	case found != nil && found.Mode&ipc.ShmLocked != 0:
		if _, err := unix.SysvShmCtl(id, ipc.ShmUnlock, nil); err != nil {
			unix.SysvShmDetach(b)
			return fmt.Errorf("SHM_UNLOCK: %w", err)
		}
	}
	if !shm.Removed {
		return unix.SysvShmDetach(b)
	}
	// Removed while attached: it lives on through gocr's attachment
	// until the processes have theirs (man 2 shmctl, IPC_RMID; Linux
	// lets a process attach a removed segment by its id).
	o.held = append(o.held, b)
	if _, err := unix.SysvShmCtl(id, ipc.IPCRmid, nil); err != nil {
		return fmt.Errorf("IPC_RMID: %w", err)
	}
	return nil
}

// fillShm writes the saved contents into the attached segment b: the
// saved extents, over zeros (a segment made anew is all zeros and holes
// stay holes; one left behind is cleared first).
func fillShm(dir *images.Dir, shm *gocrpb.SysvShm, b []byte, leftBehind bool) error {
	img, err := dir.OpenSysvShm(uint64(shm.Perm.Id))
	if err != nil {
		return err
	}
	defer img.Close()
	size := img.Size
	if size != int64(shm.Size) || int64(len(b)) < size {
		return fmt.Errorf("image holds %d bytes, the segment %d", size, len(b))
	}
	if leftBehind {
		clear(b[:size])
	}
	ifd := int(img.Fd())
	base := img.Off
	for off := base; off < base+size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // the rest is a hole
		}
		if err != nil {
			return fmt.Errorf("read image: SEEK_DATA: %w", err)
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("read image: SEEK_HOLE: %w", err)
		}
		hole = min(hole, base+size)
		if _, err := io.ReadFull(io.NewSectionReader(img, data, hole-data), b[data-base:hole-base]); err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		off = hole
	}
	return nil
}

func (o *sysvObjects) makeSem(sem *gocrpb.SysvSem) error {
	p := sem.Perm
	rows, err := procfs.ReadSysvSem()
	if err != nil {
		return err
	}
	found, err := claim("semaphore set", rows, p, false, func(e *procfs.SysvObject) bool { return e.Nsems == uint64(len(sem.Values)) })
	if err != nil {
		return err
	}
	id := int(p.Id)
	if found != nil {
		for i := range int(found.Nsems) {
			last, err := ipc.SemGetPid(id, i)
			if err != nil {
				return fmt.Errorf("GETPID: %w", err)
			}
			if err := notRunning(last); err != nil {
				return fmt.Errorf("the job's set is still there, and %w", err)
			}
		}
	}
	vals := make([]uint16, len(sem.Values))
	for i, v := range sem.Values {
		vals[i] = uint16(v)
	}
	if found == nil {
		err := withNextID("sem", p.Id, asCreator(p, func() (int, error) {
			return ipc.SemGet(p.Key, len(vals), ipc.IPCCreat|ipc.IPCExcl|0o600)
		}), func(got int) { ipc.SemRemove(got) })
		if err != nil {
			return err
		}
		o.remove = append(o.remove, func() { ipc.SemRemove(id) })
	}
	// Owner and a mode that lets gocr write first, should it be the
	// owner rather than root; the dumped mode last.
	if err := ipc.SemSetPerm(id, p.Uid, p.Gid, 0o600); err != nil {
		return fmt.Errorf("set owner %d:%d: %w", p.Uid, p.Gid, err)
	}
	if err := ipc.SemSetAll(id, vals); err != nil {
		return fmt.Errorf("SETALL: %w", err)
	}
	if err := ipc.SemSetPerm(id, p.Uid, p.Gid, p.Mode); err != nil {
		return fmt.Errorf("set mode %#o: %w", p.Mode, err)
	}
	return nil
}

func (o *sysvObjects) makeMsg(q *gocrpb.SysvMsgQueue) error {
	p := q.Perm
	rows, err := procfs.ReadSysvMsg()
	if err != nil {
		return err
	}
	found, err := claim("message queue", rows, p, false, func(*procfs.SysvObject) bool { return true })
	if err != nil {
		return err
	}
	id := int(p.Id)
	if found != nil {
		for _, last := range []int32{found.Lspid, found.Lrpid} {
			if err := notRunning(int(last)); err != nil {
				return fmt.Errorf("the job's queue is still there, and %w", err)
			}
		}
	}
	if found == nil {
		err := withNextID("msg", p.Id, asCreator(p, func() (int, error) {
			return ipc.MsgGet(p.Key, ipc.IPCCreat|ipc.IPCExcl|0o600)
		}), func(got int) { ipc.MsgRemove(got) })
		if err != nil {
			return err
		}
		o.remove = append(o.remove, func() { ipc.MsgRemove(id) })
	}
	// Owner, a mode that lets gocr read and write should it be the
	// owner rather than root, and msg_qbytes first, so every message
	// fits; above msgmnb only CAP_SYS_RESOURCE may raise it (ipc/msg.c
	// msgctl_down).
	if err := ipc.MsgSet(id, p.Uid, p.Gid, 0o600, q.Qbytes); err != nil {
		return fmt.Errorf("set owner %d:%d and msg_qbytes %d: %w", p.Uid, p.Gid, q.Qbytes, err)
	}
	if found != nil {
		// The job's queue left behind: whatever is in it now gives
		// way to what it held at the dump.
		buf := make([]byte, 8+max(q.Qbytes, 1<<16))
		for {
			_, _, err := ipc.MsgRecv(id, buf, 0, ipc.IPCNowait|ipc.MsgNoerror)
			if errors.Is(err, unix.ENOMSG) {
				break
			}
			if err != nil {
				return fmt.Errorf("empty it: %w", err)
			}
		}
	}
	for i, m := range q.Messages {
		if err := ipc.MsgSend(id, m.Type, m.Text, ipc.IPCNowait); err != nil {
			return fmt.Errorf("send message %d of %d: %w", i, len(q.Messages), err)
		}
	}
	if err := ipc.MsgSet(id, p.Uid, p.Gid, p.Mode, q.Qbytes); err != nil {
		return fmt.Errorf("set mode %#o: %w", p.Mode, err)
	}
	return nil
}

// sysvShmFlags are the shmat flags that attach a segment as v was:
// read-only when it may not be written (VmFlags without "mw": shmat
// opens the segment read-only, ipc/shm.c do_shmat), executable when it
// is now (SHM_EXEC; "me" is set either way, so one mprotected since
// comes back the same).
func sysvShmFlags(v *gocrpb.Vma) uint32 {
	var f uint32
	if !hasFlag(v.VmFlags, "mw") {
		f |= ipc.ShmRdonly
	}
	if v.Prot&unix.PROT_EXEC != 0 {
		f |= ipc.ShmExec
	}
	return f
}

// sysvShmProt is the protection shmat gives with flags; the restorer
// mprotects the attachment to its dumped one from there.
func sysvShmProt(flags uint32) uint32 {
	prot := uint32(unix.PROT_READ)
	if flags&ipc.ShmRdonly == 0 {
		prot |= unix.PROT_WRITE
	}
	if flags&ipc.ShmExec != 0 {
		prot |= unix.PROT_EXEC
	}
	return prot
}

// notRunning fails if pid, the last process to use an object the dumped
// job left behind, runs: the object is in use (by the dumped job itself,
// still running after a dump with --leave-running, or by another), and
// setting it back would change it under its users. A pid that exited
// long ago may name another process by now; the restore then fails too,
// in one line, rather than guess.
func notRunning(pid int) error {
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	st, err := procfs.ReadStat(pid)
	if err != nil || st.State == 'Z' || st.State == 'X' {
		return nil
	}
	return fmt.Errorf("its last user, pid %d (%s), still runs", pid, st.Comm)
}
