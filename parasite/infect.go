//go:build linux

package parasite

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/ptrace"
)

// Infect maps the parasite into pid and starts it.
// Precondition: pid is seized by t and in a ptrace event stop.
func Infect(t *ptrace.Tracer, pid int, opts Options) (p *Parasite, err error) {
	p = &Parasite{t: t, pid: pid, remoteMemfd: -1, remoteDataFd: [2]int64{-1, -1}, remoteReadFd: [2]int64{-1, -1},
		remoteSock: -1, remoteCmdFd: -1, remoteLife: -1, cmdw: -1, lifew: -1, sock: -1, pidfd: -1,
		sentFiles: map[uintptr]int64{}}
	if p.saved, err = t.GetRegs(pid); err != nil {
		return nil, fmt.Errorf("infect %d: %w", pid, err)
	}
	if p.savedXstate, err = t.GetXstate(pid); err != nil {
		return nil, fmt.Errorf("infect %d: %w", pid, err)
	}
	if p.savedMask, err = t.GetSigmask(pid); err != nil {
		return nil, fmt.Errorf("infect %d: %w", pid, err)
	}
	defer func() {
		if err != nil {
			if cerr := p.Cure(); cerr != nil {
				err = fmt.Errorf("%w (and cure failed: %v)", err, cerr)
			}
		}
	}()
	// With every signal blocked nothing but SIGKILL/SIGSTOP can interrupt
	// the parasite, and no handler of the target's runs on our stack.
	if err = t.SetSigmask(pid, ^uint64(0)); err != nil {
		return p, fmt.Errorf("infect %d: %w", pid, err)
	}
	if p.insn, err = ptrace.FindSyscallInsn(pid); err != nil {
		return p, fmt.Errorf("infect %d: %w", pid, err)
	}

	fd, err := p.inject(unix.SYS_MEMFD_CREATE, opts.VdsoStart+9, unix.MFD_CLOEXEC)
	if err != nil {
		return p, fmt.Errorf("infect %d: memfd_create: %w", pid, err)
	}
	p.remoteMemfd = int64(fd)
	if _, err = p.inject(unix.SYS_FTRUNCATE, fd, regionSize); err != nil {
		return p, fmt.Errorf("infect %d: ftruncate: %w", pid, err)
	}
	base, err := p.inject(unix.SYS_MMAP, 0, regionSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_SHARED, fd, 0)
	if err != nil {
		return p, fmt.Errorf("infect %d: mmap: %w", pid, err)
	}
	p.remoteBase = base

	if p.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		p.pidfd = -1
		return p, fmt.Errorf("infect %d: pidfd_open: %w", pid, err)
	}
	lfd, err := unix.PidfdGetfd(p.pidfd, int(fd), 0)
	if err != nil {
		return p, fmt.Errorf("infect %d: pidfd_getfd: %w", pid, err)
	}
	p.local, err = unix.Mmap(lfd, 0, regionSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(lfd)
	if err != nil {
		p.local = nil
		return p, fmt.Errorf("infect %d: map shared region: %w", pid, err)
	}
	if _, err = p.inject(unix.SYS_CLOSE, fd); err != nil {
		return p, fmt.Errorf("infect %d: close memfd: %w", pid, err)
	}
	p.remoteMemfd = -1
	copy(p.local, blob)

	// Two page pipes: while gocr copies one pipe's chunk into the image,
	// the parasite fills the other.
	p.chunk = 1 << 30
	for i := range p.pipes {
		if _, err = p.inject(unix.SYS_PIPE2, base+dataOff, unix.O_CLOEXEC); err != nil {
			return p, fmt.Errorf("infect %d: pipe2: %w", pid, err)
		}
		p.remoteReadFd[i] = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff:])))
		p.remoteDataFd[i] = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff+4:])))
		rfd, err := unix.PidfdGetfd(p.pidfd, int(p.remoteReadFd[i]), 0)
		if err != nil {
			return p, fmt.Errorf("infect %d: pidfd_getfd pipe: %w", pid, err)
		}
		p.pipes[i] = os.NewFile(uintptr(rfd), "parasite-pipe")
		if _, err = p.inject(unix.SYS_CLOSE, uint64(p.remoteReadFd[i])); err != nil {
			return p, fmt.Errorf("infect %d: close pipe: %w", pid, err)
		}
		p.remoteReadFd[i] = -1
		// A bigger pipe means fewer round trips between vmsplice and
		// splice; above /proc/sys/fs/pipe-max-size this fails without
		// CAP_SYS_RESOURCE (man 7 pipe), and a smaller size still works.
		size := 0
		for _, want := range []int{1 << 20, 256 << 10} {
			if _, err := unix.FcntlInt(p.pipes[i].Fd(), unix.F_SETPIPE_SZ, want); err == nil {
				break
			}
		}
		if size, err = unix.FcntlInt(p.pipes[i].Fd(), unix.F_GETPIPE_SZ, 0); err != nil {
			return p, fmt.Errorf("infect %d: pipe size: %w", pid, err)
		}
		p.chunk = min(p.chunk, size)
		binary.LittleEndian.PutUint32(p.local[ctlOff+ctlDataFd+4*i:], uint32(p.remoteDataFd[i]))
	}

	// A socket to hand the parasite files (SCM_RIGHTS, man 7 unix):
	// the one way to put an fd into another process's table.
	// SOCK_SEQPACKET, not DGRAM: its peer's close shows as POLLHUP
	// (net/unix/af_unix.c unix_release_sock), which is how the parasite
	// learns that gocr died.
	if _, err = p.inject(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0, base+dataOff); err != nil {
		return p, fmt.Errorf("infect %d: socketpair: %w", pid, err)
	}
	ours := int64(int32(binary.LittleEndian.Uint32(p.local[dataOff:])))
	p.remoteSock = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff+4:])))
	if p.sock, err = unix.PidfdGetfd(p.pidfd, int(ours), 0); err != nil {
		p.sock = -1
		p.inject(unix.SYS_CLOSE, uint64(ours))
		return p, fmt.Errorf("infect %d: pidfd_getfd socket: %w", pid, err)
	}
	if _, err = p.inject(unix.SYS_CLOSE, uint64(ours)); err != nil {
		return p, fmt.Errorf("infect %d: close socket: %w", pid, err)
	}

	binary.LittleEndian.PutUint32(p.local[ctlOff+ctlSock:], uint32(p.remoteSock))

	// The command pipe: gocr keeps the only write end, so its death is
	// the parasite's EOF.
	if _, err = p.inject(unix.SYS_PIPE2, base+dataOff, unix.O_CLOEXEC); err != nil {
		return p, fmt.Errorf("infect %d: pipe2: %w", pid, err)
	}
	p.remoteCmdFd = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff:])))
	cmdWrite := int64(int32(binary.LittleEndian.Uint32(p.local[dataOff+4:])))
	if p.cmdw, err = unix.PidfdGetfd(p.pidfd, int(cmdWrite), 0); err != nil {
		p.cmdw = -1
		p.inject(unix.SYS_CLOSE, uint64(cmdWrite))
		return p, fmt.Errorf("infect %d: pidfd_getfd command pipe: %w", pid, err)
	}
	if _, err = p.inject(unix.SYS_CLOSE, uint64(cmdWrite)); err != nil {
		return p, fmt.Errorf("infect %d: close command pipe: %w", pid, err)
	}
	binary.LittleEndian.PutUint32(p.local[ctlOff+ctlCmdFd:], uint32(p.remoteCmdFd))
	if opts.Threads > 1 {
		// Threads running the thread-state stub wait in read() on this
		// pipe: its EOF, gocr's death, sends them back to their own code
		// (parasite/c/abi.h).
		if p.remoteLife, p.lifew, err = p.injectPipeKeepWrite(); err != nil {
			return p, fmt.Errorf("infect %d: lifeline pipe: %w", pid, err)
		}
	}
	if frame, err := sigframe(&p.saved, p.savedXstate, p.savedMask, base+frameOff); err != nil {
		return p, fmt.Errorf("infect %d: %w", pid, err)
	} else {
		copy(p.local[frameOff:stackOff+stackSize], frame)
		binary.LittleEndian.PutUint64(p.local[ctlOff+ctlFrame:], frameOff)
	}

	regs := p.saved
	regs.Rip = base
	regs.Rsp = base + stackOff + stackSize
	regs.Rdi = base + ctlOff
	regs.Rax = 0
	regs.Orig_rax = ^uint64(0)
	// DF must be clear on function entry (x86-64 psABI 3.2.1); TF would
	// single-step us.
	regs.Eflags &^= 0x400 | 0x100
	if err = t.SetRegs(pid, &regs); err != nil {
		return p, fmt.Errorf("infect %d: %w", pid, err)
	}
	if err = t.Cont(pid, 0); err != nil {
		return p, fmt.Errorf("infect %d: start parasite: %w", pid, err)
	}
	p.running = true
	return p, nil
}

