//go:build linux

// Package parasite injects gocr's parasite blob into a stopped process,
// runs commands in it (read signal state, hand memory over through a pipe),
// and cures the process: removes every trace and puts every register back.
//
// The life of an infection (the shape of CRIU's compel, our own code):
// stopped task -> save registers, xstate and mask -> block all signals ->
// injected syscalls create a memfd, map it in the target, create the page
// pipe -> the blob is copied in through gocr's own mapping of the same
// memfd -> the task runs the blob, which serves commands over a control
// block in the shared memory (futexes, no signals) -> cure: interrupt,
// close and unmap what was injected, restore the saved state.
package parasite

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
	"github.com/gocr/gocr/sharedword"
)

//go:embed parasite.bin
var blob []byte

// Options are what Infect needs to know about the target.
type Options struct {
	// VdsoStart is the start of the target's [vdso]. Its text holds a
	// syscall instruction to inject through, and its ELF header a NUL byte
	// (e_ident[EI_PAD], include/uapi/linux/elf.h) to serve as an empty name
	// for memfd_create.
	VdsoStart uint64
	// Threads is how many threads the process has; with more than one,
	// a lifeline pipe for ThreadStates is made too.
	Threads int
}

// Parasite is a live infection of one thread.
type Parasite struct {
	t   *ptrace.Tracer
	pid int

	insn        uint64
	saved       ptrace.Regs
	savedXstate []byte
	savedMask   uint64

	// What has been done to the target, so Cure undoes exactly that.
	injected     bool
	remoteMemfd  int64
	remoteBase   uint64
	remoteDataFd [2]int64
	remoteReadFd [2]int64
	remoteSock   int64 // the target's end of the fd-passing socket
	remoteCmdFd  int64 // read end of the command pipe
	remoteLife   int64 // read end of the threads' lifeline pipe (ThreadStates)
	lifew        int   // gocr's write end of it
	// threadsAdrift: ReturnAll failed, so a thread may still be in the
	// stub; it must find the region and the lifeline's read end there
	// when gocr's write end closes and it returns through its frame.
	threadsAdrift bool
	cmdw          int // gocr's write end of the command pipe
	remoteFiles   []int64
	sock          int // gocr's end
	sentFiles     map[uintptr]int64
	running       bool

	local []byte      // gocr's mapping of the shared region
	pidfd int         // -1 when closed
	pipes [2]*os.File // read ends of the page pipes
	chunk int         // bytes per chunk: the smaller pipe's size
	seq   uint32

	// Signals are real signals that showed up as signal-delivery-stops
	// while the parasite ran; the caller must not lose them.
	Signals []int
}

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

// Stream is memory to write to one file: Spans in order, from file offset
// Off on.
type Stream struct {
	File  *os.File
	Off   int64
	Spans []Span
}

// WriteStreams has the parasite write every stream to its file with
// pwritev(2): one copy, from the target's pages into the image's page
// cache, the same work as a plain write() of that memory
// (docs/PERFORMANCE.md). Stream 0 is written by the parasite's thread,
// each other one at the same time by a helper thread the parasite starts
// in the target for the command, so that up to MaxStreams cores copy at
// once. gocr only hands the files over and waits. It returns the bytes
// written; on an error the streams' contents are undefined.
func (p *Parasite) WriteStreams(streams []Stream) (int64, error) {
	if len(streams) == 0 || len(streams) > MaxStreams {
		return 0, fmt.Errorf("write pages of %d: %d streams, want 1..%d", p.pid, len(streams), MaxStreams)
	}
	remote := make([]int64, len(streams))
	for i, s := range streams {
		var err error
		if remote[i], err = p.PassFile(s.File); err != nil {
			return 0, err
		}
	}
	rest := make([][]Span, len(streams))
	offs := make([]int64, len(streams))
	for i, s := range streams {
		rest[i], offs[i] = s.Spans, s.Off
	}
	perStream := maxSpansPerCall / len(streams)
	var written int64
	for {
		// This call's streams: the next batch of every stream with
		// spans left, packed at the front of the descriptor array.
		n, o := 0, dataOff
		for i := range streams {
			if len(rest[i]) == 0 {
				continue
			}
			k := min(len(rest[i]), perStream)
			d := p.local[streamsOff+n*streamSize : streamsOff+(n+1)*streamSize]
			clear(d)
			binary.LittleEndian.PutUint64(d[streamIovOff:], uint64(o))
			binary.LittleEndian.PutUint64(d[streamNrIov:], uint64(k))
			binary.LittleEndian.PutUint64(d[streamFileOff:], uint64(offs[i]))
			binary.LittleEndian.PutUint32(d[streamFd:], uint32(remote[i]))
			for _, sp := range rest[i][:k] {
				binary.LittleEndian.PutUint64(p.local[o:], sp.Addr)
				binary.LittleEndian.PutUint64(p.local[o+8:], sp.Len)
				o += iovecSize
				offs[i] += int64(sp.Len)
				written += int64(sp.Len)
			}
			rest[i] = rest[i][k:]
			n++
		}
		if n == 0 {
			return written, nil
		}
		if err := p.call(cmdWriteStreams, uint64(n)); err != nil {
			return 0, fmt.Errorf("write pages of %d: %w", p.pid, err)
		}
	}
}

