//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Status holds the fields of /proc/PID/status that a checkpoint needs
// (man 5 proc; printed by fs/proc/array.c, proc_pid_status).
type Status struct {
	Name string
	// Umask is shown since Linux 4.7; HasUmask says whether it was.
	Umask    uint32
	HasUmask bool
	State    byte
	Tgid     int
	Pid      int
	PPid     int
	// TracerPid is 0 when nothing ptraces the task.
	TracerPid int
	// Uid and Gid are real, effective, saved set, filesystem.
	Uid, Gid [4]uint32
	Groups   []uint32
	// NSpid is the pid in each pid namespace, outermost first.
	NSpid   []int
	Threads int
	// Signal sets, bit N-1 for signal N: pending for the thread, pending
	// for the process, blocked, ignored, caught.
	SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt uint64
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
	// Seccomp is the SECCOMP_MODE_*: 0 none, 1 strict, 2 filter.
	Seccomp int
	// UntagMask is the x86 LAM mask of the address space, all ones
	// without tagged addresses; shown with CONFIG_ADDRESS_MASKING
	// (arch/x86/kernel/process_64.c arch_proc_pid_thread_features).
	UntagMask    uint64
	HasUntagMask bool
	// VmLck is the process's locked memory in bytes: every VM_LOCKED
	// mapping counts in it (mm/mlock.c mlock_fixup), so 0 means none is
	// locked. HasVmLck says whether the line was there: a kernel
	// thread's status has none (fs/proc/task_mmu.c task_mem, shown only
	// with an mm).
	VmLck    uint64
	HasVmLck bool
}

