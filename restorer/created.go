//go:build linux

package restorer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// created is every process this restore has made, each known by the pidfd
// its creator made with clone3 CLONE_PIDFD and handed to gocr before doing
// anything else (restorer/c/restorer.c send_pidfd). A failed restore kills
// through these and nothing else: a PID names whatever holds it now,
// another restore's process or one that took the PID meanwhile, while a
// pidfd names one process from its creation on and never another, even
// once its PID is free again (man 2 pidfd_open, man 2 clone3
// CLONE_PIDFD). gocr could not get the same from outside without a race:
// pidfd_open on a PID it read earlier may already name someone else.
//
// A process whose creator dies before handing its pidfd over kills itself
// (PR_SET_PDEATHSIG, set first thing in the new process), so every process
// of the restore is either known here or dying.
type created struct {
	sock   *os.File // gocr's end; the restorer gets the other
	pidfds []int    // by process table index; -1 until handed over
	killed []bool
	// reaper is the table index the reaper of a new PID namespace is
	// handed over as (one past the processes), or -1 without one.
	reaper int
}

// newCreated makes the socket for a table of n processes and returns the
// end to pass to the restorer. SOCK_SEQPACKET keeps each process's
// message whole, with its fd (man 7 unix).
func newCreated(n int) (*created, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("pidfd socket: %w", err)
	}
	c := &created{sock: os.NewFile(uintptr(fds[0]), "gocr-pidfds"), pidfds: make([]int, n), killed: make([]bool, n), reaper: -1}
	for i := range c.pidfds {
		c.pidfds[i] = -1
	}
	return c, os.NewFile(uintptr(fds[1]), "gocr-pidfds-restorer"), nil
}

// withReaper makes room for the reaper of a new PID namespace, which the
// restorer hands over after the processes (restorer/c/abi.h rst_tree).
func (c *created) withReaper() {
	c.reaper = len(c.pidfds)
	c.pidfds = append(c.pidfds, -1)
	c.killed = append(c.killed, false)
}

// receive takes every pidfd handed over so far, without waiting. A message
// that names no process of the table, or one already known, cannot come
// from the restorer: its fd is closed and otherwise ignored.
func (c *created) receive() {
	fd := int(c.sock.Fd())
	buf := make([]byte, 4)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || (n == 0 && oobn == 0) {
			return // EAGAIN: nothing more for now; EOF: nobody can send
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if rights, err := unix.ParseUnixRights(&m); err == nil {
					fds = append(fds, rights...)
				}
			}
		}
		idx := -1
		if n == 4 { // restorer.c send_pidfd: the table index, a u32
			idx = int(binary.LittleEndian.Uint32(buf))
		}
		for i, pidfd := range fds {
			if i == 0 && idx >= 0 && idx < len(c.pidfds) && c.pidfds[idx] < 0 {
				c.pidfds[idx] = pidfd
				continue
			}
			unix.Close(pidfd)
		}
	}
}

// awaitHandedOver waits until the pidfd of every process live(idx) names
// is handed over, and returns -1, or the index of one still missing once
// ctx ends or 5 s pass. A new process runs beside its creator from
// clone3 on (man 2 clone3), so it can have rebuilt itself before the
// creator's sendmsg of its pidfd: that comes a moment later.
func (c *created) awaitHandedOver(ctx context.Context, live func(idx int) bool) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.receive()
		missing := -1
		for i, fd := range c.pidfds {
			if fd < 0 && i != c.reaper && live(i) {
				missing = i
				break
			}
		}
		if missing < 0 || ctx.Err() != nil || time.Now().After(deadline) {
			return missing
		}
		pfd := []unix.PollFd{{Fd: int32(c.sock.Fd()), Events: unix.POLLIN}}
		unix.Poll(pfd, 10)
	}
}

// exited reports whether process idx is known and has exited: a pidfd is
// readable once its process has (man 2 pidfd_open, "poll").
func (c *created) exited(idx int) bool {
	fd := c.pidfds[idx]
	if fd < 0 {
		return false
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// reaped reports whether process idx is known and gone for good, its PID
// free again: the pidfd's fdinfo shows Pid -1 once the process has been
// reaped (man 5 proc_pid_fdinfo; kernel fs/pidfs.c pidfd_show_fdinfo).
func (c *created) reaped(idx int) bool {
	fd := c.pidfds[idx]
	if fd < 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			return strings.TrimSpace(v) == "-1"
		}
	}
	return false
}

// killAll ends every process this restore created and waits until each
// is gone, so nothing is left behind and its PIDs are free for another
// try. A killed process can hand over no more pidfds, so once all known
// ones have exited, whatever is still in the socket is the last to kill.
// The root is gocr's child (CLONE_PARENT) and is reaped here. The others'
// parents die with them; gocr is their child subreaper meanwhile, so they
// come to gocr and it reaps them at once, rather than waiting for init,
// which may take seconds (docs/INTERNALS.md, kernel facts).
func (c *created) killAll(root int) {
	deadline := time.Now().Add(5 * time.Second)
	defer becomeSubreaper()()
	for {
		c.receive()
		more := false
		for i, fd := range c.pidfds {
			if fd >= 0 && !c.killed[i] {
				// ESRCH: reaped already, nothing to kill.
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				c.killed[i] = true
				more = true
			}
		}
		if !more {
			break
		}
		for i := range c.pidfds {
			for c.killed[i] && !c.exited(i) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	if c.reaper >= 0 {
		// gocr's child is the reaper; killing it kills its whole
		// namespace, which it reaps before it is gone (man 7
		// pid_namespaces).
		if pid := c.hostPid(c.reaper); pid > 0 {
			reapChild(pid, deadline)
		}
	} else if c.pidfds[0] >= 0 {
		reapChild(root, deadline)
	}
	for i := range c.pidfds {
		for c.killed[i] && !c.reapCreated(i) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// reapCreated reaps process idx if it has come to gocr and exited, and
// reports whether it is reaped by anyone. waitid(P_PIDFD) reaps only the
// process its pidfd names, and only if it is gocr's child (man 2 waitid):
// never another child of gocr's, nor a process init is to reap.
func (c *created) reapCreated(idx int) bool {
	if fd := c.pidfds[idx]; fd >= 0 {
		var info unix.Siginfo
		unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WALL, nil)
	}
	return c.reaped(idx)
}

// becomeSubreaper makes gocr the child subreaper of its descendants, so
// that those orphaned come to it rather than to init (man 2 prctl,
// PR_SET_CHILD_SUBREAPER; kernel/exit.c find_new_reaper), and returns
// what puts back how it was. cr_run is a subreaper already and stays one.
func becomeSubreaper() (restore func()) {
	var was int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0); err != nil || was != 0 {
		return func() {}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return func() {}
	}
	return func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }
}

// close lets go of every pidfd and the socket.
func (c *created) close() {
	for i, fd := range c.pidfds {
		if fd >= 0 {
			unix.Close(fd)
			c.pidfds[i] = -1
		}
	}
	c.sock.Close()
}

// reapChild reaps gocr's child pid once it has exited, waiting until
// deadline. wait4 on a PID only ever reaps gocr's own child, and a child's
// PID cannot pass to another process before gocr reaps it.
func reapChild(pid int, deadline time.Time) {
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if wpid == pid || (err != nil && !errors.Is(err, unix.EINTR)) || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