// ErrHelperStopped means a page-stream helper thread was stopped (SIGSTOP
// from outside) when gocr had to cure: its code, stack and files stay in
// the target until it has finished and exited on its own.
var ErrHelperStopped = errors.New("a parasite helper thread is stopped; its region and files stay in the process")

// waitHelpers waits until no page-stream helper thread runs in the
// region. Precondition: the parasite's own thread is stopped, so it starts
// no new helper.
func (p *Parasite) waitHelpers() error {
	for i := 0; i < MaxStreams; i++ {
		o := streamsOff + i*streamSize
		for sharedword.Load(p.local, o+streamRunning) != 0 {
			tid := int(int32(binary.LittleEndian.Uint32(p.local[o+streamTid:])))
			st, err := proc.ReadStat(tid)
			if err != nil || st.State == 'Z' || st.State == 'X' {
				// Gone with its process: nothing runs there.
				break
			}
			if st.State == 'T' || st.State == 't' {
				return fmt.Errorf("%w (thread %d)", ErrHelperStopped, tid)
			}
			sharedword.Wait(p.local, o+streamRunning, 1, 50*time.Millisecond)
		}
	}
	return nil
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

// SigAction is one signal's disposition as rt_sigaction(2) reports it.
type SigAction struct {
	Handler, Flags, Restorer, Mask uint64
}

// Itimer is one interval timer (getitimer(2)), in microseconds.
type Itimer struct {
	IntervalUsec, ValueUsec int64
}

// State is what only the target itself can tell: read from inside.
type State struct {
	SigActions     [64]SigAction // index signo-1
	AltstackSp     uint64
	AltstackFlags  int32
	AltstackSize   uint64
	Itimers        [3]Itimer
	TidAddress     uint64
	Dumpable       int32
	PdeathSig      int32
	ChildSubreaper int32
	NoNewPrivs     int32
}

// DumpState reads sigactions, sigaltstack, itimers and prctl state.
func (p *Parasite) DumpState() (*State, error) {
	if err := p.call(cmdDumpState); err != nil {
		return nil, err
	}
	b := p.local[dataOff : dataOff+stSize]
	le := binary.LittleEndian
	st := &State{}
	for i := range st.SigActions {
		o := stSigactions + 32*i
		st.SigActions[i] = SigAction{le.Uint64(b[o:]), le.Uint64(b[o+8:]), le.Uint64(b[o+16:]), le.Uint64(b[o+24:])}
	}
	st.AltstackSp = le.Uint64(b[stAltstackSp:])
	st.AltstackFlags = int32(le.Uint32(b[stAltstackFlags:]))
	st.AltstackSize = le.Uint64(b[stAltstackSize:])
	for i := range st.Itimers {
		o := stItimers + 32*i
		st.Itimers[i] = Itimer{
			IntervalUsec: int64(le.Uint64(b[o:]))*1e6 + int64(le.Uint64(b[o+8:])),
			ValueUsec:    int64(le.Uint64(b[o+16:]))*1e6 + int64(le.Uint64(b[o+24:])),
		}
	}
	st.TidAddress = le.Uint64(b[stTidAddress:])
	st.Dumpable = int32(le.Uint32(b[stDumpable:]))
	st.PdeathSig = int32(le.Uint32(b[stPdeathsig:]))
	st.ChildSubreaper = int32(le.Uint32(b[stChildSubreaper:]))
	st.NoNewPrivs = int32(le.Uint32(b[stNoNewPrivs:]))
	return st, nil
}

// Span is a run of target memory.
type Span struct {
	Addr, Len uint64
}

// The last page of the data area stays free of page spans (it was
// scratch space for syscalls injected into other threads).
const maxSpansPerCall = (dataSize - 4096) / iovecSize

// ThreadState is per-thread state that only the thread can report.
type ThreadState struct {
	AltstackSp    uint64
	AltstackFlags int32
	AltstackSize  uint64
	TidAddress    uint64
}

// Where the thread-state stub reports (parasite/c/abi.h): a block per
// thread in the data area (its struct parasite_thread_state, then at
// +threadFrameOff its rt_sigframe), and a done counter in the control
// page, past the stream descriptors.
const (
	threadStateSize = 48
	tsAltstackSp    = 0
	tsAltstackFlags = 8
	tsAltstackSize  = 16
	tsAltstackRet   = 24
	tsTidAddress    = 32
	tsTidAddressRet = 40
	threadFrameOff  = 64
	threadsDoneOff  = streamsOff + MaxStreams*streamSize
)

// ThreadStates reads the sigaltstack and clear_child_tid address of other
// threads of the infected process, which only each thread can read of
// itself; xstates[i] is thread i's XSAVE image as collected. Every thread
// runs the parasite's thread-state stub at the same time (every signal
// blocked, results into the shared region), so the cost is a few ptrace
// calls a thread rather than the round trips of injecting each syscall
// into each thread in turn. Each thread is then interrupted back into its
// event stop and given its registers and mask back: a thread stopped in a
// system call restarts it exactly as before (ptrace.ReturnToEventStop
// explains why registers go back at an event stop). Should gocr die
// meanwhile, each thread returns to its own code through the signal frame
// built here from those same registers, xstate and mask.
// Precondition: tids are stopped threads of the infected process, other
// than the one running the parasite, and Infect was told of them.
func (p *Parasite) ThreadStates(tids []int, xstates [][]byte) ([]ThreadState, error) {
	if len(tids) == 0 {
		return nil, nil
	}
	if p.remoteLife < 0 {
		return nil, fmt.Errorf("thread states of %d: the parasite was infected for one thread", p.pid)
	}
	blockSize := 0
	for _, xs := range xstates {
		blockSize = max(blockSize, (threadFrameOff+frFpstate+len(xs)+4+63)&^63)
	}
	perCall := (dataSize - 4096) / blockSize
	if perCall == 0 {
		return nil, fmt.Errorf("thread states of %d: a signal frame of %d bytes does not fit", p.pid, blockSize)
	}
	out := make([]ThreadState, 0, len(tids))
	for len(tids) > 0 {
		n := min(len(tids), perCall)
		ts, err := p.threadStates(tids[:n], xstates[:n], blockSize)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
		tids, xstates = tids[n:], xstates[n:]
	}
	return out, nil
}

func (p *Parasite) threadStates(tids []int, xstates [][]byte, blockSize int) (_ []ThreadState, err error) {
	clear(p.local[dataOff : dataOff+len(tids)*blockSize])
	sharedword.Store(p.local, threadsDoneOff, 0)
	stub := p.remoteBase + threadStubOff
	borrowed, err := p.t.RunAll(tids, func(i int, b *ptrace.Borrowed, r *ptrace.Regs) error {
		block := dataOff + i*blockSize
		frameAt := p.remoteBase + uint64(block+threadFrameOff)
		frame, err := sigframe(&b.Regs, xstates[i], b.Mask, frameAt)
		if err != nil {
			return fmt.Errorf("thread %d: %w", b.Tid, err)
		}
		copy(p.local[block+threadFrameOff:], frame)
		r.Rip = stub
		r.Rdi = p.remoteBase + uint64(block)
		r.Rsi = p.remoteBase + threadsDoneOff
		r.Rdx = uint64(p.remoteLife)
		r.R8 = frameAt
		r.Orig_rax = ^uint64(0) // no syscall to restart on the way in
		r.Eflags &^= 0x400 | 0x100
		return nil
	})
	defer func() {
		testhook.Pause(testhook.PauseInThreadStates)
		if rerr := p.t.ReturnAll(borrowed); rerr != nil {
			p.threadsAdrift = true
			if err == nil {
				err = fmt.Errorf("restore threads after reading their state: %w", rerr)
			}
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("run the thread-state stub: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := sharedword.Load(p.local, threadsDoneOff)
		if int(done) == len(tids) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d threads read their state in 10 s", done, len(tids))
		}
		sharedword.Wait(p.local, threadsDoneOff, done, 50*time.Millisecond)
	}
	out := make([]ThreadState, len(tids))
	for i, tid := range tids {
		b := p.local[dataOff+i*blockSize:]
		le := binary.LittleEndian
		if e := int64(le.Uint64(b[tsAltstackRet:])); e < 0 {
			return nil, fmt.Errorf("thread %d: sigaltstack: %w", tid, unix.Errno(-e))
		}
		if e := int64(le.Uint64(b[tsTidAddressRet:])); e < 0 {
			return nil, fmt.Errorf("thread %d: PR_GET_TID_ADDRESS: %w", tid, unix.Errno(-e))
		}
		out[i] = ThreadState{
			AltstackSp:    le.Uint64(b[tsAltstackSp:]),
			AltstackFlags: int32(le.Uint32(b[tsAltstackFlags:])),
			AltstackSize:  le.Uint64(b[tsAltstackSize:]),
			TidAddress:    le.Uint64(b[tsTidAddress:]),
		}
	}
	return out, nil
}

// DumpPages hands the spans' memory to gocr through the page pipe and
// splices it to dst at dst's current offset, in order. The data never
// passes through gocr's heap: the parasite vmsplices the target's pages
// into the pipe and gocr splices the pipe into the file (man 2 vmsplice,
// man 2 splice).
func (p *Parasite) DumpPages(spans []Span, dst *os.File) (int64, error) {
	var written int64
	for len(spans) > 0 {
		n := len(spans)
		if n > maxSpansPerCall {
			n = maxSpansPerCall
		}
		batch := spans[:n]
		spans = spans[n:]
		var total uint64
		for i, s := range batch {
			o := dataOff + i*iovecSize
			binary.LittleEndian.PutUint64(p.local[o:], s.Addr)
			binary.LittleEndian.PutUint64(p.local[o+8:], s.Len)
			total += s.Len
		}
		var abort atomic.Bool
		done := make(chan spliceResult, 1)
		go func() {
			done <- drainPipes([2]int{int(p.pipes[0].Fd()), int(p.pipes[1].Fd())}, int(dst.Fd()), int64(total), int64(p.chunk), &abort)
		}()
		callErr := p.call(cmdDumpPages, dataOff, uint64(n), uint64(p.chunk))
		if callErr != nil {
			// Nothing more will come through the pipes.
			abort.Store(true)
		}
		res := <-done
		written += res.n
		if callErr != nil {
			return written, callErr
		}
		if res.err != nil {
			return written, fmt.Errorf("write pages of %d: %w", p.pid, res.err)
		}
	}
	return written, nil
}

type spliceResult struct {
	n   int64
	err error
}

// drainPipes moves want bytes to dst, chunk by chunk from the two pipes
// in turn, as the parasite fills them. If writing to dst fails (a full
// disk, say) it goes on draining into nowhere, so the parasite never blocks
// on a full pipe, and reports the first error. It polls so that abort (the
// parasite failed) can end it.
func drainPipes(pipes [2]int, dstFd int, want, chunk int64, abort *atomic.Bool) spliceResult {
	var res spliceResult
	var got int64
	var discard []byte
	for i := 0; got < want; i++ {
		pipeFd := pipes[i%2]
		left := min(chunk, want-got)
		for left > 0 {
			pfd := []unix.PollFd{{Fd: int32(pipeFd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 50)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				res.err = errors.Join(res.err, fmt.Errorf("poll page pipe: %w", err))
				return res
			}
			if n == 0 {
				if abort.Load() {
					return res
				}
				continue
			}
			if res.err == nil {
				m, err := unix.Splice(pipeFd, nil, dstFd, nil, int(left), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				switch {
				case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				case err != nil:
					res.err = fmt.Errorf("splice to page image: %w", err)
				case m == 0:
					res.err = fmt.Errorf("splice to page image: %w", io.ErrUnexpectedEOF)
					return res
				default:
					got += m
					left -= m
					res.n += m
				}
				continue
			}
			if discard == nil {
				discard = make([]byte, 64<<10)
			}
			m, err := unix.Read(pipeFd, discard[:min(left, int64(len(discard)))])
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || m == 0 {
				return res
			}
			got += int64(m)
			left -= int64(m)
		}
	}
	return res
}

// Cure removes the parasite and restores the saved registers, xstate and
// signal mask. It leaves the task in a ptrace event stop, exactly as
// Infect found it. It is safe to call on a partly done infection.
func (p *Parasite) Cure() error {
	var errs []error
	if p.running {
		sigs, err := p.t.StopTask(p.pid)
		p.Signals = append(p.Signals, sigs...)
		if err != nil {
			return fmt.Errorf("cure %d: stop parasite: %w", p.pid, err)
		}
		p.running = false
	}
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
		closeRemote(&p.remoteReadFd[i])
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
	if p.injected {
		if err := p.t.ReturnToEventStop(p.pid); err != nil {
			errs = append(errs, err)
		}
		p.injected = false
	}
	if err := p.t.SetRegs(p.pid, &p.saved); err != nil {
		errs = append(errs, err)
	}
	if err := p.t.SetXstate(p.pid, p.savedXstate); err != nil {
		errs = append(errs, err)
	}
	if err := p.t.SetSigmask(p.pid, p.savedMask); err != nil {
		errs = append(errs, err)
	}
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
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	if p.sock >= 0 {
		unix.Close(p.sock)
		p.sock = -1
	}
	if p.cmdw >= 0 {
		unix.Close(p.cmdw)
		p.cmdw = -1
	}
	if p.lifew >= 0 {
		unix.Close(p.lifew)
		p.lifew = -1
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cure %d: %w", p.pid, err)
	}
	return nil
}
