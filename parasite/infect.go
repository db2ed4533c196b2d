//go:build linux

package parasite

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
	"github.com/gocr/gocr/sharedword"
)

// Infect maps the parasite into pid and starts it. On failure the thread
// is cured before Infect returns.
// Precondition: pid is seized by t and in a ptrace event stop.
func Infect(t *ptrace.Tracer, pid int, opts Options) (p *Parasite, err error) {
	// Every step is a ptrace request or waits for one: run on the
	// tracer thread at once, none pays for a hand-off to it
	// (ptrace.Tracer.Do), tens of microseconds each.
	t.Do(func() { p, err = infect(t, pid, opts) })
	return p, err
}

func infect(t *ptrace.Tracer, pid int, opts Options) (_ *Parasite, err error) {
	p := &Parasite{t: t, pid: pid, remoteMemfd: -1, remoteMoved: -1, remoteDataFd: [2]int64{-1, -1},
		remoteSock: -1, remoteCmdFd: -1, remoteLife: -1, remoteUffd: -1, cmdw: -1, lifew: -1, sock: -1, pidfd: -1, uffd: -1,
		sentFiles: map[uintptr]int64{}}
	// Nothing is changed in the thread until the first injected call.
	if err := p.prepareInjection(); err != nil {
		return nil, fmt.Errorf("infect %d: %w", pid, err)
	}
	// From here on every failure is cured on the way out.
	defer func() {
		if err != nil {
			err = fmt.Errorf("infect %d: %w", pid, err)
			if cerr := p.Cure(); cerr != nil {
				err = fmt.Errorf("%w (and cure failed: %v)", err, cerr)
			}
		}
	}()
	p.infecting = true
	for _, step := range []func() error{
		func() error { return p.mapRegion(opts.VdsoStart, opts.LowestMapping) },
		p.openFileSocket,
		func() error { return p.handPipes(opts.Threads) },
		func() error { return p.start(opts.Userfaultfd) },
	} {
		if err = step(); err != nil {
			break
		}
	}
	p.infecting = false
	return p, err
}

// prepareInjection readies the thread for injected system calls
// (ptrace.Injection), after which gocr dying at any instant returns it to
// its own state, and keeps that state (registers, extended state, signal
// mask) for Cure to put back. The first
// injected call blocks every signal in the thread: nothing but SIGKILL
// and SIGSTOP can then interrupt the parasite, and no handler of the
// target's runs on the parasite's stack.
func (p *Parasite) prepareInjection() (err error) {
	if p.inj, err = p.t.PrepareInjection(p.pid); err != nil {
		return err
	}
	p.saved, p.savedXstate, p.savedMask = p.inj.Regs(), p.inj.Xstate(), p.inj.Mask()
	return nil
}

