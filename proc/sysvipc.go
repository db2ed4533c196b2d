//go:build linux

package proc

import (
	"fmt"
	"strconv"
	"strings"
)

// SysvObject is one row of /proc/sysvipc/shm, sem or msg (man 5
// proc_sysvipc): the System V IPC objects of the reader's IPC namespace
// (ipc/util.c sysvipc_proc_show, ipc/shm.c sysvipc_shm_proc_show,
// ipc/sem.c sysvipc_sem_proc_show, ipc/msg.c sysvipc_msg_proc_show).
// Fields a file does not have stay zero.
type SysvObject struct {
	Key                  int32  // printed as a signed decimal; 0 is IPC_PRIVATE
	ID                   int32  // shmid, semid or msqid
	Mode                 uint32 // "perms", printed in octal: the permission bits and, for a segment, SHM_DEST and SHM_LOCKED
	UID, GID, CUID, CGID uint32

	// Segments (shm)
	Size       uint64
	Cpid, Lpid int32
	Nattch     uint64
	// Semaphore sets (sem)
	Nsems uint64
	// Otime is the last semop (sem) or msgsnd (msg) time, in seconds
	// since the epoch; 0 if there was none.
	Otime int64
	// Message queues (msg)
	Cbytes, Qnum uint64
	Lspid, Lrpid int32
}

// ReadSysvShm reads /proc/sysvipc/shm.
func ReadSysvShm() ([]SysvObject, error) { return readSysv("shm") }

// ReadSysvSem reads /proc/sysvipc/sem.
func ReadSysvSem() ([]SysvObject, error) { return readSysv("sem") }

// ReadSysvMsg reads /proc/sysvipc/msg.
func ReadSysvMsg() ([]SysvObject, error) { return readSysv("msg") }

func readSysv(kind string) ([]SysvObject, error) {
	b, err := ReadAll("/proc/sysvipc/" + kind)
	if err != nil {
		return nil, fmt.Errorf("read /proc/sysvipc/%s: %w", kind, err)
	}
	objs, err := ParseSysv(b)
	if err != nil {
		return nil, fmt.Errorf("/proc/sysvipc/%s: %w", kind, err)
	}
	return objs, nil
}

// ParseSysv parses any of the /proc/sysvipc files: a header line naming
// the columns, then one line per object. Columns are found by name, so
// the three files (and columns a newer kernel appends) share one parser.
func ParseSysv(b []byte) ([]SysvObject, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return nil, fmt.Errorf("no header line")
	}
	cols := strings.Fields(lines[0])
	var out []SysvObject
	for n, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < len(cols) {
			return nil, fmt.Errorf("line %d: %d fields, the header names %d", n+2, len(fields), len(cols))
		}
		var o SysvObject
		for i, c := range cols {
			if err := o.set(c, fields[i]); err != nil {
				return nil, fmt.Errorf("line %d: %s %q: %w", n+2, c, fields[i], err)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func (o *SysvObject) set(col, v string) error {
	i32 := func(p *int32) error {
		n, err := strconv.ParseInt(v, 10, 32)
		*p = int32(n)
		return err
	}
	u32 := func(p *uint32, base int) error {
		n, err := strconv.ParseUint(v, base, 32)
		*p = uint32(n)
		return err
	}
	u64 := func(p *uint64) error {
		n, err := strconv.ParseUint(v, 10, 64)
		*p = n
		return err
	}
	switch col {
	case "key":
		return i32(&o.Key)
	case "shmid", "semid", "msqid":
		return i32(&o.ID)
	case "perms":
		return u32(&o.Mode, 8)
	case "uid":
		return u32(&o.UID, 10)
	case "gid":
		return u32(&o.GID, 10)
	case "cuid":
		return u32(&o.CUID, 10)
	case "cgid":
		return u32(&o.CGID, 10)
	case "otime":
		n, err := strconv.ParseInt(v, 10, 64)
		o.Otime = n
		return err
	case "size":
		return u64(&o.Size)
	case "cpid":
		return i32(&o.Cpid)
	case "lpid":
		return i32(&o.Lpid)
	case "nattch":
		return u64(&o.Nattch)
	case "nsems":
		return u64(&o.Nsems)
	case "cbytes":
		return u64(&o.Cbytes)
	case "qnum":
		return u64(&o.Qnum)
	case "lspid":
		return i32(&o.Lspid)
	case "lrpid":
		return i32(&o.Lrpid)
	}
	return nil // times, rss, swap: not needed
}
