//go:build linux

package parasite

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// TakeUserfaultfd hands over gocr's copy of the userfaultfd the
// infection made (Options.Userfaultfd), or -1 and why there is none; the
// caller closes it. Until taken, it is closed with the parasite.
func (p *Parasite) TakeUserfaultfd() (int, error) {
	fd, err := p.uffd, p.uffdErr
	p.uffd = -1
	if fd < 0 && err == nil {
		err = fmt.Errorf("no userfaultfd was asked for at infection")
	}
	return fd, err
}

// makeUserfaultfd makes a userfaultfd(2) in the process with flags (none
// if 0) and keeps gocr's copy of it (pidfd_getfd(2)); the process's own
// fd is closed again, so the process holds nothing new. A userfaultfd
// acts on the memory of the process that made it, whoever issues its
// ioctls (fs/userfaultfd.c: the context takes its creator's mm), which is
// how gocr tracks a process's writes from outside (package wptrack).
// It is made while system calls can still be injected, before the blob
// runs in the thread. Failing to make one fails nothing else: the caller
// learns why from TakeUserfaultfd.
func (p *Parasite) makeUserfaultfd(flags uint64) error {
	if flags != 0 {
		p.uffd, p.uffdErr = p.userfaultfd(flags)
	}
	return nil
}

func (p *Parasite) userfaultfd(flags uint64) (int, error) {
	fd, err := p.inject(unix.SYS_USERFAULTFD, flags)
	if err != nil {
		return -1, fmt.Errorf("userfaultfd in pid %d: %w", p.pid, err)
	}
	local, err := unix.PidfdGetfd(p.pidfd, int(fd), 0)
	if err != nil {
		local, err = -1, fmt.Errorf("pidfd_getfd of pid %d's userfaultfd: %w", p.pid, err)
	}
	if _, cerr := p.inject(unix.SYS_CLOSE, fd); cerr != nil && err == nil {
		err = fmt.Errorf("close pid %d's userfaultfd: %w", p.pid, cerr)
	}
	if err != nil {
		if local >= 0 {
			unix.Close(local)
		}
		return -1, err
	}
	return local, nil
}
