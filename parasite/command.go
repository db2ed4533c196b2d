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

// pollInterval is how long gocr waits on a word in the region before it
// looks whether the thread that should change it can still do so: a
// thread stopped or killed from outside never wakes the futex.
const pollInterval = 50 * time.Millisecond

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
	for i := 0; i < ctlNrArgs; i++ {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		binary.LittleEndian.PutUint64(ctl[ctlArgs+8*i:], v)
	}
	p.seq++
	sharedword.Store(p.local, ctlOff+ctlCmdSeq, p.seq)
	// The byte's value is not read: it only wakes the parasite's read().
	if _, err := unix.Write(p.cmdw, []byte{1}); err != nil {
		// EPIPE: no read end left, as after a setup that failed
		// (the kernel drops the fds a truncated record could not
		// install, the command pipe's read end among them): that is
		// the reason to give.
		if serr := p.awaitSetup(); serr != nil {
			return 0, serr
		}
		return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, err)
	}
	ret, err := p.awaitAnswer(cmd)
	if err != nil {
		return 0, err
	}
	if ret < 0 {
		return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, unix.Errno(-ret))
	}
	return ret, nil
}

// awaitAnswer waits for the parasite to answer the command of sequence
// number p.seq and returns its result as the parasite gave it (-errno on
// failure). The error is the thread stopped or gone meanwhile, or the
// blob's setup failed (parasite/c/abi.h PCMD_SETUP): then no command is
// ever answered.
func (p *Parasite) awaitAnswer(cmd uint32) (int32, error) {
	for {
		done := sharedword.Load(p.local, ctlOff+ctlDoneSeq)
		if done == p.seq {
			break
		}
		if done == setupFailed {
			return 0, p.takeSetup()
		}
		sharedword.Wait(p.local, ctlOff+ctlDoneSeq, done, pollInterval)
		if d := sharedword.Load(p.local, ctlOff+ctlDoneSeq); d != done {
			continue
		}
		if left, err := taskStopped(p.pid); err != nil || left {
			return 0, fmt.Errorf("parasite command %d in %d: %w", cmd, p.pid, ErrParasiteStopped)
		}
	}
	// An answer comes only after a setup that worked.
	if err := p.takeSetup(); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(p.local[ctlOff+ctlRet:])), nil
}

// awaitSetup waits for the blob's setup to be done and takes it.
func (p *Parasite) awaitSetup() error {
	for {
		err := p.takeSetup()
		if err != errSetupPending {
			return err
		}
		sharedword.Wait(p.local, ctlOff+ctlSetupRet, setupPending, pollInterval)
		if sharedword.Load(p.local, ctlOff+ctlSetupRet) != setupPending {
			continue
		}
		if left, serr := taskStopped(p.pid); serr != nil || left {
			return fmt.Errorf("parasite setup in %d: %w", p.pid, ErrParasiteStopped)
		}
	}
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
// stopped or gone.
func taskStopped(tid int) (bool, error) {
	st, err := proc.ReadStat(tid)
	if err != nil {
		return true, err
	}
	return stopped(st.State) || gone(st.State), nil
}

// stopped and gone read a thread's state letter (/proc/PID/stat field 3,
// man 5 proc): stopped by a signal ('T') or in a ptrace stop ('t'); a
// zombie ('Z') or dead ('X').
func stopped(state byte) bool { return state == 'T' || state == 't' }
func gone(state byte) bool    { return state == 'Z' || state == 'X' }
