//go:build linux

package wptrack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// A tracker ends when the last copy of its userfaultfd is closed, so
// between two dumps something must keep one open: a holder, a small
// process a dump starts (gocr itself, run with the listening socket as fd
// 3) that keeps the trackers of one job's processes and hands copies to
// the next dump over a unix socket. The socket is abstract (man 7 unix),
// so nothing is left on disk, named by the job's root process and its
// start time (a reused PID names another socket). Only a process of the
// holder's own user (or root) is answered (SO_PEERCRED), and a dump
// trusts only a holder of its own user or root: a userfaultfd reaches
// the job's memory.
//
// What a holder keeps is valid only since one dump: Take hands the
// trackers over and forgets that dump, so a dump that fails or dies after
// taking them never leaves a holder that claims the job's writes since
// a dump its scans already consumed; Put, called once a dump is complete,
// names the new one. A holder ends when every process it tracks has
// exited (pidfd_open(2): the fd polls readable), or when given nothing.

// Proc identifies one tracked process: its PID and start time
// (/proc/PID/stat field 22), so a reused PID is never taken for it.
type Proc struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Held is what a holder hands over: the trackers, by process, and the
// dump (its ID, hex) since which they say what was written; "" if none.
type Held struct {
	Since    string
	Procs    []Proc
	Trackers []*Tracker
}

// Close closes every tracker copy in h.
func (h *Held) Close() {
	if h == nil {
		return
	}
	for _, t := range h.Trackers {
		t.Close()
	}
}

type request struct {
	Op    string `json:"op"` // "take" or "put"
	Since string `json:"since,omitempty"`
	Procs []Proc `json:"procs,omitempty"`
}

type reply struct {
	Since string `json:"since,omitempty"`
	Procs []Proc `json:"procs,omitempty"`
	Error string `json:"error,omitempty"`
}

// maxFds is SCM_MAX_FD (include/net/scm.h): the most fds one message
// carries.
const maxFds = 253

// socketName is the abstract name of the holder of the job whose root is
// root.
func socketName(root Proc) string {
	return fmt.Sprintf("@gocr-wptrack-%d-%d", root.Pid, root.Start)
}

// Take asks the holder of root's job for its trackers. No holder: nil,
// nil. The holder forgets its Since at once.
func Take(root Proc) (*Held, error) {
	fd, err := dial(root)
	if err != nil || fd < 0 {
		return nil, err
	}
	defer unix.Close(fd)
	rep, fds, err := exchange(fd, request{Op: "take"}, nil)
	if err != nil {
		return nil, fmt.Errorf("take the write trackers of pid %d: %w", root.Pid, err)
	}
	if len(fds) != len(rep.Procs) {
		for _, f := range fds {
			unix.Close(f)
		}
		return nil, fmt.Errorf("take the write trackers of pid %d: %d processes, %d fds", root.Pid, len(rep.Procs), len(fds))
	}
	h := &Held{Since: rep.Since, Procs: rep.Procs}
	for _, f := range fds {
		h.Trackers = append(h.Trackers, Resume(f))
	}
	return h, nil
}

// Put gives the holder of root's job the trackers of procs (copies: the
// caller still closes its own), valid since the dump since; a holder is
// started with holderCmd (its listening socket as fd 3) if none runs.
// Given no process, a running holder ends.
func Put(root Proc, since string, procs []Proc, trackers []*Tracker, holderCmd []string) error {
	if len(procs) > maxFds {
		procs, trackers = procs[:maxFds], trackers[:maxFds]
	}
	fd, err := dial(root)
	if err == nil && fd < 0 {
		if len(procs) == 0 {
			return nil
		}
		fd, err = spawn(root, holderCmd)
	}
	if err != nil {
		return fmt.Errorf("hand the write trackers of pid %d to their holder: %w", root.Pid, err)
	}
	defer unix.Close(fd)
	var fds []int
	for _, t := range trackers {
		fds = append(fds, t.Fd())
	}
	if _, _, err := exchange(fd, request{Op: "put", Since: since, Procs: procs}, fds); err != nil {
		return fmt.Errorf("hand the write trackers of pid %d to their holder: %w", root.Pid, err)
	}
	return nil
}

// dial connects to root's holder: -1 and no error if there is none.
func dial(root Proc) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: socketName(root)})
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		unix.Close(fd)
		return -1, nil
	}
	if err == nil {
		err = checkPeer(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// checkPeer accepts a peer of this process's user, or root.
func checkPeer(fd int) error {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("the peer runs as uid %d", cred.Uid)
	}
	return nil
}

// spawn binds root's holder socket, starts the holder with it and
// connects to it. Another gocr that bound it first wins: its holder is
// used.
func spawn(root Proc, holderCmd []string) (int, error) {
	if len(holderCmd) == 0 {
		return -1, errors.New("no holder command")
	}
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: socketName(root)}); err != nil {
		unix.Close(lfd)
		if errors.Is(err, unix.EADDRINUSE) {
			if fd, err := dial(root); err != nil || fd >= 0 {
				return fd, err
			}
		}
		return -1, fmt.Errorf("bind the holder socket: %w", err)
	}
	if err := unix.Listen(lfd, 8); err != nil {
		unix.Close(lfd)
		return -1, err
	}
	listener := os.NewFile(uintptr(lfd), "wptrack-holder")
	defer listener.Close()
	cmd := exec.Command(holderCmd[0], holderCmd[1:]...)
	cmd.ExtraFiles = []*os.File{listener}
	// Its own session, no terminal, no stdio, at /: it outlives this
	// gocr, is no part of the job and keeps no file system busy.
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start the holder: %w", err)
	}
	go cmd.Wait() // reaped if it ends while this gocr runs
	return dial(root)
}

// exchange sends req with fds and reads the reply with the fds it carries.
func exchange(fd int, req request, fds []int) (*reply, []int, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, b, oob, nil, 0); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 64<<10)
	oobBuf := make([]byte, unix.CmsgSpace(maxFds*4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oobBuf, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	got, err := parseRights(oobBuf[:oobn])
	if err != nil {
		return nil, nil, err
	}
	var rep reply
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		closeAll(got)
		return nil, nil, fmt.Errorf("holder's reply: %w", err)
	}
	if rep.Error != "" {
		closeAll(got)
		return nil, nil, errors.New(rep.Error)
	}
	return &rep, got, nil
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, f := range fds {
		unix.Close(f)
	}
}
