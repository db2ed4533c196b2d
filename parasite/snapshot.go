//go:build linux

package parasite

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Snapshot is a copy-on-write snapshot of an infected process: a process
// the parasite forked from it (parasite/c/abi.h PCMD_SNAPSHOT), whose
// private memory is the infected process's at the instant of the fork
// (the kernel copied the page tables, not the pages: man 2 fork), and
// which writes that memory into the page images while the process runs
// on. It is no child of the process (the parasite reaped the fork child
// that made it) and is in no session or process group of the process's;
// it runs only the blob, every signal blocked, on its own stack in the
// parasite's region. It ends at Close, Kill, or gocr's death (the command
// pipe's EOF).
type Snapshot struct {
	// ch is the command channel to the snapshot process: the same
	// control block, command pipe and file socket as the parasite's,
	// with gocr's ends duplicated so that the cure leaves them open.
	ch    *Parasite
	pidfd int
}

// ErrSnapshotGone means the snapshot process ended before it was done
// (killed from outside).
var ErrSnapshotGone = errors.New("the snapshot process is gone")

// TakeSnapshot forks the infected process into a Snapshot. rseqAddr and
// rseqLen name the infected thread's rseq area (0 if it has none), which
// the kernel may update in the fork child (abi.h): the snapshot puts the
// instant's bytes back.
//
// Precondition: p takes no other command afterwards, and is cured before
// the Snapshot's first command, so that only the snapshot process reads
// the command pipe they share.
func (p *Parasite) TakeSnapshot(rseqAddr uint64, rseqLen uint32) (_ *Snapshot, err error) {
	pid, err := p.callValue(cmdSnapshot, rseqAddr, uint64(rseqLen))
	if err != nil {
		return nil, fmt.Errorf("snapshot of %d: %w", p.pid, err)
	}
	s := &Snapshot{pidfd: -1}
	ch := &Parasite{pid: int(pid), local: p.local, remoteSock: p.remoteSock, seq: p.seq, running: true, setupTaken: true,
		sentFiles: map[uintptr]int64{}, cmdw: -1, sock: -1, lifew: -1, pidfd: -1, uffd: -1}
	s.ch = ch
	// The snapshot process reads the parasite's command pipe: should
	// anything below fail, it is killed and gone before the parasite
	// gets another command. The error then is gocr's, not the kernel's
	// answer to the command (no errno in its chain).
	defer func() {
		if err != nil {
			if s.pidfd >= 0 {
				unix.PidfdSendSignal(s.pidfd, unix.SIGKILL, nil, 0)
				s.waitExit()
			} else {
				unix.Kill(int(pid), unix.SIGKILL)
				for i := 0; i < 100; i++ {
					if left, _ := taskStopped(int(pid)); left {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			ch.local = nil // still the parasite's
			s.closeLocal()
			err = fmt.Errorf("snapshot of %d: %v", p.pid, err)
		}
	}()
	if s.pidfd, err = unix.PidfdOpen(int(pid), 0); err != nil {
		s.pidfd = -1
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	if ch.cmdw, err = unix.FcntlInt(uintptr(p.cmdw), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		ch.cmdw = -1
		return nil, err
	}
	if ch.sock, err = unix.FcntlInt(uintptr(p.sock), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		ch.sock = -1
		return nil, err
	}
	// gocr's mapping of the region is the snapshot's from now on: the
	// cure unmaps the region from the process, not from gocr. No
	// page-stream helper of the parasite's runs now (each is joined
	// within its command), and p takes no command after this one to
	// start another: the cure need not look for them.
	p.helpersGone = !p.helpersRunning()
	p.local = nil
	return s, nil
}

// Pid is the snapshot process's PID.
func (s *Snapshot) Pid() int { return s.ch.pid }

// PassFile hands f to the snapshot process (Parasite.PassFile).
func (s *Snapshot) PassFile(f *os.File) (int64, error) {
	return s.ch.PassFile(f)
}

// WriteStreams has the snapshot process write its memory into the files
// (Parasite.WriteStreams).
func (s *Snapshot) WriteStreams(streams []Stream) (int64, error) {
	return s.ch.WriteStreams(streams)
}

// Release drops the snapshot's pages of the spans, once written
// (abi.h PCMD_RELEASE): a page the process writes afterwards then costs
// no copy, so the snapshot holds at most what is still to write.
func (s *Snapshot) Release(spans []Span) error {
	for len(spans) > 0 {
		n := min(len(spans), maxSpansPerCall)
		for i, sp := range spans[:n] {
			s.ch.putIovec(dataOff+i*iovecSize, sp)
		}
		if err := s.ch.call(cmdRelease, dataOff, uint64(n)); err != nil {
			return fmt.Errorf("release snapshot pages of %d: %w", s.ch.pid, err)
		}
		spans = spans[n:]
	}
	return nil
}

// snapshotExitTimeout bounds the wait for the snapshot process to exit.
const snapshotExitTimeout = 5 * time.Second

// Close ends the snapshot process and waits until it has exited, then
// lets go of gocr's side. Its reaper (the process's nearest subreaper, or
// init) collects it.
func (s *Snapshot) Close() error {
	if s.ch == nil {
		return nil
	}
	pid := s.ch.pid
	err := s.ch.call(cmdFini)
	if err == nil {
		err = s.waitExit()
	}
	if err != nil {
		s.Kill()
		return fmt.Errorf("end snapshot process %d: %w", pid, err)
	}
	s.closeLocal()
	return nil
}

// Kill ends the snapshot process with SIGKILL and lets go of gocr's side.
func (s *Snapshot) Kill() {
	if s.ch == nil {
		return
	}
	if s.pidfd >= 0 {
		unix.PidfdSendSignal(s.pidfd, unix.SIGKILL, nil, 0)
		s.waitExit()
	}
	s.closeLocal()
}

// waitExit waits until the pidfd reads as exited (man 2 pidfd_open: it
// polls readable when the process has terminated).
func (s *Snapshot) waitExit() error {
	deadline := time.Now().Add(snapshotExitTimeout)
	for {
		fds := []unix.PollFd{{Fd: int32(s.pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(pollInterval.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still running after %v", snapshotExitTimeout)
		}
	}
}

func (s *Snapshot) closeLocal() {
	if s.ch != nil {
		s.ch.releaseLocal()
		s.ch = nil
	}
	if s.pidfd >= 0 {
		unix.Close(s.pidfd)
		s.pidfd = -1
	}
}
