//go:build linux

package dump

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// capSysPtrace is CAP_SYS_PTRACE (include/uapi/linux/capability.h).
const capSysPtrace = 19

// checkPermission applies BLCR's rule that checkpoint permission follows
// that of signals and core dumps, in the kernel's own terms: gocr may
// dump a process it may ptrace-attach, and asks before it seizes, so that
// the refusal says why in one line and the process is not touched. The
// kernel (kernel/ptrace.c __ptrace_may_access, PTRACE_MODE_ATTACH_REALCREDS)
// lets a tracer without CAP_SYS_PTRACE attach only to a process
//   - whose real, effective and saved uids are all the tracer's real uid,
//     and gids all its real gid (its owner);
//   - that is dumpable (get_dumpable() == SUID_DUMP_USER: not set-id, no
//     credential change since its last execve, no PR_SET_DUMPABLE 0);
//   - whose permitted capabilities are a subset of the tracer's
//     (security/commoncap.c cap_ptrace_access_check).
//
// Root (CAP_SYS_PTRACE) may dump any process checkDumpable allows.
func checkPermission(pid int, status proc.Status) error {
	own, err := proc.ReadStatus(os.Getpid())
	if err != nil {
		return fmt.Errorf("read gocr's own credentials: %w", err)
	}
	if own.CapEff&(1<<capSysPtrace) != 0 {
		return nil
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for i := 0; i < 3; i++ {
		if status.Uid[i] != uid || status.Gid[i] != gid {
			return fmt.Errorf("pid %d (%s) belongs to uid %d gid %d, not to you (uid %d gid %d): only its owner or root may checkpoint it",
				pid, status.Name, status.Uid[1], status.Gid[1], uid, gid)
		}
	}
	// /proc/PID/status belongs to the process's effective ids while it
	// is dumpable, else to root (fs/proc/base.c task_dump_owner; not
	// /proc/PID itself, which keeps the effective ids for ps); its ids
	// are the user's here, and the user is not root.
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/status", pid), &st); err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, status.Name, err)
	}
	if st.Uid != status.Uid[1] {
		return fmt.Errorf("pid %d (%s) is not dumpable (it changed its credentials or called PR_SET_DUMPABLE 0): only root may checkpoint it", pid, status.Name)
	}
	if extra := status.CapPrm &^ own.CapPrm; extra != 0 {
		return fmt.Errorf("pid %d (%s) holds capabilities %#x that gocr does not (it has %#x): only root may checkpoint it", pid, status.Name, status.CapPrm, own.CapPrm)
	}
	return nil
}