// mapRegion makes the region the blob runs in: a memfd mapped shared in
// the target and, through pidfd_getfd(2), in gocr too, so that the blob,
// every command and every answer are plain memory copies rather than
// injected writes. The blob closes the target's fd of it once it runs
// (parasite/c/abi.h PCMD_SETUP).
func (p *Parasite) mapRegion(vdsoStart, lowest uint64) error {
	// The name is the vDSO's empty string (Options.VdsoStart), or,
	// without a vDSO, one written into the injection's scratch memory,
	// below the thread's stack pointer and red zone, where a signal's
	// frame could be written at any time.
	name := vdsoStart + elf.EI_PAD
	if vdsoStart == 0 {
		name = p.inj.Scratch
		if err := ptrace.WriteMemory(p.pid, name, []byte{0}); err != nil {
			return fmt.Errorf("memfd_create: its name: %w", err)
		}
	}
	fd, err := p.inject(unix.SYS_MEMFD_CREATE, name, unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	p.remoteMemfd = int64(fd)
	// gocr's own fd of the memfd sizes it: the same open file
	// (pidfd_getfd(2)), with no round trip to the thread.
	if p.pidfd, err = unix.PidfdOpen(p.pid, 0); err != nil {
		p.pidfd = -1
		return fmt.Errorf("pidfd_open: %w", err)
	}
	lfd, err := unix.PidfdGetfd(p.pidfd, int(fd), 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(lfd)
	if err := unix.Ftruncate(lfd, regionSize); err != nil {
		return fmt.Errorf("ftruncate: %w", err)
	}
	base, err := p.mmapRegion(fd, lowest)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	p.remoteBase = base
	p.local, err = unix.Mmap(lfd, 0, regionSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		p.local = nil
		return fmt.Errorf("map shared region: %w", err)
	}
	copy(p.local, blob)
	return nil
}

// mmapRegion maps the region's memfd below the process's lowest mapping
// where there is room, else where the kernel chooses (near the top,
// below the stack: mm/mmap.c, the top-down layout). Low, the region is
// the first mapping /proc/PID/smaps shows, and reading its VmFlags walks
// no page table of the process's own (RegionStart); high, it walks all
// of them. MAP_FIXED_NOREPLACE fails with EEXIST rather than replace
// a mapping (man 2 mmap; mm/mmap.c do_mmap), and a failed mmap maps
// nothing, so the second try starts from the process as it was.
func (p *Parasite) mmapRegion(fd, lowest uint64) (uint64, error) {
	if addr := regionAddr(lowest); addr != 0 {
		base, err := p.mmapRegionAt(fd, addr, unix.MAP_FIXED_NOREPLACE)
		if err == nil {
			return base, nil
		}
	}
	return p.mmapRegionAt(fd, 0, 0)
}

// mmapRegionAt maps the region at addr (0: where the kernel chooses),
// with flags besides MAP_SHARED: read, write and execute, or split in two
// under PR_SET_MDWE (mapRegionWX).
func (p *Parasite) mmapRegionAt(fd, addr, flags uint64) (uint64, error) {
	base, err := p.inject(unix.SYS_MMAP, addr, regionSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_SHARED|flags, fd, 0)
	if errors.Is(err, unix.EACCES) {
		return p.mapRegionWX(fd, addr, flags)
	}
	return base, err
}

// regionGap is the unmapped space left between the region and the
// process's lowest mapping: the stack guard gap, should that mapping
// grow down (mm/mmap.c stack_guard_gap, 256 pages by default), and no
// chance of the two touching.
const regionGap = 1 << 20

// regionAddr is where to ask for the region below a lowest mapping at
// lowest, or 0 where there is no room above mmap_min_addr (a process may
// map nothing below it: security/min_addr.c; an LSM may ask for more,
// CONFIG_LSM_MMAP_MIN_ADDR, and the mmap then fails).
func regionAddr(lowest uint64) uint64 {
	minAddr, err := proc.MmapMinAddr()
	if err != nil {
		return 0
	}
	return regionAddrAbove(lowest, minAddr)
}

func regionAddrAbove(lowest, minAddr uint64) uint64 {
	const page = 4096
	floor := max(minAddr, page)
	if lowest < floor+regionSize+regionGap {
		return 0
	}
	return (lowest - regionSize - regionGap) &^ (page - 1)
}

// mapRegionWX maps the region for a process under PR_SET_MDWE, which
// refuses a mapping both writable and executable, and one made executable
// after it was not (include/linux/mman.h map_deny_write_exec, man 2
// PR_SET_MDWE): the blob's pages read and execute only, and right after
// them, over the rest of the same reservation, the pages it writes (the
// blob has no data of its own: Makefile), both of the same memfd at the
// same offsets, so that every offset in the region stays the same.
func (p *Parasite) mapRegionWX(fd, addr, flags uint64) (uint64, error) {
	base, err := p.inject(unix.SYS_MMAP, addr, regionSize, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_SHARED|flags, fd, 0)
	if err != nil {
		return 0, err
	}
	if _, err := p.inject(unix.SYS_MMAP, base+blobMax, regionSize-blobMax,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED, fd, blobMax); err != nil {
		p.inject(unix.SYS_MUNMAP, base, regionSize)
		return 0, err
	}
	return base, nil
}

// pagePipeSizes are the page pipe sizes to ask for, largest first. A
// bigger pipe means fewer round trips between vmsplice and splice; above
// /proc/sys/fs/pipe-max-size F_SETPIPE_SZ fails without CAP_SYS_RESOURCE
// (man 7 pipe), and a smaller size still works.
var pagePipeSizes = []int{1 << 20, 256 << 10}

// openFileSocket makes the socket gocr hands the parasite files over
// (SCM_RIGHTS, man 7 unix): the one way to put an fd into another
// process's table. Each file goes as a record of its own (SOCK_SEQPACKET
// keeps record boundaries, man 7 unix). gocr's death reaches the parasite
// through the command pipe's EOF, not through this socket, except before
// the parasite has that pipe (a failed setup). The target's copy of the
// end gocr takes is closed by the blob's setup.
func (p *Parasite) openFileSocket() error {
	// The two ends are alike (man 2 socketpair); gocr takes the first.
	if _, err := p.inject(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0, p.remoteBase+dataOff); err != nil {
		return fmt.Errorf("file socket: create: %w", err)
	}
	p.remoteMoved = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff:])))
	p.remoteSock = int64(int32(binary.LittleEndian.Uint32(p.local[dataOff+4:])))
	local, err := unix.PidfdGetfd(p.pidfd, int(p.remoteMoved), 0)
	if err != nil {
		return fmt.Errorf("file socket: pidfd_getfd: %w", err)
	}
	p.sock = local
	return nil
}

