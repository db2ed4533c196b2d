//go:build linux

package proc

import (
	"fmt"
	"strconv"
)

// Syscall is what /proc/PID/task/TID/syscall says a blocked thread is
// doing (man 5 proc; fs/proc/base.c proc_pid_syscall): the system call it
// is in and its arguments, Nr -1 when blocked outside one, or Running.
type Syscall struct {
	Running bool
	Nr      int64
	Args    [6]uint64
}

// ParseSyscall parses /proc/PID/task/TID/syscall: "running", or
// "NR SP PC" for a thread blocked outside a system call, or "NR A1 .. A6
// SP PC", every number but NR in hex.
func ParseSyscall(b []byte) (Syscall, error) {
	b = trimSpace(b)
	if string(b) == "running" {
		return Syscall{Running: true}, nil
	}
	var fields [][]byte
	for rest := b; len(rest) > 0; {
		var f []byte
		f, rest = nextField(rest)
		if len(f) > 0 {
			fields = append(fields, f)
		}
	}
	nr, ok := decInt(fieldAt(fields, 0))
	if !ok || !(nr < 0 && len(fields) == 3 || nr >= 0 && len(fields) == 9) {
		return Syscall{}, fmt.Errorf("bad syscall line %q", b)
	}
	s := Syscall{Nr: nr}
	for i := 0; nr >= 0 && i < 6; i++ {
		f := fields[1+i]
		if len(f) < 2 || f[0] != '0' || f[1] != 'x' {
			return Syscall{}, fmt.Errorf("bad syscall argument %q in %q", f, b)
		}
		if s.Args[i], ok = hexUint(f[2:]); !ok {
			return Syscall{}, fmt.Errorf("bad syscall argument %q in %q", f, b)
		}
	}
	return s, nil
}

func fieldAt(fields [][]byte, i int) []byte {
	if i < len(fields) {
		return fields[i]
	}
	return nil
}

// ReadSyscall reads what thread tid of pid is blocked in. Reading it needs
// the right to ptrace the thread.
func ReadSyscall(pid, tid int) (Syscall, error) {
	name := "task/" + strconv.Itoa(tid) + "/syscall"
	b, err := ReadAll(pidPath(pid, name))
	if err != nil {
		return Syscall{}, wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	s, err := ParseSyscall(b)
	if err != nil {
		return Syscall{}, fmt.Errorf("read /proc/%d/%s: %w", pid, name, err)
	}
	return s, nil
}
