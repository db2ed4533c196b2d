//go:build linux

package restorer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/ptrace"
)

// finish removes the restorer from every process and gives every thread
// its dumped registers, extended state and signal mask, then releases
// them all in one atomic step, the commit: lifeline is gocr's write end
// of the pipe whose read end every restored process holds. A process
// dumped stopped (job control) is released into a stop by the same
// signal. All threads of a process are stopped before the restorer's
// code, which they are parked in, goes.
// host gives the TID gocr sees each dumped TID by (another one in a new
// PID namespace).
//
// Why a commit and not the release itself: detaching is one thread at a
// time, so gocr killed in the middle would leave the threads released
// running and kill the others (PTRACE_O_EXITKILL). Instead each thread
// is released into the gate (ptrace.Injection.Gate): it waits in read(2)
// on its own fd of the lifeline, with its final state in a signal frame.
// The commit is one write(2) of a byte for every thread: each then reads
// its byte, closes its fd and rt_sigreturns into its state. Should gocr
// die before, every thread reads end of file and its process exits, or
// is killed still attached: the whole job ends, the images restore
// again. Should it die after, the bytes are in the pipe: the whole job
// runs.
func finish(ctx context.Context, procs []*proc, shared []byte, host func(int32) int, lifeline *os.File) error {
	t := ptrace.NewTracer()
	defer t.Close()
	// On failure the caller kills the processes, which ends the tracing.
	// Should gocr die instead, every thread still attached is killed
	// with it (SeizeExitKill): a process finished here but not yet
	// released must not run on while the others, parked, end on the
	// lifeline's EOF.
	threads := 0
	var gated []gatedProc
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		pid := host(pr.task.Pid)
		for _, th := range pr.task.Threads {
			tid := host(th.Tid)
			if err := t.SeizeExitKill(tid); err != nil {
				return fmt.Errorf("seize pid %d thread %d: %w", pid, tid, err)
			}
			if _, err := t.StopTaskContext(ctx, tid); err != nil {
				return fmt.Errorf("stop pid %d thread %d: %w", pid, tid, err)
			}
		}
		off := int(pr.plan.offset)
		base := binary.LittleEndian.Uint64(shared[off+offRestorerBase:])
		size := binary.LittleEndian.Uint64(shared[off+offRestorerSize:])
		lifeFd := int32(binary.LittleEndian.Uint32(shared[off+offLifelineFd:]))
		// Should gocr die from here on, every thread still attached
		// is killed (SeizeExitKill).
		in, err := t.PrepareInjection(pid)
		if err != nil {
			return err
		}
		// Each thread waits at the gate on a lifeline fd of its own and
		// closes it once through: one thread closing a shared one could
		// close, instead, the fd a thread already running had just
		// opened under that number. The first thread keeps the
		// restorer's, above every dumped fd (restorer.c restore_fds);
		// the others get theirs above it (man 2 fcntl F_DUPFD_CLOEXEC).
		fds := []int{int(lifeFd)}
		for range pr.task.Threads[1:] {
			ret, err := in.Syscall(unix.SYS_FCNTL, uint64(lifeFd), unix.F_DUPFD_CLOEXEC, uint64(lifeFd)+1)
			if err == nil {
				err = ptrace.SyscallError(ret)
			}
			if err != nil {
				return fmt.Errorf("pid %d: a lifeline fd for each of its %d threads above fd %d: %w", pid, len(pr.task.Threads), lifeFd, err)
			}
			fds = append(fds, int(ret))
		}
		// The restorer goes last: with it go the kernel's vDSO and vvar
		// pages it parked in its hole (restorer.c restore_memory) that
		// the dump had not, which the calls above may run on
		// (ptrace.Injection); the gate then runs on the process's own
		// code.
		ret, err := in.Syscall(unix.SYS_MUNMAP, base, size)
		if err == nil {
			err = ptrace.SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("pid %d: unmap restorer: %w", pid, err)
		}
		if err := in.Finish(); err != nil {
			return err
		}
		gated = append(gated, gatedProc{pid: pid, fds: fds, stopped: pr.task.StopSignal != 0})
		// A process dumped stopped by job control stops again, by the
		// same signal, before its threads run any of its code: the
		// group-stop starts here, and each thread enters it once
		// through the gate (releaseStopped).
		if sig := int(pr.task.StopSignal); sig != 0 {
			if err := t.EnterGroupStop(pid, sig); err != nil {
				return fmt.Errorf("pid %d: stop it again: %w", pid, err)
			}
		}
		for i, th := range pr.task.Threads {
			tid := host(th.Tid)
			regs := ptrace.RegsFromProto(th.Regs)
			restartSyscall(&regs)
			if err := t.SetRegs(tid, &regs); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			if err := t.SetXstate(tid, th.Xsave); err != nil {
				return fmt.Errorf("pid %d thread %d: set extended registers: %w", pid, tid, err)
			}
			if err := t.SetSigmask(tid, th.Sigmask); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			// The signal frame holds the state just set, which the
			// kernel has checked (a bad segment or xstate fails here,
			// not in the thread's rt_sigreturn), where a signal's
			// would go.
			lo, hi := altStack(th)
			in, err := t.PrepareInjectionOn(tid, lo, hi)
			if err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			site, err := in.Gate(fds[i])
			if err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			g := &gated[len(gated)-1]
			g.tids = append(g.tids, tid)
			g.gates = append(g.gates, site)
			threads++
		}
	}
	testhook.PauseContext(ctx, testhook.PauseBeforeRelease)
	if err := stopped(ctx); err != nil {
		return err
	}
	// Into the gate, children first, each leader last. A process dumped
	// stopped stays attached (releaseStopped).
	if err := t.DetachAll(gateOrder(gated, false)); err != nil {
		return fmt.Errorf("release the restored processes: %w", err)
	}
	// Every thread in its read before the commit: one through the gate
	// first runs the job's code, which must find every other thread
	// holding its lifeline file already, whatever the job then does
	// with fd numbers it does not know (close_range).
	if err := atGate(gated); err != nil {
		return fmt.Errorf("release the restored processes: %w", err)
	}
	if err := holdStopped(t, gated); err != nil {
		return fmt.Errorf("release the restored processes: %w", err)
	}
	if err := commit(lifeline, threads); err != nil {
		return err
	}
	// Committed: the job runs whatever happens now, so nothing here
	// fails the restore.
	if err := releaseStopped(t, gated); err != nil {
		fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
	}
	if err := throughGate(lifeline, gated); err != nil {
		fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
	}
	return nil
}

