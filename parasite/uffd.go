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
	if p.running {
		if err := p.awaitSetup(); err != nil {
			return -1, err
		}
	}
	fd, err := p.uffd, p.uffdErr
	p.uffd = -1
	if fd < 0 && err == nil {
		err = fmt.Errorf("no userfaultfd was asked for at infection")
	}
	return fd, err
}

// takeUserfaultfd keeps gocr's copy (pidfd_getfd(2)) of the
// userfaultfd(2) the setup made in the process with flags (none if 0),
// whose number or error is in the control block (parasite/c/abi.h
// PCMD_SETUP). The process's own fd is closed with the other injected
// ones at the cure, so the process keeps nothing new. A userfaultfd acts
// on the memory of the process that made it, whoever issues its ioctls
// (fs/userfaultfd.c: the context takes its creator's mm), which is how
// gocr tracks a process's writes from outside (package wptrack). Failing
// to make one fails nothing else: the caller learns why from
// TakeUserfaultfd.
func (p *Parasite) takeUserfaultfd(flags uint64, remote int32) {
	if flags == 0 {
		return
	}
	if remote < 0 {
		p.uffdErr = fmt.Errorf("userfaultfd in pid %d: %w", p.pid, unix.Errno(-remote))
		return
	}
	p.remoteUffd = int64(remote)
	local, err := unix.PidfdGetfd(p.pidfd, int(remote), 0)
	if err != nil {
		p.uffdErr = fmt.Errorf("pidfd_getfd of pid %d's userfaultfd: %w", p.pid, err)
		return
	}
	p.uffd = local
}
