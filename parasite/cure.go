//go:build linux

package parasite

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Cure removes the parasite and restores the saved registers, xstate and
// signal mask. It leaves the task in a ptrace event stop, exactly as
// Infect found it. It is safe to call on a partly done infection.
func (p *Parasite) Cure() error {
	if p.running {
		sigs, err := p.t.StopTask(p.pid)
		p.Signals = append(p.Signals, sigs...)
		if err != nil {
			return fmt.Errorf("cure %d: stop parasite: %w", p.pid, err)
		}
		p.running = false
	}
	errs := p.removeInjected()
	errs = append(errs, p.restoreThread()...)
	p.releaseLocal()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cure %d: %w", p.pid, err)
	}
	return nil
}

// removeInjected closes in the target every fd the infection gave it and
// unmaps the region, except what a thread still in the region needs.
// Precondition: the parasite's thread is stopped.
func (p *Parasite) removeInjected() (errs []error) {
	closeRemote := func(fd *int64) {
		if *fd >= 0 {
			if _, err := p.inject(unix.SYS_CLOSE, uint64(*fd)); err != nil {
				errs = append(errs, fmt.Errorf("close injected fd %d: %w", *fd, err))
			}
			*fd = -1
		}
	}
	for i := range p.remoteDataFd {
		closeRemote(&p.remoteDataFd[i])
	}
	closeRemote(&p.remoteSock)
	closeRemote(&p.remoteCmdFd)
	if !p.threadsAdrift {
		closeRemote(&p.remoteLife)
	}
	// A helper still running would lose its code and stack with the
	// region, and could write into whatever file later took its fd's
	// number: both stay until it is gone.
	helpersGone := true
	if p.local != nil {
		if err := p.waitHelpers(); err != nil {
			errs = append(errs, err)
			helpersGone = false
		}
	}
	if helpersGone {
		for i := range p.remoteFiles {
			closeRemote(&p.remoteFiles[i])
		}
	}
	closeRemote(&p.remoteMemfd)
	if p.remoteBase != 0 && helpersGone && !p.threadsAdrift {
		if _, err := p.inject(unix.SYS_MUNMAP, p.remoteBase, regionSize); err != nil {
			errs = append(errs, fmt.Errorf("unmap parasite: %w", err))
		}
		p.remoteBase = 0
	}
	return errs
}

// restoreThread brings the thread back to its event stop and puts back
// what the infection changed. The registers go back last (Finish): until
// then they are the blob's, which cures itself, or the injection's, which
// rt_sigreturn to the saved state, so gocr dying here still leaves the
// thread as Infect found it.
func (p *Parasite) restoreThread() (errs []error) {
	if err := p.t.SetXstate(p.pid, p.savedXstate); err != nil {
		errs = append(errs, err)
	}
	if err := p.inj.Finish(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// releaseLocal lets go of gocr's side of the infection: its mapping of
// the region and its ends of the pipes and the socket.
func (p *Parasite) releaseLocal() {
	if p.local != nil {
		unix.Munmap(p.local)
		p.local = nil
	}
	for i, f := range p.pipes {
		if f != nil {
			f.Close()
			p.pipes[i] = nil
		}
	}
	for _, fd := range []*int{&p.pidfd, &p.sock, &p.cmdw, &p.lifew, &p.uffd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}
