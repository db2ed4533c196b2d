//go:build linux

// Package callbacks is gocr's side of the checkpoint callbacks programs
// register with libgocr (libgocr/gocr.h, docs/CALLBACKS.md): before a dump
// freezes a tree, every process in it that registered callbacks is asked
// to get ready, and gocr waits, bounded, until each is; after the dump it
// is told whether the checkpoint was taken, and after a restore that it
// was restarted. A process without libgocr is not touched.
//
// The channel is one page per process, a memfd mapping libgocr made, with
// a request word gocr writes and a status word libgocr writes, each a
// shared futex (libgocr/protocol.h). It is state a dump saves and a restore
// brings back like any other memfd mapping, so the protocol adds nothing
// gocr cannot restore.
package callbacks

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/sharedword"
)

// DefaultTimeout is how long a dump waits, by default, for the callbacks
// of every process to be ready.
const DefaultTimeout = 10 * time.Second

// poll is how often a wait on one process's page also looks at the
// others, and whether they died.
const poll = 20 * time.Millisecond

// Before returns the hook a dump runs before it freezes the tree under
// root (dump.Options.BeforeFreeze): it asks every process there that
// registered callbacks to get ready, and waits until all are, at most
// timeout in all. On success, the function it returns tells them how the
// checkpoint ended (taken: complete; otherwise not taken, and they run on
// as before). On failure they have been told the checkpoint was not taken,
// and the error says which process was not ready, in one line.
func Before(timeout time.Duration) func(ctx context.Context, root int) (func(taken bool), error) {
	return func(ctx context.Context, root int) (func(taken bool), error) {
		if timeout <= 0 {
			return nil, fmt.Errorf("invalid --callback-timeout %v: it must be above 0", timeout)
		}
		pages, err := openTree(root)
		if err != nil {
			return nil, err
		}
		if len(pages) == 0 {
			return func(bool) {}, nil
		}
		cp, err := newCheckpoint(pages)
		if err != nil {
			closeAll(pages)
			return nil, err
		}
		if err := cp.ready(ctx, timeout); err != nil {
			cp.finish(false)
			return nil, err
		}
		return cp.finish, nil
	}
}

// openTree opens the callbacks page of root and of each of its
// descendants that registered callbacks. The tree is walked before it is
// frozen: a process forked later is not asked (a child of fork() starts
// without callbacks anyway, libgocr/gocr.h).
func openTree(root int) ([]*page, error) {
	var pages []*page
	seen := map[int]bool{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		p, err := openPage(pid)
		if err != nil {
			closeAll(pages)
			return nil, err
		}
		if p != nil {
			pages = append(pages, p)
		}
		kids, _ := proc.Children(pid) // a process that just ended has none
		queue = append(queue, kids...)
	}
	return pages, nil
}

func closeAll(pages []*page) {
	for _, p := range pages {
		p.close()
	}
}

// checkpoint is one dump's conversation with the registered processes.
type checkpoint struct {
	self  identity
	pages []*page
	asked []bool   // pages[i] was sent a CHECKPOINT...
	seq   []uint32 // ...with this seq
	done  []bool   // pages[i] is ready, or died
}

func newCheckpoint(pages []*page) (*checkpoint, error) {
	self, err := selfIdentity()
	if err != nil {
		return nil, fmt.Errorf("checkpoint callbacks: %w", err)
	}
	return &checkpoint{self: self, pages: pages,
		asked: make([]bool, len(pages)), seq: make([]uint32, len(pages)), done: make([]bool, len(pages))}, nil
}

// ready asks every page for a checkpoint, each once its callbacks are
// idle (a previous checkpoint's may still run), and waits until each is
// ready or its process died. Every process runs its callbacks at once.
func (cp *checkpoint) ready(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		waitOn := -1
		for i, p := range cp.pages {
			if cp.done[i] {
				continue
			}
			if cp.asked[i] && p.status() == cp.seq[i]<<seqShift|stReady {
				cp.done[i] = true
				continue
			}
			switch p.state() {
			case 0, 'Z', 'X':
				// Gone: it cannot answer, and there is
				// nothing left of it to checkpoint.
				cp.done[i] = true
				continue
			case 'T':
				// Stopped by job control, every thread with
				// it (man 7 signal): no callback can run.
				return fmt.Errorf("pid %d is stopped, so its checkpoint callbacks cannot run: continue it (SIGCONT) and dump it again; it was left as it was", p.pid)
			}
			if !cp.asked[i] && p.status()&codeMask == stIdle {
				cp.asked[i], cp.seq[i] = true, p.send(reqCheckpoint, cp.self)
			}
			if waitOn < 0 {
				waitOn = i
			}
		}
		if waitOn < 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the checkpoint callbacks of pid %d: %w", cp.pages[waitOn].pid, context.Cause(ctx))
		}
		left := time.Until(deadline)
		if left <= 0 {
			return cp.timedOut(waitOn, timeout)
		}
		p := cp.pages[waitOn]
		sharedword.Wait(p.b, offStatus, p.status(), min(left, poll))
	}
}

// timedOut says which process kept the dump waiting, and where it was.
func (cp *checkpoint) timedOut(i int, timeout time.Duration) error {
	p := cp.pages[i]
	if !cp.asked[i] {
		return fmt.Errorf("pid %d was still running its callbacks of an earlier checkpoint after %v (--callback-timeout); the processes run on untouched",
			p.pid, timeout)
	}
	what := stateNames[p.status()&codeMask]
	if what == "" || p.status()>>seqShift != cp.seq[i] {
		what = "not answering"
	}
	return fmt.Errorf("pid %d was not ready for the checkpoint after %v (--callback-timeout; its callbacks thread %d is %s); the processes run on untouched, told the checkpoint was not taken",
		p.pid, timeout, p.tid, what)
}

// finish tells every process asked whether the checkpoint was taken
// (GOCR_CONTINUE, or -1 with ECANCELED from gocr_checkpoint()), and lets
// go of the pages. A process the dump ended is told too, harmlessly: its
// page is gone with it.
func (cp *checkpoint) finish(taken bool) {
	code := uint32(reqFailed)
	if taken {
		code = reqContinue
	}
	for i, p := range cp.pages {
		if cp.asked[i] {
			p.send(code, cp.self)
		}
	}
	closeAll(cp.pages)
}

// Restarted tells each of pids (restored processes, all running) that
// registered callbacks and was dumped ready for the checkpoint that it
// was restarted: its gocr_checkpoint() returns GOCR_RESTARTED. It does not
// wait for the callbacks. Should it fail, libgocr finds out by itself
// after a second (its start time changed), so a failure is a warning.
func Restarted(pids []int) {
	self, err := selfIdentity()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gocr: warning: checkpoint callbacks: %v\n", err)
		return
	}
	for _, pid := range pids {
		p, err := openPage(pid)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
			continue
		}
		if p == nil {
			continue
		}
		// Dumped ready: the status is at the CHECKPOINT's seq. It may
		// have moved on from READY if libgocr found out by itself
		// (gocr slow to get here); it then only acknowledges this.
		req := p.request()
		if req&codeMask == reqCheckpoint && p.status()>>seqShift == req>>seqShift {
			p.send(reqRestarted, self)
		}
		p.close()
	}
}
