//go:build linux

package restorer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// The peer-credentials agent (restorer/c/peercred.c, abi.h): the restorer
// run with the argument "peercred" makes the socket calls that record a
// unix socket's peer credentials, each in a process it clones with the
// dumped pid (clone3 set_tid) and effective ids, which exits once the call
// is made. It is a process of its own for the reason the restorer is: no
// Go code runs in a child gocr creates.

const (
	rstPeercredArg       = "peercred"
	rstPeercredFd        = 3
	rstPeercredMaxGroups = 256

	rstPeercredSocketpair = 1
	rstPeercredListen     = 2
	rstPeercredConnect    = 3
	rstPeercredReaper     = 4

	rstPeercredStepClone  = 1
	rstPeercredStepGroups = 2
	rstPeercredStepGid    = 3
	rstPeercredStepUid    = 4
	rstPeercredStepCall   = 5
	rstPeercredStepExit   = 6
	rstPeercredStepReaper = 7
)

// rstPeercredReq is struct rst_peercred_req.
type rstPeercredReq struct {
	Op       uint32 `c:"op"`
	Pid      int32  `c:"pid"`
	Uid      uint32 `c:"uid"`
	Gid      uint32 `c:"gid"`
	Arg      int32  `c:"arg"`
	NrGroups uint32 `c:"nr_groups"`
	AddrLen  uint32 `c:"addr_len"`
	_        uint32
	Addr     [112]byte                    `c:"addr"`
	Groups   [rstPeercredMaxGroups]uint32 `c:"groups"`
	FdList   int32                        `c:"fd_list"`
	NrFds    uint32                       `c:"nr_fds"`
}

// rstPeercredReply is struct rst_peercred_reply.
type rstPeercredReply struct {
	Err    int32  `c:"err"`
	Step   uint32 `c:"step"`
	Done   uint32 `c:"done"`
	Status int32  `c:"status"`
}

var peercredSteps = map[uint32]string{
	rstPeercredStepClone: "clone3 with its pid", rstPeercredStepGroups: "setgroups", rstPeercredStepGid: "setresgid",
	rstPeercredStepUid: "setresuid", rstPeercredStepCall: "the call", rstPeercredStepExit: "wait4",
	rstPeercredStepReaper: "take over the restore's files",
}

// peerCredAgent implements files.PeerCredMaker; started at its first call.
type peerCredAgent struct {
	// pidns: the restore is in a new PID namespace, which the agent is
	// started in, as its PID 1, so that each call's process has the
	// dumped pid there; SO_PEERCRED reads it as a number in the reader's
	// namespace (net/core/sock.c cred_to_ucred, pid_vnr), and none of
	// gocr's has one there. The agent is then the namespace's reaper
	// (becomeReaper), which must be its init: a namespace ends with its
	// init (man 7 pid_namespaces), and a job dumped from one must be
	// under gocr's reaper as PID 1 (dump/pidns.go).
	pidns bool
	cmd   *exec.Cmd
	ctl   int
}

func newPeerCredAgent(pidns bool) *peerCredAgent { return &peerCredAgent{pidns: pidns, ctl: -1} }

func (a *peerCredAgent) start() error {
	if a.cmd != nil {
		return nil
	}
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	peer := os.NewFile(uintptr(sv[1]), "gocr-peercred")
	defer peer.Close()
	exeFd, err := unix.MemfdCreate("gocr-restorer", unix.MFD_CLOEXEC)
	if err != nil {
		unix.Close(sv[0])
		return fmt.Errorf("memfd: %w", err)
	}
	exe := os.NewFile(uintptr(exeFd), "gocr-restorer")
	defer exe.Close()
	if _, err := exe.Write(restorerELF); err != nil {
		unix.Close(sv[0])
		return fmt.Errorf("write restorer: %w", err)
	}
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exeFd))
	cmd.Args = []string{"gocr-restorer", rstPeercredArg}
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{peer} // the first is fd 3: rstPeercredFd
	cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: restorerAmbientCaps()}
	if a.pidns {
		// As restorer.c start_reaper makes the reaper: a mount
		// namespace of its own for the namespace's /proc.
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWPID | unix.CLONE_NEWNS
	}
	if err := cmd.Start(); err != nil {
		unix.Close(sv[0])
		return fmt.Errorf("start the restorer: %w", err)
	}
	a.cmd, a.ctl = cmd, sv[0]
	return nil
}