// altStack is the alternate signal stack of a restored thread, [lo, hi),
// hi 0 if it has none: the gate's frame goes there, where a SA_ONSTACK
// handler's would (ptrace.PrepareInjectionOn).
func altStack(th *gocrpb.Thread) (lo, hi uint64) {
	ss := th.GetSigaltstack()
	if ss == nil || ss.GetFlags()&ssDisable != 0 || ss.GetSize() == 0 {
		return 0, 0
	}
	return ss.GetSp(), ss.GetSp() + ss.GetSize()
}

// gatedProc is a process whose threads tids wait at the gate (at gates),
// each on one of fds.
type gatedProc struct {
	pid     int
	fds     []int
	tids    []int
	gates   []ptrace.GateSite
	stopped bool
}

// gateWait bounds the wait for the threads to go through the gate once
// committed: a read, a close and a sigreturn each.
const gateWait = 10 * time.Second

// atGate waits until every thread released into the gate waits in its
// read(2) there: /proc/PID/task/TID/syscall gives the call's number
// first and the instruction pointer, right after the gate's syscall
// instruction, last (man 5 proc_pid_syscall). A process stopped by job
// control is still attached there (holdStopped).
func atGate(gated []gatedProc) error {
	deadline := time.Now().Add(gateWait)
	for _, g := range gated {
		if g.stopped {
			continue
		}
		for i, tid := range g.tids {
			path := fmt.Sprintf("/proc/%d/task/%d/syscall", g.pid, tid)
			want := fmt.Sprintf("%#x", g.gates[i].Read+2)
			for {
				b, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("pid %d thread %d: %w", g.pid, tid, err)
				}
				f := strings.Fields(string(b))
				if len(f) > 1 && f[0] == strconv.Itoa(unix.SYS_READ) && f[len(f)-1] == want {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("pid %d thread %d did not reach its read in the release gate within %v (%s)", g.pid, tid, gateWait, strings.TrimSpace(string(b)))
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return nil
}

// throughGate waits until every thread has gone through the gate, its
// lifeline fd closed and its instruction pointer out of the gate's code,
// so that a restore returns with each process as it was dumped, nothing
// of gocr's left in its fd table or its threads' state. A fd number no
// longer naming the lifeline (/proc/PID/fd/N gone, or another file the
// job has opened since) is closed. /proc/PID/task/TID/syscall gives the
// stack and instruction pointers of a thread that is not running, last,
// or says "running" of one on a CPU (man 5 proc_pid_syscall), which, its
// fd closed, is at most a few instructions from its rt_sigreturn. A process
// stopped by job control is through already (releaseStopped).
func throughGate(lifeline *os.File, gated []gatedProc) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(lifeline.Fd()), &st); err != nil {
		return fmt.Errorf("lifeline: fstat: %w", err)
	}
	deadline := time.Now().Add(gateWait)
	wait := func(through func() bool, what string) error {
		for !through() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s %v after the release", what, gateWait)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	for _, g := range gated {
		for _, fd := range g.fds {
			path := fmt.Sprintf("/proc/%d/fd/%d", g.pid, fd)
			closed := func() bool {
				var fst unix.Stat_t
				return unix.Stat(path, &fst) != nil || fst.Ino != st.Ino || fst.Dev != st.Dev
			}
			if err := wait(closed, fmt.Sprintf("pid %d: lifeline fd %d still open", g.pid, fd)); err != nil {
				return err
			}
		}
		for i, tid := range g.tids {
			path := fmt.Sprintf("/proc/%d/task/%d/syscall", g.pid, tid)
			out := func() bool {
				b, err := os.ReadFile(path)
				f := strings.Fields(string(b))
				if err != nil || len(f) < 2 {
					return true // gone, or running
				}
				pc, err := strconv.ParseUint(strings.TrimPrefix(f[len(f)-1], "0x"), 16, 64)
				if err != nil {
					return true
				}
				sp, err := strconv.ParseUint(strings.TrimPrefix(f[len(f)-2], "0x"), 16, 64)
				return err != nil || !g.gates[i].Holds(pc, sp)
			}
			if err := wait(out, fmt.Sprintf("pid %d thread %d still in the release gate", g.pid, tid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// commit writes a byte (ptrace.CommitByte) for each of n threads waiting
// at the gate, and one more, which stays unread for good, the mark of the commit the TCP
// watchdog reads (files/tcpwatch.go), in one write(2): the last
// irreversible step of the restore. Up to PIPE_BUF
// bytes a pipe write is atomic (man 7 pipe); past it, the pipe is made
// big enough first (F_SETPIPE_SZ, man 2 fcntl), and a write into an empty
// pipe with room for all of it copies all of it before it returns,
// never waiting, so nothing can cut it short: pipe_write only looks at
// signals while it waits for room (fs/pipe.c).
func commit(lifeline *os.File, n int) error {
	// PIPE_BUF, include/uapi/linux/limits.h.
	const pipeBuf = 4096
	fd := int(lifeline.Fd())
	n++
	if n > pipeBuf {
		size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		if err == nil && size < n {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, n)
		}
		if err != nil {
			return fmt.Errorf("release the restored processes: lifeline pipe of %d bytes: %w", n, err)
		}
	}
	b := bytes.Repeat([]byte{ptrace.CommitByte}, n)
	for {
		w, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == nil && w != n {
			err = fmt.Errorf("%d of %d bytes written", w, n)
		}
		if err != nil {
			return fmt.Errorf("release the restored processes: write the lifeline: %w", err)
		}
		testhook.KillNth(testhook.KillInRelease)
		return nil
	}
}

// restartSyscall prepares a thread dumped inside an interrupted system
// call. Registers set at a ptrace event stop go through the kernel's
// restart logic on resume (arch/x86/kernel/signal.c
// arch_do_signal_or_restart): -ERESTARTSYS, -ERESTARTNOINTR and
// -ERESTARTNOHAND re-execute the call, as they would have in the dumped
// process. -ERESTART_RESTARTBLOCK would call restart_syscall, whose
// restart block lived in the old kernel task and is gone (a fresh task's is
// do_no_restart_syscall: -EINTR); restarting the original call (the dump
// saved a thread in restart_syscall with its original call's number) with
// its original arguments instead is what the program can tell apart
// least, a relative sleep with what was left of it where the kernel wrote
// that down (ptrace.SleepRemainder).
func restartSyscall(r *ptrace.Regs) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	if int64(r.Rax) == -int64(ptrace.ERESTART_RESTARTBLOCK) {
		ptrace.SleepRemainder(r)
		restart := -int64(ptrace.ERESTARTNOINTR)
		r.Rax = uint64(restart)
	}
}
