//go:build linux

// Package parasite runs gocr's code inside a stopped process, to read what
// only the process can tell about itself and to write its memory into the
// page images, and then takes every trace of itself away again. The shape
// is CRIU compel's; the code is our own.
//
// An infection lives through four steps, always in this order (Example
// shows them whole; dump/memory.go captureMemory is the real caller):
//
//  1. Infect (infect.go) saves the thread's registers, xstate and signal
//     mask, and through injected system calls (ptrace.Injection, which
//     blocks every signal and returns the thread to its own state should
//     gocr die in the middle of one) maps a region that gocr maps too and
//     makes the file socket, sends the page pipes and the command pipe on
//     it, copies the blob in and starts it; the blob's first command, the
//     setup, takes them. The blob serves commands written into the
//     region and announced on the command pipe, and answers through a
//     futex (command.go): no signal is ever raised in the target.
//  2. Read state: DumpState (state.go) for sigactions, sigaltstack,
//     itimers and prctl state; ThreadStates (threadstates.go) for the
//     sigaltstack and clear_child_tid address of the other threads.
//  3. Pages (pages.go): WriteStreams has the parasite pwritev memory into
//     the page images PassFile handed it; DumpPages moves it through the
//     page pipes with vmsplice and splice instead.
//  4. Cure (cure.go) stops the blob, closes and unmaps what was injected
//     and puts the thread back in its event stop as Infect found it.
//
// Should gocr die in between, the blob reads EOF on the command pipe,
// closes what was injected and returns the thread to its own code the
// way a detached injected call does (ptrace.Injection.Entry), unmapping
// its region on the way; threads in the thread-state stub return through
// signal frames gocr built of them in the region, at their lifeline
// pipe's EOF.
package parasite

import (
	_ "embed"
	"os"

	"github.com/gocr/gocr/ptrace"
)

//go:embed parasite.bin
var blob []byte

// Options are what Infect needs to know about the target.
type Options struct {
	// VdsoStart is the start of the target's [vdso], 0 if it has none.
	// Its ELF header holds a NUL byte (e_ident[EI_PAD],
	// include/uapi/linux/elf.h) to serve as an empty name for
	// memfd_create.
	VdsoStart uint64
	// Threads is how many threads the process has; with more than one,
	// a lifeline pipe for ThreadStates is made too.
	Threads int
	// Userfaultfd, if not 0, are the flags of a userfaultfd(2) the
	// infection makes in the process for gocr (TakeUserfaultfd).
	Userfaultfd uint64
	// LowestMapping is the start of the process's lowest mapping, or 0
	// if unknown. The region is mapped below it where there is room
	// (regionAddr), so that smaps shows the region first
	// (RegionStart).
	LowestMapping uint64
}

// Parasite is a live infection of one thread.
type Parasite struct {
	t   *ptrace.Tracer
	pid int

	// InfectionSignals are signals the thread dequeued at the
	// infection's injected calls (ptrace.SignalsPendingError: only the
	// first can, before every signal is blocked), whether the infection
	// failed or not: the caller's to give back to the thread and to
	// record, as those of the freeze.
	InfectionSignals [][ptrace.SiginfoSize]byte
	infecting        bool // the infection's calls run: inject keeps their signals

	uffd    int   // gocr's copy of the userfaultfd made at infection, or -1
	uffdErr error // why none was made

	// The thread as Infect found it, for Cure to put back.
	saved       ptrace.Regs
	savedXstate []byte
	savedMask   uint64

	inj *ptrace.Injection // how system calls are injected into the thread

	// What has been done to the target, so Cure undoes exactly that; -1
	// or 0 where it has not (yet) been done.
	remoteMemfd  int64    // the region's memfd, until the setup closes it
	remoteMoved  int64    // the target's copy of gocr's socket end, likewise
	remoteBase   uint64   // where the region is mapped
	remoteDataFd [2]int64 // write ends of the page pipes
	remoteSock   int64    // the target's end of the fd-passing socket
	remoteCmdFd  int64    // read end of the command pipe
	remoteLife   int64    // read end of the threads' lifeline pipe (ThreadStates)
	remoteUffd   int64    // the userfaultfd the setup made, taken by gocr as uffd
	remoteFiles  []int64  // files handed over by PassFile
	running      bool     // the thread runs the blob
	// threadsAdrift: ReturnAll failed, so a thread may still be in the
	// stub; it must find the region and the lifeline's read end there
	// when gocr's write end closes and it returns through its frame.
	threadsAdrift bool
	// helpersGone: no page-stream helper thread runs in the region, as
	// TakeSnapshot found when it gave the region's mapping away.
	helpersGone bool

	// gocr's side of the infection.
	local     []byte            // gocr's mapping of the shared region
	pidfd     int               // -1 when closed
	pipes     [2]*os.File       // read ends of the page pipes
	chunk     int               // bytes per chunk: the smaller pipe's size
	sock      int               // gocr's end of the fd-passing socket
	sentFiles map[uintptr]int64 // gocr's fd -> the target's, of PassFile
	cmdw      int               // write end of the command pipe
	lifew     int               // write end of the lifeline pipe
	handed    int               // how many pipe ends handPipes sent the target
	uffdFlags uint64            // the setup's userfaultfd flags
	// The blob was started (its setup may have run), and the setup's
	// outcome, once takeSetup has taken it.
	started    bool
	setupTaken bool
	setupErr   error
	seq        uint32 // the last command's sequence number
	// stateAttrs is what DumpState read of Attrs, until Attrs takes it.
	stateAttrs *Attrs

	// Signals are real signals that showed up as signal-delivery-stops
	// while the parasite ran; the caller must not lose them.
	Signals []int
}