// start writes the setup into the control block (parasite/c/abi.h
// PCMD_SETUP), then points the thread at the blob's entry and lets it
// run, every signal blocked by the injected calls before it. gocr does
// not wait for the setup: the first command's answer says it worked
// (takeSetup). From here gocr dying is the blob's to handle: it reads EOF
// on the command pipe (or, before it has one, on the file socket) and
// cures itself, leaving through the injection's own way out
// (ptrace.Injection.Entry).
func (p *Parasite) start(uffdFlags uint64) error {
	ctl := p.local[ctlOff : ctlOff+ctlSize]
	le := binary.LittleEndian
	rip, sp := p.inj.Entry()
	le.PutUint64(ctl[ctlCureRip:], rip)
	le.PutUint64(ctl[ctlCureSp:], sp)
	for _, f := range []struct {
		off int
		fd  int64
	}{{ctlMemfd, p.remoteMemfd}, {ctlMoved, p.remoteMoved}, {ctlSock, p.remoteSock},
		{ctlDataFd, -1}, {ctlDataFd + 4, -1}, {ctlCmdFd, -1}, {ctlLife, -1}, {ctlUffd, -1}} {
		le.PutUint32(ctl[f.off:], uint32(int32(f.fd)))
	}
	le.PutUint32(ctl[ctlSetupFds:], uint32(p.handed))
	le.PutUint64(ctl[ctlUffdFlags:], uffdFlags)
	le.PutUint32(ctl[ctlSetupRet:], setupPending)
	p.uffdFlags = uffdFlags
	regs := p.saved
	enterBlob(&regs, p.remoteBase)
	if err := p.t.SetRegs(p.pid, &regs); err != nil {
		return err
	}
	p.started = true
	if err := p.t.Cont(p.pid, 0); err != nil {
		return fmt.Errorf("start parasite: %w", err)
	}
	p.running = true
	return nil
}

// takeSetup takes what the blob's setup made, once it is done: the
// target's ends of the pipes handPipes sent, its userfaultfd (gocr's copy
// by pidfd_getfd), and its error. Until then it returns errSetupPending
// and takes nothing but what the setup wrote so far, for the cure to
// close.
func (p *Parasite) takeSetup() error {
	if p.setupTaken {
		return p.setupErr
	}
	// setup_ret first: the blob stores it after every field it
	// wrote (a release store, read here as an atomic load), so that a
	// setup seen done is seen whole. One not done yet may be writing.
	ret := int32(sharedword.Load(p.local, ctlOff+ctlSetupRet))
	ctl := p.local[ctlOff : ctlOff+ctlSize]
	fd := func(off int) int64 { return int64(int32(binary.LittleEndian.Uint32(ctl[off:]))) }
	p.remoteDataFd = [2]int64{fd(ctlDataFd), fd(ctlDataFd + 4)}
	p.remoteCmdFd = fd(ctlCmdFd)
	if p.handed == 4 {
		p.remoteLife = fd(ctlLife)
	}
	if p.uffdFlags != 0 && fd(ctlUffd) >= 0 {
		p.remoteUffd = fd(ctlUffd)
	}
	if ret == setupPending {
		return errSetupPending
	}
	// Done at all, the setup closed these first.
	p.remoteMemfd, p.remoteMoved = -1, -1
	p.setupTaken = true
	if ret < 0 {
		err := unix.Errno(-ret)
		p.setupErr = fmt.Errorf("parasite setup in %d: %w", p.pid, err)
		if err == unix.EMFILE {
			p.setupErr = fmt.Errorf("parasite setup in %d: its open file limit (RLIMIT_NOFILE) leaves no room for the parasite's pipes: %w", p.pid, err)
		}
		return p.setupErr
	}
	p.takeUserfaultfd(p.uffdFlags, int32(fd(ctlUffd)))
	return nil
}

// errSetupPending: the blob's setup is not done (takeSetup).
var errSetupPending = errors.New("the parasite's setup is not done")

// inject runs one system call in the infected thread (ptrace.Injection)
// and returns its result or its errno. A signal the infection's first
// call dequeues goes to InfectionSignals, and the call's result is valid
// all the same (ptrace.Injection.Syscall); after it every signal is
// blocked, and one dequeued later (at the cure) fails the call.
func (p *Parasite) inject(nr uint64, args ...uint64) (uint64, error) {
	ret, err := p.inj.Syscall(nr, args...)
	if p.infecting {
		var sp *ptrace.SignalsPendingError
		if errors.As(err, &sp) {
			p.InfectionSignals = append(p.InfectionSignals, sp.Signals...)
		}
		if _, only := err.(*ptrace.SignalsPendingError); only {
			err = nil
		}
	}
	if err != nil {
		return 0, err
	}
	if err := ptrace.SyscallError(ret); err != nil {
		return 0, err
	}
	return uint64(ret), nil
}
