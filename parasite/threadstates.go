//go:build linux

package parasite

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/ptrace"
	"github.com/gocr/gocr/sharedword"
)

// ThreadState is per-thread state that only the thread can report.
type ThreadState struct {
	AltstackSp    uint64
	AltstackFlags int32
	AltstackSize  uint64
	TidAddress    uint64
	Securebits    int32
	Attrs         ThreadAttrs
}

// Where the thread-state stub reports (parasite/c/abi.h): a block per
// thread in the data area (its struct parasite_thread_state, then at
// +threadFrameOff its rt_sigframe), and a done counter in the control
// page, past the stream descriptors.
const (
	threadStateSize = 112
	tsAltstackSp    = 0
	tsAltstackFlags = 8
	tsAltstackSize  = 16
	tsAltstackRet   = 24
	tsTidAddress    = 32
	tsTidAddressRet = 40
	tsSecurebits    = 48
	tsTimerSlack    = 56
	tsTscRet        = 64
	tsTsc           = 72
	tsCpuid         = 80
	tsMceKill       = 88
	tsL1dFlush      = 96
	tsThreadKeyring = 104
	threadFrameOff  = 128
	threadsDoneOff  = streamsOff + MaxStreams*streamSize

	// threadBlockAlign: every block starts aligned for the xsave area in
	// its signal frame, which sits at a multiple of it from the block.
	threadBlockAlign = ptrace.SigframeAlign
)

// threadStubTimeout bounds the wait for every thread to run the stub: a
// few system calls each, so a thread that takes longer is not running
// (stopped or killed from outside) and waiting longer would not help.
const threadStubTimeout = 10 * time.Second

// ThreadStates reads the sigaltstack, clear_child_tid address,
// securebits and ThreadAttrs of other threads of the infected process, which only each
// thread can read of itself; xstates[i] is thread i's XSAVE image as collected. Every thread
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
		blockSize = max(blockSize, alignUp(threadFrameOff+ptrace.SigframeLen(xs), threadBlockAlign))
	}
	perCall := dataUsable / blockSize
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
	// Should gocr die from here until every thread is back, the
	// parasite's self-cure leaves the region and the lifeline to the
	// threads that may still need them (parasite/c/abi.h stubs).
	sharedword.Store(p.local, ctlOff+ctlStubs, 1)
	borrowed, err := p.t.RunAll(tids, func(i int, b *ptrace.Borrowed, r *ptrace.Regs) error {
		block := dataOff + i*blockSize
		frameAt := p.remoteBase + uint64(block+threadFrameOff)
		frame, err := ptrace.Sigframe(&b.Regs, xstates[i], b.Mask, frameAt)
		if err != nil {
			return fmt.Errorf("thread %d: %w", b.Tid, err)
		}
		copy(p.local[block+threadFrameOff:], frame)
		enterThreadStub(r, p.remoteBase, p.remoteBase+uint64(block), frameAt, p.remoteLife)
		return nil
	})
	defer func() {
		testhook.Pause(testhook.PauseInThreadStates)
		if rerr := p.t.ReturnAll(borrowed); rerr != nil {
			p.threadsAdrift = true
			if err == nil {
				err = fmt.Errorf("restore threads after reading their state: %w", rerr)
			}
			return
		}
		sharedword.Store(p.local, ctlOff+ctlStubs, 0)
	}()
	if err != nil {
		return nil, fmt.Errorf("run the thread-state stub: %w", err)
	}
	deadline := time.Now().Add(threadStubTimeout)
	for {
		done := sharedword.Load(p.local, threadsDoneOff)
		if int(done) == len(tids) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d threads read their state in %v", done, len(tids), threadStubTimeout)
		}
		sharedword.Wait(p.local, threadsDoneOff, done, pollInterval)
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
		secure := int64(le.Uint64(b[tsSecurebits:]))
		if secure < 0 {
			return nil, fmt.Errorf("thread %d: PR_GET_SECUREBITS: %w", tid, unix.Errno(-secure))
		}
		out[i] = ThreadState{
			AltstackSp:    le.Uint64(b[tsAltstackSp:]),
			AltstackFlags: int32(le.Uint32(b[tsAltstackFlags:])),
			AltstackSize:  le.Uint64(b[tsAltstackSize:]),
			TidAddress:    le.Uint64(b[tsTidAddress:]),
			Securebits:    int32(secure),
			Attrs: ThreadAttrs{TimerSlack: int64(le.Uint64(b[tsTimerSlack:])), TscRet: int64(le.Uint64(b[tsTscRet:])),
				Tsc: int64(le.Uint64(b[tsTsc:])), Cpuid: int64(le.Uint64(b[tsCpuid:])), MceKill: int64(le.Uint64(b[tsMceKill:])), L1dFlush: int64(le.Uint64(b[tsL1dFlush:])),
				ThreadKeyring: int64(le.Uint64(b[tsThreadKeyring:]))},
		}
	}
	return out, nil
}

// alignUp rounds n up to a multiple of align, a power of two.
func alignUp(n, align int) int {
	return (n + align - 1) &^ (align - 1)
}
