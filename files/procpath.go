//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// Files of /proc/PID/ (pathKind): whose process they are of, whether it
// lives, and whether a restore would find it again.

// procFileGone tells whether e is a /proc/PID/ directory whose process
// has ended: when a process is reaped the kernel drops its /proc
// dentries (fs/proc/base.c proc_flush_pid, d_invalidate), and the link of
// an fd on the dropped one reads "/proc/PID (deleted)" (fs/d_path.c).
func procFileGone(e *Entry) bool {
	if !e.Deleted() || procPid(GhostPath(e.Target)) == 0 {
		return false
	}
	var fs unix.Statfs_t
	return unix.Statfs(fmt.Sprintf("/proc/%d/fd/%d", e.Pid, e.Fd), &fs) == nil && fs.Type == procSuperMagic
}

// procSuperMagic is PROC_SUPER_MAGIC (include/uapi/linux/magic.h).
const procSuperMagic = 0x9fa0

// procOwner is the /proc directory of the process whose file path is,
// or, for a path under /proc/PID/task/TID/, of that thread.
func procOwner(path string) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/proc/"), "/", 4)
	if len(parts) >= 3 && parts[1] == "task" {
		if _, err := strconv.Atoi(parts[2]); err == nil {
			return "/proc/" + parts[0] + "/task/" + parts[2]
		}
	}
	return "/proc/" + parts[0]
}

// ownerName names what procOwner gives: "process 12" or "thread 13 of
// process 12".
func ownerName(owner string) string {
	pid, tid, ok := strings.Cut(strings.TrimPrefix(owner, "/proc/"), "/task/")
	if ok {
		return "thread " + tid + " of process " + pid
	}
	return "process " + pid
}

// threadOf is the process of the thread whose /proc directory owner is,
// /proc/TID or /proc/PID/task/TID under root, when that is not its
// process's leader; 0 for a leader. /proc/TID/status names the thread's
// process (Tgid, man 5 proc_pid_status).
func threadOf(root, owner string) (int32, error) {
	f, err := os.Open(root + owner + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := proc.ParseStatus(f)
	if err != nil {
		return 0, fmt.Errorf("%s/status: %w", owner, err)
	}
	if st.Tgid == st.Pid {
		return 0, nil
	}
	return int32(st.Tgid), nil
}

// checkProcAlive refuses an fd on a /proc file of a process (or thread)
// that has ended, whether in the dump or not: the file is gone with it
// (a read gives ESRCH), and a restore that opened its path again would
// open that of whatever process has the PID by then, or fail. The
// kernel drops an ended process's /proc dentries (proc_flush_pid), and
// a new lookup of the path makes a new inode (fs/proc/base.c
// proc_pid_make_inode), so the path names the fd's file only while its
// process lives: the same device and inode. It returns the process's
// start time (/proc/PID/stat field 22, man 5 proc_pid_stat), read before
// that check, so that it is the start time of the process the fd's file
// belongs to, and, for a thread's file, the thread's process
// (threadOf). The path is looked up from the process's root, in its
// mount namespace: its /proc may be another PID namespace's.
func checkProcAlive(e *Entry) (start uint64, thread int32, err error) {
	path := GhostPath(e.Target)
	owner := procOwner(path)
	gone := fmt.Errorf("%s has ended since the fd was opened: its /proc files are gone, and a restore would open those of whatever process has its PID by then, or none", ownerName(owner))
	if e.Deleted() {
		return 0, 0, gone
	}
	root := fmt.Sprintf("/proc/%d/root", e.Pid)
	thread, err = threadOf(root, owner)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return 0, 0, gone
	}
	if err != nil {
		return 0, 0, err
	}
	b, err := proc.ReadAll(root + owner + "/stat")
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return 0, 0, gone
	}
	if err != nil {
		return 0, 0, err
	}
	st, err := proc.ParseStat(b)
	if err != nil {
		return 0, 0, fmt.Errorf("%s/stat: %w", owner, err)
	}
	var now unix.Stat_t
	err = unix.Lstat(root+path, &now)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || (err == nil && (now.Dev != e.Stat.Dev || now.Ino != e.Stat.Ino)) {
		return 0, 0, gone
	}
	if err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.StartTime, thread, nil
}

// CheckOutsideProc refuses, at a restore in gocr's PID namespace, an fd
// on a /proc file of a process outside the dump (PathFd.proc_pid) that
// its path would no longer name: the restored process opens the path
// (Finish), so it would get the file of another process that has taken
// the PID since, or none. The process must be the dumped one: the same
// boot, the same start time (/proc/PID/stat field 22). sameBoot tells
// whether the restore runs on the boot of the dump.
func CheckOutsideProc(fd *gocrpb.Fd, sameBoot bool) error {
	path := fd.File.GetPath()
	owner := procOwner(path)
	what := fmt.Sprintf("fd %d is %s, a /proc file of %s outside the dump", fd.Fd, path, ownerName(owner))
	want := fd.GetPath().GetProcStartTime()
	switch {
	case want == 0:
		return fmt.Errorf("%s, which the image does not tell apart from a later process of that PID (an image of an older gocr)", what)
	case !sameBoot:
		return fmt.Errorf("%s, which a restore on another boot cannot find again", what)
	}
	b, err := proc.ReadAll(owner + "/stat")
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%s, which has ended since the dump", what)
	}
	if err != nil {
		return err
	}
	st, err := proc.ParseStat(b)
	if err != nil {
		return fmt.Errorf("%s/stat: %w", owner, err)
	}
	if st.StartTime != want {
		return fmt.Errorf("%s, which has ended since the dump: another process has its PID now", what)
	}
	return nil
}

// procPid is the PID of a path under /proc/PID/, or 0.
func procPid(path string) int32 {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n <= 0 {
		return 0
	}
	return int32(n)
}
