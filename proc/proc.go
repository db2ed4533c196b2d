//go:build linux

// Package proc reads the files under /proc/PID into typed values.
//
// Each file has a Parse function that takes its bytes, so the format can be
// tested on captured fixtures, and a Read function that opens the live file.
// Nothing here stops the target: a running process can change between two
// reads, so callers that need a consistent picture freeze it first.
package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoProcess is matched (errors.Is) by errors from functions that find no
// /proc/PID directory for their pid.
var ErrNoProcess = errors.New("no process")

type noProcessError struct{ pid int }

func (e *noProcessError) Error() string        { return fmt.Sprintf("no process with pid %d", e.pid) }
func (e *noProcessError) Is(target error) bool { return target == ErrNoProcess }

// pidPath is "/proc/PID/name" built without fmt, since it is on every call.
func pidPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// wrapErr adds the operation to err and turns "the file is missing because
// the process is gone" into ErrNoProcess. ENOENT alone is not enough: a
// live process can lack a file (exe of a kernel thread, a closed fd).
// ESRCH is what proc returns when the task dies while a file is open
// (fs/proc/base.c, fs/proc/array.c).
func wrapErr(pid int, op string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The operation names the path already.
		err = pe.Err
	}
	if errors.Is(err, syscall.ESRCH) || (errors.Is(err, fs.ErrNotExist) && !Exists(pid)) {
		err = &noProcessError{pid}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Exists reports whether /proc/PID is there. A zombie still exists, and so
// does any thread id: /proc resolves TIDs that readdir does not list
// (fs/proc/base.c, proc_pid_lookup).
func Exists(pid int) bool {
	if pid <= 0 {
		return false
	}
	var st syscall.Stat_t
	return syscall.Stat("/proc/"+strconv.Itoa(pid), &st) == nil
}

func readFile(pid int, name string) ([]byte, error) {
	b, err := ReadAll(pidPath(pid, name))
	if err != nil {
		return nil, wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	return b, nil
}

// ReadAuxv returns /proc/PID/auxv as the kernel stores it: native-endian
// (type, value) pairs of unsigned long, ending with the AT_NULL pair
// (fs/proc/base.c, auxv_read, copies up to and including AT_NULL).
func ReadAuxv(pid int) ([]byte, error) {
	return readFile(pid, "auxv")
}

// ReadPersonality parses /proc/PID/personality, printed as "%08x\n"
// (fs/proc/base.c, proc_pid_personality). Reading it needs ptrace access.
func ReadPersonality(pid int) (uint32, error) {
	b, err := readFile(pid, "personality")
	if err != nil {
		return 0, err
	}
	v, ok := hexUint(trimSpace(b))
	if !ok || v > 1<<32-1 {
		return 0, fmt.Errorf("read /proc/%d/personality: bad value %q", pid, b)
	}
	return uint32(v), nil
}

func readLink(pid int, name string) (string, error) {
	s, err := os.Readlink(pidPath(pid, name))
	if err != nil {
		return "", wrapErr(pid, "readlink /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	return s, nil
}

// Exe returns the target of /proc/PID/exe. An unlinked executable reads
// with a " (deleted)" suffix (fs/d_path.c, d_path).
func Exe(pid int) (string, error) { return readLink(pid, "exe") }

// Cwd returns the target of /proc/PID/cwd.
func Cwd(pid int) (string, error) { return readLink(pid, "cwd") }

// Root returns the target of /proc/PID/root.
func Root(pid int) (string, error) { return readLink(pid, "root") }

// FdTarget returns the target of /proc/PID/fd/FD: a path, or for
// non-file objects a "type:[inode]" or "anon_inode:..." name (man 5 proc).
func FdTarget(pid, fd int) (string, error) {
	return readLink(pid, "fd/"+strconv.Itoa(fd))
}

// readNumberedDir lists a directory whose entries are decimal numbers.
func readNumberedDir(pid int, name string) ([]int, error) {
	op := "list /proc/" + strconv.Itoa(pid) + "/" + name
	f, err := os.Open(pidPath(pid, name))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	nums := make([]int, 0, len(names))
	for _, n := range names {
		v, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("%s: unexpected entry %q", op, n)
		}
		nums = append(nums, v)
	}
	slices.Sort(nums)
	return nums, nil
}

// ListFds returns the open file descriptors of pid, sorted.
func ListFds(pid int) ([]int, error) { return readNumberedDir(pid, "fd") }

// Threads returns the thread ids of pid, sorted.
func Threads(pid int) ([]int, error) { return readNumberedDir(pid, "task") }

// Children returns the pids whose parent is any thread of pid, sorted.
// Each thread's children file lists only the children that thread forked
// (Documentation/filesystems/proc.rst, "children"; needs
// CONFIG_PROC_CHILDREN), so the process's set is their union.
func Children(pid int) ([]int, error) {
	tids, err := Threads(pid)
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, tid := range tids {
		name := "task/" + strconv.Itoa(tid) + "/children"
		b, err := ReadAll(pidPath(pid, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				// The thread exited after the listing; its
				// children were reparented, not lost to us.
				continue
			}
			return nil, wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/"+name, err)
		}
		for _, f := range strings.Fields(string(b)) {
			v, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("read /proc/%d/%s: bad pid %q", pid, name, f)
			}
			kids = append(kids, v)
		}
	}
	slices.Sort(kids)
	return slices.Compact(kids), nil
}

// BootID is this boot's random ID, /proc/sys/kernel/random/boot_id (man 4
// random): it differs after every reboot, and between machines.
func BootID() (string, error) {
	b, err := ReadAll("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// MmapMinAddr is /proc/sys/vm/mmap_min_addr, the lowest address a
// process without CAP_SYS_RAWIO may map (security/min_addr.c,
// security/commoncap.c cap_mmap_addr).
func MmapMinAddr() (uint64, error) {
	b, err := ReadAll("/proc/sys/vm/mmap_min_addr")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/vm/mmap_min_addr: %q is not a number", b)
	}
	return n, nil
}