// ParseStatus parses /proc/PID/status: one "Key:\tvalue" per line.
// Unknown keys are skipped, since the kernel adds some in most releases.
func ParseStatus(r io.Reader) (Status, error) {
	var s Status
	var seen int
	const (
		seenName = 1 << iota
		seenState
		seenPid
	)
	sc := bufio.NewScanner(r)
	sc.Split(splitLines)
	for sc.Scan() {
		key, val, ok := cut(sc.Bytes(), ':')
		if !ok {
			continue
		}
		if string(key) != "Name" {
			val = trimSpace(val)
		}
		switch string(key) {
		case "Name":
			// A single '\t' follows the colon; the name itself may
			// start with blanks.
			if len(val) > 0 && val[0] == '\t' {
				val = val[1:]
			}
			s.Name = unescapeName(val)
			seen |= seenName
		case "Umask":
			var v uint64
			v, ok = octUint(val)
			s.Umask, s.HasUmask = uint32(v), true
		case "State":
			// "R (running)"
			ok = len(val) > 0
			if ok {
				s.State = val[0]
			}
			seen |= seenState
		case "Tgid":
			s.Tgid, ok = decIntN(val)
		case "Pid":
			s.Pid, ok = decIntN(val)
			seen |= seenPid
		case "PPid":
			s.PPid, ok = decIntN(val)
		case "TracerPid":
			s.TracerPid, ok = decIntN(val)
		case "Uid":
			ok = parseIDs(val, &s.Uid)
		case "Gid":
			ok = parseIDs(val, &s.Gid)
		case "Groups":
			s.Groups, ok = parseList(val, s.Groups[:0], func(b []byte) (uint32, bool) {
				v, ok := decUint(b)
				return uint32(v), ok && v <= 1<<32-1
			})
		case "NSpid":
			s.NSpid, ok = parseList(val, s.NSpid[:0], decIntN)
		case "Threads":
			s.Threads, ok = decIntN(val)
		case "SigPnd":
			s.SigPnd, ok = hexUint(val)
		case "ShdPnd":
			s.ShdPnd, ok = hexUint(val)
		case "SigBlk":
			s.SigBlk, ok = hexUint(val)
		case "SigIgn":
			s.SigIgn, ok = hexUint(val)
		case "SigCgt":
			s.SigCgt, ok = hexUint(val)
		case "CapInh":
			s.CapInh, ok = hexUint(val)
		case "CapPrm":
			s.CapPrm, ok = hexUint(val)
		case "CapEff":
			s.CapEff, ok = hexUint(val)
		case "CapBnd":
			s.CapBnd, ok = hexUint(val)
		case "CapAmb":
			s.CapAmb, ok = hexUint(val)
		case "NoNewPrivs":
			var v uint64
			v, ok = decUint(val)
			s.NoNewPrivs = v != 0
		case "Seccomp":
			s.Seccomp, ok = decIntN(val)
		case "VmLck":
			// "%8lu kB" (fs/proc/task_mmu.c task_mem)
			var kb uint64
			kb, ok = decUint(bytes.TrimSpace(bytes.TrimSuffix(val, []byte("kB"))))
			ok = ok && kb <= ^uint64(0)>>10
			s.VmLck, s.HasVmLck = kb<<10, true
		case "untag_mask":
			// "%#lx"
			h, found := bytes.CutPrefix(val, []byte("0x"))
			s.UntagMask, ok = hexUint(h)
			ok = ok && found
			s.HasUntagMask = true
		}
		if !ok {
			return s, fmt.Errorf("bad %s value %q", key, val)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if seen != seenName|seenState|seenPid {
		return s, fmt.Errorf("missing Name, State or Pid")
	}
	return s, nil
}

// parseIDs reads the four tab-separated ids of a Uid or Gid line.
func parseIDs(b []byte, dst *[4]uint32) bool {
	for i := range dst {
		var tok []byte
		tok, b = nextField(b)
		v, ok := decUint(tok)
		if !ok || v > 1<<32-1 {
			return false
		}
		dst[i] = uint32(v)
	}
	tok, _ := nextField(b)
	return len(tok) == 0
}

func parseList[T any](b []byte, dst []T, conv func([]byte) (T, bool)) ([]T, bool) {
	for {
		var tok []byte
		tok, b = nextField(b)
		if len(tok) == 0 {
			break
		}
		v, ok := conv(tok)
		if !ok {
			return nil, false
		}
		dst = append(dst, v)
	}
	if len(dst) == 0 {
		return nil, true
	}
	return dst, true
}

// unescapeName undoes the escaping of the status Name line, where '\n'
// and '\\' are written as "\n" and "\\" (fs/proc/array.c,
// proc_task_name: string_escape_str with ESCAPE_SPACE|ESCAPE_SPECIAL,
// only "\n\\").
func unescapeName(b []byte) string {
	if !strings.Contains(string(b), `\`) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case 'n':
				sb.WriteByte('\n')
				i++
				continue
			case '\\':
				sb.WriteByte('\\')
				i++
				continue
			}
		}
		sb.WriteByte(b[i])
	}
	return sb.String()
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (Status, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/status"
	b, err := ReadAll(pidPath(pid, "status"))
	if err != nil {
		return Status{}, wrapErr(pid, op, err)
	}
	s, err := ParseStatus(bytes.NewReader(b))
	if err != nil {
		return s, wrapErr(pid, op, err)
	}
	return s, nil
}

// ReadTracerPid reads only the TracerPid and Threads lines of
// /proc/TID/status: the task's tracer (0 when nothing ptraces it) and
// how many threads its process has, 0 if the line is beyond the first
// 4 KiB (it follows the Groups line, of any length: fs/proc/array.c
// proc_pid_status). Where every task of the machine is read, this
// costs a third less than ReadStatus: one open, read and close into a
// buffer on the stack, nothing else parsed.
func ReadTracerPid(tid int) (tracer, threads int, err error) {
	path := pidPath(tid, "status")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, wrapErr(tid, "open "+path, err)
	}
	var buf [4096]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return 0, 0, wrapErr(tid, "read "+path, err)
	}
	b := buf[:max(n, 0)]
	tracer, ok := statusInt(b, "\nTracerPid:")
	if !ok {
		return 0, 0, fmt.Errorf("%s: no TracerPid line in its first %d bytes", path, len(buf))
	}
	threads, _ = statusInt(b, "\nThreads:")
	return tracer, threads, nil
}

// statusInt finds the line key (with its leading newline and colon) in
// b and reads its decimal value; false unless the whole line is in b.
func statusInt(b []byte, key string) (int, bool) {
	_, after, ok := bytes.Cut(b, []byte(key))
	line, _, ok2 := bytes.Cut(after, []byte("\n"))
	v, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	return v, ok && ok2 && err == nil
}
