//go:build linux && amd64

// Package ipc wraps the System V IPC and POSIX message queue system calls
// golang.org/x/sys/unix lacks, for the dump and the restore of the IPC
// objects a job uses. Layouts are x86-64's (include/uapi/linux/ipc.h,
// include/uapi/asm-generic/msgbuf.h, arch/x86/include/uapi/asm/sembuf.h,
// include/uapi/linux/mqueue.h).
package ipc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Flags and commands (include/uapi/linux/ipc.h, msg.h, sem.h, shm.h).
const (
	IPCCreat  = 01000
	IPCExcl   = 02000
	IPCNowait = 04000
	IPCRmid   = 0
	IPCSet    = 1
	IPCStat   = 2

	MsgNoerror = 010000
	MsgCopy    = 040000 // needs CONFIG_CHECKPOINT_RESTORE (ipc/msg.c)

	cmdGetPid = 11
	cmdGetAll = 13
	cmdSetAll = 17

	ShmDest   = 01000 // in a segment's mode: IPC_RMID'd while attached
	ShmLocked = 02000 // in a segment's mode: SHM_LOCK'ed
	ShmLock   = 11
	ShmUnlock = 12
	ShmRdonly = 010000
	ShmExec   = 0100000

	kcmpSysvsem = 6 // include/uapi/linux/kcmp.h
)

// Perm is struct ipc64_perm (unix.SysvIpcPerm).
type Perm = unix.SysvIpcPerm

// semid64ds is struct semid64_ds with room to spare: only its leading
// ipc64_perm is read by IPC_SET (ipc/sem.c semctl_down).
type semid64ds struct {
	Perm Perm
	_    [64]byte
}

// MsqidDs is struct msqid64_ds (include/uapi/asm-generic/msgbuf.h).
type MsqidDs struct {
	Perm   Perm
	Stime  int64
	Rtime  int64
	Ctime  int64
	Cbytes uint64
	Qnum   uint64
	Qbytes uint64
	Lspid  int32
	Lrpid  int32
	_      [2]uint64
}

func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// SemGet is semget(2).
func SemGet(key int32, nsems, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	return int(r), errno(e)
}

// SemGetPid is semctl(id, num, GETPID): the last process to change
// semaphore num.
func SemGetPid(id, num int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), cmdGetPid, 0, 0, 0)
	return int(r), errno(e)
}

// SemGetAll is semctl(id, 0, GETALL): every semaphore's value.
func SemGetAll(id int, nsems int) ([]uint16, error) {
	vals := make([]uint16, max(nsems, 1))
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, cmdGetAll, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
	return vals[:nsems], errno(e)
}

// SemSetAll is semctl(id, 0, SETALL, vals).
func SemSetAll(id int, vals []uint16) error {
	if len(vals) == 0 {
		return nil
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, cmdSetAll, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
	return errno(e)
}

// SemSetPerm is semctl(id, 0, IPC_SET): owner and permission bits.
func SemSetPerm(id int, uid, gid, mode uint32) error {
	var ds semid64ds
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = uid, gid, mode
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, IPCSet, uintptr(unsafe.Pointer(&ds)), 0, 0)
	return errno(e)
}

// SemRemove is semctl(id, 0, IPC_RMID).
func SemRemove(id int) error {
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, IPCRmid, 0, 0, 0)
	return errno(e)
}

// MsgGet is msgget(2).
func MsgGet(key int32, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flags), 0)
	return int(r), errno(e)
}

// MsgStat is msgctl(id, IPC_STAT).
func MsgStat(id int) (*MsqidDs, error) {
	var ds MsqidDs
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), IPCStat, uintptr(unsafe.Pointer(&ds)))
	return &ds, errno(e)
}

// MsgSet is msgctl(id, IPC_SET): owner, permission bits and msg_qbytes.
func MsgSet(id int, uid, gid, mode uint32, qbytes uint64) error {
	var ds MsqidDs
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = uid, gid, mode
	ds.Qbytes = qbytes
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), IPCSet, uintptr(unsafe.Pointer(&ds)))
	return errno(e)
}

// MsgRemove is msgctl(id, IPC_RMID).
func MsgRemove(id int) error {
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), IPCRmid, 0)
	return errno(e)
}

// MsgRecv is msgrcv(2) into buf, which holds the mtype (8 bytes) and
// then the text; it returns the type and the text's length.
func MsgRecv(id int, buf []byte, typ int64, flags int) (int64, int, error) {
	n, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8), uintptr(typ), uintptr(flags), 0)
	if e != 0 {
		return 0, 0, e
	}
	return *(*int64)(unsafe.Pointer(&buf[0])), int(n), nil
}

// MsgSend is msgsnd(2) of one message of type typ.
func MsgSend(id int, typ int64, text []byte, flags int) error {
	buf := make([]byte, 8+len(text))
	*(*int64)(unsafe.Pointer(&buf[0])) = typ
	copy(buf[8:], text)
	_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(text)), uintptr(flags), 0, 0)
	return errno(e)
}

// SameSemUndo tells whether processes a and b share one System V
// semaphore undo list, or both have none: kcmp KCMP_SYSVSEM compares
// their undo list pointers (kernel/kcmp.c). A process has none until it
// first semop()s with SEM_UNDO (ipc/sem.c get_undo_list) or clones with
// CLONE_SYSVSEM, as every thread is made (ipc/sem.c copy_semundo), and
// again once it has exited (exit_sem).
func SameSemUndo(a, b int) (bool, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpSysvsem, 0, 0, 0)
	if e != 0 {
		return false, e
	}
	return r == 0, nil
}

// MqAttr is struct mq_attr (include/uapi/linux/mqueue.h).
type MqAttr struct {
	Flags, Maxmsg, Msgsize, Curmsgs int64
	_                               [4]int64
}

// MqOpen is mq_open(2); name has no leading '/' (the C library strips
// it, man 3 mq_open).
func MqOpen(name string, flags int, mode uint32, attr *MqAttr) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	r, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode), uintptr(unsafe.Pointer(attr)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// MqUnlink is mq_unlink(2).
func MqUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	return errno(e)
}

// MqGetAttr is mq_getattr(3): mq_getsetattr(2) without a new setting.
func MqGetAttr(fd int) (*MqAttr, error) {
	var a MqAttr
	_, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a)))
	return &a, errno(e)
}

// MqReceive is mq_timedreceive(2) without a timeout: on a descriptor
// opened O_NONBLOCK it fails with EAGAIN when the queue is empty.
func MqReceive(fd int, buf []byte) (int, uint32, error) {
	var prio uint32
	n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&prio)), 0, 0)
	if e != 0 {
		return 0, 0, e
	}
	return int(n), prio, nil
}

// MqSend is mq_timedsend(2) without a timeout: on a descriptor opened
// O_NONBLOCK it fails with EAGAIN when the queue is full.
func MqSend(fd int, data []byte, prio uint32) error {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(data)), uintptr(prio), 0, 0)
	return errno(e)
}