// SamePids tells whether gocr reads the sockets' dumped pids: not when
// they are in a new PID namespace, whose pids gocr does not see.
func (a *peerCredAgent) SamePids() bool { return !a.pidns }

// Close ends the agent once its calls are made: it exits at the end of
// its socket. One in a new PID namespace is kept to become its reaper
// (becomeReaper), or is ended by kill.
func (a *peerCredAgent) Close() {
	if a.cmd == nil || a.pidns {
		return
	}
	a.kill()
}

// reaper tells whether the agent is to become the new PID namespace's
// reaper: it was started in it.
func (a *peerCredAgent) reaper() bool { return a != nil && a.pidns && a.cmd != nil }

// kill ends the agent and reaps it. In a new PID namespace, its PID 1,
// every process in it goes too (man 7 pid_namespaces).
func (a *peerCredAgent) kill() {
	if a == nil || a.cmd == nil {
		return
	}
	if a.pidns {
		a.cmd.Process.Kill()
	}
	unix.Close(a.ctl)
	a.cmd.Wait()
	a.cmd, a.ctl = nil, -1
}

// becomeReaper has the agent, PID 1 of the new PID namespace, take over
// files as the restorer would be given them (the first at fd 3) and go
// on as restorer.c's reaper would (agent_reaper): it hands gocr its own
// pidfd through the plan's socket, and from then on it is one of the
// processes the restore created, which gocr watches, reaps or kills
// (created.go); the agent is no longer gocr's to end.
func (a *peerCredAgent) becomeReaper(files []*os.File) error {
	listFd, err := unix.MemfdCreate("gocr-fds", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(listFd)
	list := make([]byte, 4*len(files))
	for i, f := range files {
		binary.NativeEndian.PutUint32(list[4*i:], uint32(f.Fd()))
	}
	if _, err := unix.Pwrite(listFd, list, 0); err != nil {
		return fmt.Errorf("write the fd list: %w", err)
	}
	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(self)
	req := rstPeercredReq{Op: rstPeercredReaper, FdList: int32(listFd), NrFds: uint32(len(files))}
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, &req)
	if err := unix.Sendmsg(a.ctl, buf.Bytes(), unix.UnixRights(self), nil, 0); err != nil {
		return fmt.Errorf("the PID namespace's reaper: send: %w", err)
	}
	b := make([]byte, binary.Size(rstPeercredReply{}))
	n, _, _, _, err := unix.Recvmsg(a.ctl, b, nil, 0)
	if err == nil && n != len(b) {
		err = fmt.Errorf("it ended (an answer of %d bytes)", n)
	}
	if err != nil {
		return fmt.Errorf("the PID namespace's reaper: %w", err)
	}
	var r rstPeercredReply
	binary.Read(bytes.NewReader(b), binary.NativeEndian, &r)
	if r.Err != 0 {
		return fmt.Errorf("the PID namespace's reaper: %s: %w", peercredSteps[r.Step], unix.Errno(-r.Err))
	}
	unix.Close(a.ctl)
	a.cmd, a.ctl = nil, -1
	return nil
}

