//go:build linux

package dump

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// checkLeaderAlive refuses a process whose leader exited while other
// threads run on: /proc shows it as a zombie with Threads above 1 (man 2
// exit, man 5 proc), and it can be restored neither as a zombie nor as a
// process without its leader.
func checkLeaderAlive(pid int, status proc.Status) error {
	if status.State == 'Z' && status.Threads > 1 {
		return fmt.Errorf("pid %d (%s): its main thread exited while %d other threads run on, which gocr cannot restore", pid, status.Name, status.Threads-1)
	}
	return nil
}

// checkArch refuses a process with a thread running 32-bit code (an
// ia32 program, or a 64-bit one that far-jumped into a 32-bit code
// segment): its registers, signal frames and system calls are of another
// layout, which neither the parasite nor the restorer speaks.
func checkArch(t *ptrace.Tracer, pid int, tids []int) error {
	for _, tid := range tids {
		_, err := t.GetRegs(tid)
		switch {
		case !errors.Is(err, ptrace.ErrIA32):
		case tid == pid:
			return fmt.Errorf("pid %d is a 32-bit (ia32) process: gocr dumps x86-64 processes only", pid)
		default:
			return fmt.Errorf("pid %d thread %d runs 32-bit (ia32) code: gocr dumps x86-64 processes only", pid, tid)
		}
	}
	return nil
}

// checkThreadSeccomp refuses a thread under seccomp, as checkDumpable
// refuses a leader: filters are per thread (man 2 seccomp,
// SECCOMP_FILTER_FLAG_TSYNC), and one restored without its filter would
// run unconfined. /proc/TID/status names any thread (man 5 proc).
func checkThreadSeccomp(pid, tid int) error {
	if tid == pid {
		return nil // checkDumpable's
	}
	status, err := proc.ReadStatus(tid)
	if err != nil {
		return fmt.Errorf("thread %d: %w", tid, err)
	}
	if status.Seccomp != 0 {
		return fmt.Errorf("thread %d runs under seccomp (mode %d), which gocr cannot restore yet: refusing to dump it", tid, status.Seccomp)
	}
	return nil
}

func checkDumpable(pid int) error {
	status, err := proc.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, proc.ErrNoProcess) {
			return fmt.Errorf("no process with pid %d", pid)
		}
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	if err := checkLeaderAlive(pid, status); err != nil {
		return err
	}
	if status.Uid[0] != status.Uid[1] || status.Uid[1] != status.Uid[2] ||
		status.Gid[0] != status.Gid[1] || status.Gid[1] != status.Gid[2] {
		return fmt.Errorf("pid %d (%s) runs set-id (uids %v, gids %v): refusing to dump it", pid, status.Name, status.Uid[:3], status.Gid[:3])
	}
	if err := checkPermission(pid, status); err != nil {
		return err
	}
	// A restored process would run without its filter: gocr does not read
	// filters back (PTRACE_SECCOMP_GET_FILTER, man 2 ptrace) or install
	// them yet, and a sandbox silently dropped is worse than no dump.
	// Seccomp: 1 strict, 2 filter (Documentation/filesystems/proc.rst).
	if status.Seccomp != 0 {
		return fmt.Errorf("pid %d (%s) runs under seccomp (mode %d), which gocr cannot restore yet: refusing to dump it", pid, status.Name, status.Seccomp)
	}
	// The init of a PID namespace: the kernel drops SIGKILL sent to it
	// from inside its namespace (kernel/signal.c sig_task_ignored,
	// SIGNAL_UNKILLABLE; man 7 pid_namespaces), so the dump could never
	// end it, and no restore could give a process PID 1 there while the
	// namespace lives. It is in gocr's namespaces (else it is refused
	// below) exactly when gocr runs inside that namespace; its PID in its
	// own namespace is the last of NSpid (man 5 proc).
	if len(status.NSpid) > 0 && status.NSpid[len(status.NSpid)-1] == 1 {
		return fmt.Errorf("pid %d (%s) is the init of its PID namespace, which gocr can neither end nor restore: refusing to dump it", pid, status.Name)
	}
	// A job that a restore put in a PID namespace of its own is in the
	// reaper's PID and mount namespaces, which a restore makes again.
	pidns, err := jobPidNamespace(pid)
	if err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, status.Name, err)
	}
	// Its time namespace is recorded with its offsets (timens.go).
	same := []string{"time"}
	if pidns != nil {
		same = append(same, "pid", "mnt")
	}
	if ns, err := foreignNamespace(pid, same...); err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, status.Name, err)
	} else if ns != "" {
		return fmt.Errorf("pid %d (%s) is in another %s namespace than gocr, which gocr cannot restore yet: refusing to dump it", pid, status.Name, ns)
	}
	if _, err := proc.Exe(pid); err != nil {
		return fmt.Errorf("pid %d (%s) has no executable (a kernel thread?): %w", pid, status.Name, err)
	}
	if status.TracerPid != 0 {
		return fmt.Errorf("pid %d (%s) is already traced by pid %d", pid, status.Name, status.TracerPid)
	}
	if status.State == 'Z' {
		return fmt.Errorf("pid %d (%s) is a zombie", pid, status.Name)
	}
	return nil
}

// foreignNamespace names the first namespace pid is in that gocr is not
// (but those in except),
// or "" if it shares all of gocr's. A restore recreates processes in
// gocr's own namespaces, so anything else would come back changed (other
// PIDs, mounts, network). Two processes share a namespace exactly when
// their /proc/PID/ns links name the same inode (man 7 namespaces); a kind
// this kernel lacks has no link in either.
func foreignNamespace(pid int, except ...string) (string, error) {
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"} {
		if slices.Contains(except, ns) {
			continue
		}
		own, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			continue
		}
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			return "", fmt.Errorf("read its %s namespace: %w", ns, err)
		}
		if theirs != own {
			return ns, nil
		}
	}
	return "", nil
}

// secretMemMagic is SECRETMEM_MAGIC (include/uapi/linux/magic.h), the file
// system of memfd_secret(2)'s files.
const secretMemMagic = 0x5345434d

// checkSecretMem refuses a mapping of memfd_secret(2) memory: its pages
// are taken out of the kernel's direct map, and no process but the one
// that maps it can read them (mm/secretmem.c; man 2 memfd_secret), not
// through /proc/PID/mem, process_vm_readv or the parasite's vmsplice.
// /proc/PID/maps names its file "/secretmem (deleted)" (its inode's
// name, mm/secretmem.c secretmem_file_create); the file system's magic,
// through the map_files link, tells it from a deleted file of that name.
func checkSecretMem(pid int, maps []proc.Mapping) error {
	for _, m := range maps {
		if m.Path != "/secretmem (deleted)" {
			continue
		}
		var fs unix.Statfs_t
		link := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End)
		if err := unix.Statfs(link, &fs); err != nil {
			return fmt.Errorf("mapping %#x-%#x: statfs %s: %w", m.Start, m.End, link, err)
		}
		if fs.Type == secretMemMagic {
			return fmt.Errorf("mapping %#x-%#x is memfd_secret memory, which no other process can read", m.Start, m.End)
		}
	}
	return nil
}
