//go:build linux

package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/ptrace"
)

// While gocr reads the TCP connections, every one of them is in repair
// mode, where the job's own recv(2) fails with EPERM and send(2) with
// EINVAL (net/ipv4/tcp.c tcp_recvmsg_locked, tcp_sendmsg_locked). Should
// gocr die then, its TCP watchdog takes them out of repair mode
// (files/tcpwatch.go), but the job's threads are released by the tracer
// thread's exit, which can come before the watchdog is even woken: a
// thread interrupted in recv on a connection restarts it at once. So for
// that time every thread of every process holding a connection is held:
// set to make, if released, a timed wait that nothing can end early (an
// rt_sigtimedwait for no signal, every signal blocked) and then
// rt_sigreturn to its own state (ptrace.Injection.Hold). gocr alive, no
// thread runs the wait: the hold is undone before the processes go on.

// connectionHold is how long a thread released by gocr's death waits
// before it runs its own code: far more than the watchdog takes to leave
// repair mode (a few system calls once it is woken).
const connectionHold = 2 * time.Second

// holdConnectionUsers holds every thread of the processes that hold TCP
// connections and returns how to undo it. A
// process stopped by job control is left: released, it stops again
// (dump.go, tree.release).
func holdConnectionUsers(t *ptrace.Tracer, tree *frozenTree, states []*state) (undo func() error, err error) {
	var held []*ptrace.Injection
	undo = func() error {
		var errs []error
		for _, in := range held {
			errs = append(errs, in.Finish())
		}
		held = nil
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	for i, st := range states {
		fp := tree.procs[i]
		if fp.zombie || fp.stopSignal != 0 || !holdsConnection(st) {
			continue
		}
		for _, tid := range fp.tids {
			in, err := t.PrepareInjection(tid)
			if err != nil {
				return nil, fmt.Errorf("pid %d: hold thread %d while its connections are read: %w", fp.pid, tid, err)
			}
			// The wait's arguments in the scratch below the frame: an
			// empty signal set (8 bytes), then the timeout (struct
			// timespec).
			args := make([]byte, 8+16)
			binary.LittleEndian.PutUint64(args[8:], uint64(connectionHold/time.Second))
			binary.LittleEndian.PutUint64(args[16:], uint64(connectionHold%time.Second))
			if err := ptrace.WriteMemory(tid, in.Scratch, args); err != nil {
				in.Finish()
				return nil, fmt.Errorf("pid %d: hold thread %d: %w", fp.pid, tid, err)
			}
			held = append(held, in)
			// rt_sigtimedwait(set, info, timeout, sigsetsize), man 2
			// rt_sigtimedwait: with no signal in the set it ends at the
			// timeout (EAGAIN), and it keeps no restart block of the
			// thread's.
			if err := in.Hold(unix.SYS_RT_SIGTIMEDWAIT, in.Scratch, 0, in.Scratch+8, 8); err != nil {
				return nil, fmt.Errorf("pid %d: %w", fp.pid, err)
			}
		}
	}
	return undo, nil
}

// holdsConnection tells whether the process has a TCP connection among
// its fds (its own or shared).
func holdsConnection(st *state) bool {
	for _, fd := range st.files.GetFds() {
		if fd.GetInetSocket().GetTcp() != nil {
			return true
		}
	}
	return false
}
