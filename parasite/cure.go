//go:build linux

package parasite

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Cure removes the parasite and restores the saved registers, xstate and
// signal mask. It leaves the task in a ptrace event stop, exactly as
// Infect found it. It is safe to call on a partly done infection.
func (p *Parasite) Cure() (err error) {
	return p.CureThen(nil)
}

// CureThen is Cure, then, on the tracer thread in the same turn, then
// with Cure's error: what the caller does next with the cured thread
// pays no hand-off to that thread (ptrace.Tracer.Do).
func (p *Parasite) CureThen(then func(error)) (err error) {
	// On the tracer thread at once, as Infect.
	p.t.Do(func() {
		err = p.cure()
		if then != nil {
			then(err)
		}
	})
	return err
}

func (p *Parasite) cure() error {
	if p.running {
		sigs, err := p.t.StopTask(p.pid)
		p.Signals = append(p.Signals, sigs...)
		if err != nil {
			return fmt.Errorf("cure %d: stop parasite: %w", p.pid, err)
		}
		p.running = false
	}
	if p.started && p.local != nil {
		// What the blob's setup made, done or not, is the cure's to
		// close; its error is not the cure's. (Without p.local, a
		// snapshot took the region: every command, the setup's
		// first, was answered.)
		p.takeSetup()
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
	first := []*int64{&p.remoteDataFd[0], &p.remoteDataFd[1], &p.remoteSock, &p.remoteCmdFd, &p.remoteMoved, &p.remoteUffd}
	if !p.threadsAdrift {
		first = append(first, &p.remoteLife)
	}
	if p.helpersGone || p.local != nil && !p.helpersRunning() {
		// The usual case: every fd at once, in as few close_range
		// calls as their numbers allow (one, where they follow each
		// other), each a round trip with the frozen thread.
		for i := range p.remoteFiles {
			first = append(first, &p.remoteFiles[i])
		}
		first = append(first, &p.remoteMemfd)
	}
	errs = p.closeRemote(first)
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
	var last []*int64
	if helpersGone {
		for i := range p.remoteFiles {
			last = append(last, &p.remoteFiles[i])
		}
	}
	errs = append(errs, p.closeRemote(append(last, &p.remoteMemfd))...)
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

// closeRemote closes the target's fds that fds point to (those not -1)
// and marks them closed. Each run of consecutive numbers goes in one
// injected close_range(2) (Linux 5.9 and later; only fds open in the
// range are closed, and every number in a run is one of these), not a
// call per fd: each injected call is a round trip with the stopped
// thread, time the processes stay frozen.
func (p *Parasite) closeRemote(fds []*int64) (errs []error) {
	var nums []int64
	for _, fd := range fds {
		if *fd >= 0 {
			nums = append(nums, *fd)
			*fd = -1
		}
	}
	for _, r := range fdRuns(nums) {
		var err error
		if r[0] == r[1] {
			_, err = p.inject(unix.SYS_CLOSE, uint64(r[0]))
		} else {
			_, err = p.inject(unix.SYS_CLOSE_RANGE, uint64(r[0]), uint64(r[1]), 0)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("close injected fds %d to %d: %w", r[0], r[1], err))
		}
	}
	return errs
}

// fdRuns sorts fd numbers into runs of consecutive ones, each as its
// first and last, in order; duplicates count once.
func fdRuns(nums []int64) [][2]int64 {
	nums = slices.Clone(nums)
	slices.Sort(nums)
	nums = slices.Compact(nums)
	var runs [][2]int64
	for _, n := range nums {
		if len(runs) > 0 && runs[len(runs)-1][1] == n-1 {
			runs[len(runs)-1][1] = n
			continue
		}
		runs = append(runs, [2]int64{n, n})
	}
	return runs
}