// call has the agent make one call, passing fd if not -1, and returns the
// fds its answer carries.
func (a *peerCredAgent) call(c *gocrpb.UnixPeerCred, req rstPeercredReq, fd int) ([]int, error) {
	if len(c.GetGroups()) > rstPeercredMaxGroups {
		return nil, fmt.Errorf("its peer (pid %d) has more than %d supplementary groups", c.GetPid(), rstPeercredMaxGroups)
	}
	if err := a.start(); err != nil {
		return nil, fmt.Errorf("the peer-credentials agent: %w", err)
	}
	req.Pid, req.Uid, req.Gid, req.NrGroups = c.GetPid(), c.GetUid(), c.GetGid(), uint32(len(c.GetGroups()))
	copy(req.Groups[:], c.GetGroups())
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, &req)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if err := unix.Sendmsg(a.ctl, buf.Bytes(), oob, nil, 0); err != nil {
		return nil, fmt.Errorf("the peer-credentials agent: send: %w", err)
	}
	// The call's process answers first (unless it could not be made),
	// then the agent once it is reaped.
	var fds []int
	var callErr error
	for {
		b := make([]byte, binary.Size(rstPeercredReply{}))
		oob := make([]byte, unix.CmsgSpace(2*4))
		n, oobn, _, _, err := unix.Recvmsg(a.ctl, b, oob, unix.MSG_CMSG_CLOEXEC)
		if err == nil && n != len(b) {
			err = fmt.Errorf("an answer of %d bytes", n)
		}
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("the peer-credentials agent: %w", err)
		}
		got, err := receivedFds(oob[:oobn])
		fds = append(fds, got...)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("the peer-credentials agent: %w", err)
		}
		var r rstPeercredReply
		binary.Read(bytes.NewReader(b), binary.NativeEndian, &r)
		if r.Err != 0 && callErr == nil {
			callErr = fmt.Errorf("as pid %d uid %d gid %d: %s: %w", c.GetPid(), c.GetUid(), c.GetGid(), peercredSteps[r.Step], unix.Errno(-r.Err))
			if r.Step == rstPeercredStepClone && errors.Is(unix.Errno(-r.Err), unix.EEXIST) {
				callErr = fmt.Errorf("its peer credentials (SO_PEERCRED) name pid %d, which another process holds now", c.GetPid())
			}
		}
		if r.Done != 0 {
			break
		}
	}
	if callErr != nil {
		closeAll(fds)
		return nil, callErr
	}
	return fds, nil
}

func receivedFds(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Socketpair makes a socketpair of type typ as c.
func (a *peerCredAgent) Socketpair(c *gocrpb.UnixPeerCred, typ int) ([2]int, error) {
	fds, err := a.call(c, rstPeercredReq{Op: rstPeercredSocketpair, Arg: int32(typ)}, -1)
	if err != nil {
		return [2]int{-1, -1}, err
	}
	if len(fds) != 2 {
		closeAll(fds)
		return [2]int{-1, -1}, fmt.Errorf("the peer-credentials agent gave %d fds", len(fds))
	}
	return [2]int{fds[0], fds[1]}, nil
}

// Listen has h listen with backlog, as c.
func (a *peerCredAgent) Listen(c *gocrpb.UnixPeerCred, h, backlog int) error {
	fds, err := a.call(c, rstPeercredReq{Op: rstPeercredListen, Arg: int32(backlog)}, h)
	closeAll(fds)
	return err
}

// Connect connects h to the socket bound to name (a path, or an abstract
// name with its leading NUL byte), as c.
func (a *peerCredAgent) Connect(c *gocrpb.UnixPeerCred, h int, name string) error {
	req := rstPeercredReq{Op: rstPeercredConnect}
	// struct sockaddr_un (man 7 unix): the family, then the path and
	// its NUL, or an abstract name's bytes alone.
	binary.NativeEndian.PutUint16(req.Addr[:], unix.AF_UNIX)
	const maxLen = 110 // sizeof(struct sockaddr_un)
	if len(name) == 0 || 2+len(name) > maxLen {
		return fmt.Errorf("a name of %d bytes", len(name))
	}
	copy(req.Addr[2:], name)
	req.AddrLen = uint32(2 + len(name))
	if name[0] != 0 && req.AddrLen < maxLen {
		req.AddrLen++
	}
	fds, err := a.call(c, req, h)
	closeAll(fds)
	return err
}
