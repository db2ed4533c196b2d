//go:build linux && amd64

package ptrace

import (
	"context"
	"errors"
	"fmt"
)

// Borrowed is a thread RunAll set running on other code, and what puts it
// back.
type Borrowed struct {
	Tid     int
	Regs    Regs   // its registers at the event stop it was taken from
	Mask    uint64 // its blocked-signal mask
	set     bool   // its registers are setup's
	masked  bool   // every signal is blocked
	running bool   // resumed
}

// RunAll takes every thread in tids from its event stop and sets it
// running at once on the registers setup gives it (from the thread's own,
// saved in b), with every signal blocked, all in one pass on the tracer
// thread (a round trip to it per call would cost more than the calls). The threads run while the caller
// waits for them by its own means; ReturnAll puts them back. On an error
// the threads started so far are in the result and must be given to
// ReturnAll all the same.
//
// Precondition: every tid is in a PTRACE_EVENT_STOP.
func (t *Tracer) RunAll(tids []int, setup func(i int, b *Borrowed, r *Regs) error) ([]Borrowed, error) {
	bs := make([]Borrowed, 0, len(tids))
	var err error
	t.Do(func() {
		for i, tid := range tids {
			b := Borrowed{Tid: tid}
			if b.Regs, err = getRegs(tid); err != nil {
				err = fmt.Errorf("ptrace getregset %d: %w", tid, err)
				return
			}
			if b.Mask, err = getSigmask(tid); err != nil {
				err = fmt.Errorf("ptrace getsigmask %d: %w", tid, err)
				return
			}
			r := b.Regs
			if err = setup(i, &b, &r); err != nil {
				return
			}
			bs = append(bs, b)
			last := &bs[len(bs)-1]
			if err = setRegs(tid, &r); err != nil {
				err = fmt.Errorf("ptrace setregset %d: %w", tid, err)
				return
			}
			last.set = true
			if err = setSigmask(tid, ^uint64(0)); err != nil {
				err = fmt.Errorf("ptrace setsigmask %d: %w", tid, err)
				return
			}
			last.masked = true
			if err = cont(tid, 0); err != nil {
				return
			}
			last.running = true
		}
	})
	return bs, err
}

// ReturnAll interrupts every thread RunAll set running, all before waiting
// for any, and once each is back in its event stop puts its registers and
// mask back: a thread taken from inside a system call restarts it as if
// nothing had happened (see ReturnToEventStop). It returns an error
// naming any signal that had to be suppressed on the way (a blocked mask
// leaves only SIGKILL and SIGSTOP).
func (t *Tracer) ReturnAll(bs []Borrowed) error {
	var errs []error
	t.Do(func() {
		for i := range bs {
			if b := &bs[i]; b.running {
				if err := interrupt(b.Tid); err != nil {
					// Gone (SIGKILL): nothing will stop to wait for.
					errs = append(errs, err)
					b.running = false
				}
			}
		}
		for i := range bs {
			b := &bs[i]
			if b.running {
				infos, err := t.waitEventStop(context.Background(), b.Tid, "return borrowed thread")
				if err != nil {
					// Not stopped: it cannot be given anything back.
					errs = append(errs, fmt.Errorf("thread %d: %w", b.Tid, err))
					continue
				}
				if len(infos) > 0 {
					errs = append(errs, fmt.Errorf("thread %d: %w", b.Tid,
						&SignalsPendingError{Tid: b.Tid, Op: "return borrowed thread", Signals: infos}))
				}
			}
			if b.masked {
				if err := setSigmask(b.Tid, b.Mask); err != nil {
					errs = append(errs, fmt.Errorf("thread %d: ptrace setsigmask: %w", b.Tid, err))
				}
			}
			if b.set {
				if err := setRegs(b.Tid, &b.Regs); err != nil {
					errs = append(errs, fmt.Errorf("thread %d: ptrace setregset: %w", b.Tid, err))
				}
			}
		}
	})
	return errors.Join(errs...)
}
