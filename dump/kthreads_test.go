package dump

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// TestKernelThreads: kthreadd (PID 2, the parent of every kernel thread:
// kernel/kthread.c) is found and alive; gocr itself, a process, is not
// taken for one; a PID whose task exited after the scan is not alive.
func TestKernelThreads(t *testing.T) {
	if st, err := proc.ReadStat(2); err != nil || st.Flags&pfKthread == 0 {
		t.Skipf("PID 2 is not kthreadd here (a PID namespace?): %v", err)
	}
	k := findKernelThreads()
	defer k.close()
	alive := k.alive()
	if !alive[2] {
		t.Errorf("kthreadd (pid 2) not among the kernel threads found: %v", alive)
	}
	if alive[os.Getpid()] {
		t.Errorf("gocr's own pid %d taken for a kernel thread", os.Getpid())
	}

	// A task that exits after the scan: its PID may name another task
	// by the check, so it must be read again.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	k.pidfds[cmd.Process.Pid] = fd
	cmd.Wait()
	if k.alive()[cmd.Process.Pid] {
		t.Errorf("pid %d counted alive after its task exited", cmd.Process.Pid)
	}
}

// TestKernelThreadsFdLimit: with a low open file limit, the pidfds kept
// stay within a quarter of it.
func TestKernelThreadsFdLimit(t *testing.T) {
	all := findKernelThreads()
	n := len(all.pidfds)
	all.close()
	if n <= 10 {
		t.Skipf("only %d kernel threads seen here (a PID namespace?): the limit could not be told from no limit", n)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 40
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	k := findKernelThreads()
	unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	defer k.close()
	if len(k.pidfds) > 10 {
		t.Fatalf("%d pidfds kept with an open file limit of 40, want at most 10", len(k.pidfds))
	}
}
