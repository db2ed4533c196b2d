//go:build linux

package wptrack

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// held is one process's tracker as a holder keeps it.
type held struct {
	proc  Proc
	uffd  int
	pidfd int // polls readable once the process has exited
}

// Serve runs a holder on listener (Put's socket) until every process it
// tracks has exited or it is given none.
func Serve(listener *os.File) error {
	lfd := int(listener.Fd())
	var since string
	var procs []held
	drop := func(i int) {
		unix.Close(procs[i].uffd)
		unix.Close(procs[i].pidfd)
		procs = append(procs[:i], procs[i+1:]...)
	}
	started := false
	for !started || len(procs) > 0 {
		pfds := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
		for _, h := range procs {
			pfds = append(pfds, unix.PollFd{Fd: int32(h.pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(pfds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("holder poll: %w", err)
		}
		for i := len(pfds) - 1; i >= 1; i-- {
			if pfds[i].Revents != 0 {
				drop(i - 1)
			}
		}
		if pfds[0].Revents == 0 {
			continue
		}
		cfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			continue
		}
		if checkPeer(cfd) != nil {
			unix.Close(cfd)
			continue
		}
		req, fds, err := readRequest(cfd)
		switch {
		case err != nil:
			sendReply(cfd, reply{Error: err.Error()}, nil)
		case req.Op == "take":
			var ps []Proc
			var out []int
			for _, h := range procs {
				ps = append(ps, h.proc)
				out = append(out, h.uffd)
			}
			if sendReply(cfd, reply{Since: since, Procs: ps}, out) == nil {
				since = ""
			}
		case req.Op == "put" && len(fds) == len(req.Procs):
			for len(procs) > 0 {
				drop(0)
			}
			for i, p := range req.Procs {
				pidfd, err := unix.PidfdOpen(p.Pid, 0)
				if err != nil || !startsAt(p) {
					unix.Close(fds[i])
					if err == nil {
						unix.Close(pidfd)
					}
					continue
				}
				procs = append(procs, held{proc: p, uffd: fds[i], pidfd: pidfd})
			}
			since = req.Since
			started = true
			sendReply(cfd, reply{}, nil)
		default:
			closeAll(fds)
			sendReply(cfd, reply{Error: fmt.Sprintf("bad request %q", req.Op)}, nil)
		}
		unix.Close(cfd)
	}
	return nil
}

// startsAt says whether p.Pid is still the process that started at
// p.Start.
func startsAt(p Proc) bool {
	s, err := StartTime(p.Pid)
	return err == nil && s == p.Start
}

func readRequest(fd int) (*request, []int, error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(maxFds*4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	var req request
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		closeAll(fds)
		return nil, nil, err
	}
	return &req, fds, nil
}

func sendReply(fd int, rep reply, fds []int) error {
	b, _ := json.Marshal(rep)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// StartTime is pid's start time (/proc/PID/stat field 22), which with
// the PID names one process for good.
func StartTime(pid int) (uint64, error) {
	s, err := proc.ReadStat(pid)
	return s.StartTime, err
}
