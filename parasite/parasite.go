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
	"os"

	"github.com/gocr/gocr/ptrace"
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

	// The thread as Infect found it, for Cure to put back.
	saved       ptrace.Regs
	savedXstate []byte
	savedMask   uint64

	insn uint64 // the syscall instruction injections go through

	// What has been done to the target, so Cure undoes exactly that; -1
	// or 0 where it has not (yet) been done.
	injected     bool     // a syscall was injected: the thread left its event stop
	remoteMemfd  int64    // the region's memfd, until it is mapped
	remoteBase   uint64   // where the region is mapped
	remoteDataFd [2]int64 // write ends of the page pipes
	remoteSock   int64    // the target's end of the fd-passing socket
	remoteCmdFd  int64    // read end of the command pipe
	remoteLife   int64    // read end of the threads' lifeline pipe (ThreadStates)
	remoteFiles  []int64  // files handed over by PassFile
	running      bool     // the thread runs the blob
	// threadsAdrift: ReturnAll failed, so a thread may still be in the
	// stub; it must find the region and the lifeline's read end there
	// when gocr's write end closes and it returns through its frame.
	threadsAdrift bool

	// gocr's side of the infection.
	local     []byte            // gocr's mapping of the shared region
	pidfd     int               // -1 when closed
	pipes     [2]*os.File       // read ends of the page pipes
	chunk     int               // bytes per chunk: the smaller pipe's size
	sock      int               // gocr's end of the fd-passing socket
	sentFiles map[uintptr]int64 // gocr's fd -> the target's, of PassFile
	cmdw      int               // write end of the command pipe
	lifew     int               // write end of the lifeline pipe
	seq       uint32            // the last command's sequence number

	// Signals are real signals that showed up as signal-delivery-stops
	// while the parasite ran; the caller must not lose them.
	Signals []int
}
