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