// injectPipeKeepWrite makes a pipe in the target and moves its write end
// to gocr, so the target holds only the read end and sees EOF when gocr
// is gone.
func (p *Parasite) injectPipeKeepWrite() (remoteRead int64, localWrite int, err error) {
	if _, err := p.inject(unix.SYS_PIPE2, p.remoteBase+dataOff, unix.O_CLOEXEC); err != nil {
		return -1, -1, fmt.Errorf("pipe2: %w", err)
	}
	r := int64(int32(binary.LittleEndian.Uint32(p.local[dataOff:])))
	w := int64(int32(binary.LittleEndian.Uint32(p.local[dataOff+4:])))
	lw, err := unix.PidfdGetfd(p.pidfd, int(w), 0)
	if _, cerr := p.inject(unix.SYS_CLOSE, uint64(w)); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		if lw >= 0 {
			unix.Close(lw)
		}
		p.inject(unix.SYS_CLOSE, uint64(r))
		return -1, -1, err
	}
	return r, lw, nil
}

func (p *Parasite) inject(nr uint64, args ...uint64) (uint64, error) {
	p.injected = true
	ret, err := p.t.InjectSyscall(p.pid, p.insn, nr, args...)
	if err != nil {
		return 0, err
	}
	if ret < 0 && ret > -4096 {
		return 0, unix.Errno(-ret)
	}
	return uint64(ret), nil
}
