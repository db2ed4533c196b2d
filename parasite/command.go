//go:build linux

package parasite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/sharedword"
)

// ErrCannotPassFile means the image file could not be handed to the
// parasite; nothing was written, and DumpPages still works.
var ErrCannotPassFile = errors.New("cannot pass the image file")

// ErrParasiteStopped means the target stopped or died while running the
// parasite (a fault in the blob, SIGKILL or SIGSTOP from outside).
var ErrParasiteStopped = errors.New("target stopped while running the parasite")

// call runs one command and waits for its answer.
func (p *Parasite) call(cmd uint32, args ...uint64) error {
	_, err := p.callValue(cmd, args...)
	return err
}

// callValue runs one command and returns its non-negative result.
func (p *Parasite) callValue(cmd uint32, args ...uint64) (int32, error) {
	if !p.running {
		return 0, fmt.Errorf("parasite in %d is not running", p.pid)
	}
	ctl := p.local[ctlOff : ctlOff+ctlSize]
	binary.LittleEndian.PutUint32(ctl[ctlCmd:], cmd)
	for i := 0; i < 4; i++ {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		binary.LittleEndian.PutUint64(ctl[ctlArgs+8*i:], v)
	}
	p.seq++
	sharedword.Store(p.local, ctlOff+ctlCmdSeq, p.seq)
	if _, err := unix.Write(p.cmdw, []byte{1}); err != nil {
		return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, err)
	}
	for sharedword.Load(p.local, ctlOff+ctlDoneSeq) != p.seq {
		sharedword.Wait(p.local, ctlOff+ctlDoneSeq, p.seq-1, 50*time.Millisecond)
		if sharedword.Load(p.local, ctlOff+ctlDoneSeq) == p.seq {
			break
		}
		if stopped, err := taskStopped(p.pid); err != nil || stopped {
			return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, ErrParasiteStopped)
		}
	}
	ret := int32(binary.LittleEndian.Uint32(ctl[ctlRet:]))
	if ret < 0 {
		return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, unix.Errno(-ret))
	}
	return ret, nil
}

// PassFile hands f to the parasite over the socket (SCM_RIGHTS, man 7
// unix) so that WriteStreams can write to it, once per file, and returns
// its number in the target. ErrCannotPassFile means the target could not
// take it (at its RLIMIT_NOFILE the kernel drops the fd, MSG_CTRUNC).
func (p *Parasite) PassFile(f *os.File) (int64, error) {
	if remote, ok := p.sentFiles[f.Fd()]; ok {
		return remote, nil
	}
	if err := unix.Sendmsg(p.sock, []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		return 0, fmt.Errorf("%w to %d: %w", ErrCannotPassFile, p.pid, err)
	}
	fd, err := p.callValue(cmdRecvFd, uint64(p.remoteSock))
	if err != nil {
		return 0, fmt.Errorf("%w to %d: %w", ErrCannotPassFile, p.pid, err)
	}
	remote := int64(fd)
	p.sentFiles[f.Fd()] = remote
	p.remoteFiles = append(p.remoteFiles, remote)
	return remote, nil
}

// taskStopped reports whether the thread left the parasite's loop: it is
// in a ptrace stop ('t') or gone.
func taskStopped(tid int) (bool, error) {
	st, err := proc.ReadStat(tid)
	if err != nil {
		return true, err
	}
	return st.State == 't' || st.State == 'T' || st.State == 'Z' || st.State == 'X', nil
}
