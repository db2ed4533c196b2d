package dump

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// pfKthread is PF_KTHREAD, the task flag of a kernel thread
// (include/linux/sched.h), shown in /proc/PID/stat field 9 (man 5 proc).
const pfKthread = 0x00200000

// maxKernelThreadFds bounds the pidfds kept for kernel threads: at most
// 4096, and a quarter of gocr's open file limit (RLIMIT_NOFILE, man 2
// getrlimit), which the dump's own files need; on a machine with more
// kernel threads, the rest are read like any other task.
func maxKernelThreadFds() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(4096, rl.Cur/4))
}

// kernelThreads are the machine's kernel threads as found before the
// freeze, each held by a pidfd. No ptrace(2) can attach to a kernel
// thread (kernel/ptrace.c ptrace_attach refuses PF_KTHREAD), so the
// tracee check, which runs while the processes are frozen, need not read
// them: about nine in ten tasks of a small machine. The pidfd says
// whether the PID still names the same task by then: it polls readable
// once that task has exited (man 2 pidfd_open), and a PID can be taken
// by a new task only after the old one has exited.
type kernelThreads struct {
	pidfds map[int]int
}

// findKernelThreads reads every task's flags; what cannot be read (gone
// meanwhile, or hidden from gocr) is left to the tracee check.
func findKernelThreads() *kernelThreads {
	k := &kernelThreads{pidfds: map[int]int{}}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return k
	}
	most := maxKernelThreadFds()
	for _, e := range ents {
		if len(k.pidfds) >= most {
			break
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The pidfd first: the flags read after it are its task's, if
		// it is still alive when asked (stillKernel).
		fd, err := unix.PidfdOpen(pid, 0) // close-on-exec always

		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(pid); err == nil && st.Flags&pfKthread != 0 {
			k.pidfds[pid] = fd
			continue
		}
		unix.Close(fd)
	}
	return k
}

// alive is the set of PIDs that named a kernel thread before the freeze
// and still name the same one.
func (k *kernelThreads) alive() map[int]bool {
	pids := make([]int, 0, len(k.pidfds))
	fds := make([]unix.PollFd, 0, len(k.pidfds))
	for pid, fd := range k.pidfds {
		pids = append(pids, pid)
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	alive := make(map[int]bool, len(pids))
	if _, err := unix.Poll(fds, 0); err != nil {
		return alive // none known: every task is read
	}
	for i, f := range fds {
		if f.Revents == 0 {
			alive[pids[i]] = true
		}
	}
	return alive
}

func (k *kernelThreads) close() {
	for _, fd := range k.pidfds {
		unix.Close(fd)
	}
	k.pidfds = nil
}
