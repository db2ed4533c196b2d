//go:build linux

package ptrace

import (
	"fmt"
	"sync"
)

// The SIGCHLD a tracee's stop sends the tracer. The kernel sends it at
// every ptrace-stop (and group-stop or continue) of a tracee unless the
// tracer's SIGCHLD action has SA_NOCLDSTOP (kernel/signal.c
// do_notify_parent_cldstop; man 2 sigaction); exits send it whatever the
// flag (do_notify_parent). In gocr each one is a run of the runtime's
// signal handler and a wakeup of the os/signal goroutine and of whoever
// is notified: a hand-off to another thread, often on another CPU, at
// every one of the dozens of stops of a frozen window, where a wait
// mostly spins and needs no signal (wait_linux.go). So the flag is set
// while a tracer is open, and cleared while any wait sleeps until a
// SIGCHLD, which a stop must then send.
//
// The flag is set on the Go runtime's own handler, which it installs for
// SIGCHLD once, at start, and never installs again while os/signal has
// it (runtime/signal_unix.go sigenable, sigdisable).
var stopSignals struct {
	mu       sync.Mutex
	tracers  int  // open tracers
	sleepers int  // waits sleeping until a SIGCHLD
	quiet    bool // SA_NOCLDSTOP is set here
}

// applyStopSignals sets or clears SA_NOCLDSTOP as the counts want it.
//
// Precondition: stopSignals.mu is held.
func applyStopSignals() error {
	s := &stopSignals
	want := s.tracers > 0 && s.sleepers == 0
	if want == s.quiet {
		return nil
	}
	if err := setNoCldStop(want); err != nil {
		return fmt.Errorf("SIGCHLD action: %w", err)
	}
	s.quiet = want
	return nil
}

// tracerOpened and tracerClosed count the open tracers.
func tracerOpened() {
	stopSignals.mu.Lock()
	defer stopSignals.mu.Unlock()
	stopSignals.tracers++
	// Failing, stops keep sending SIGCHLD: slower, never wrong.
	_ = applyStopSignals()
}

func tracerClosed() {
	stopSignals.mu.Lock()
	defer stopSignals.mu.Unlock()
	stopSignals.tracers--
	_ = applyStopSignals()
}

// sleepOnStops makes stops send SIGCHLD until the returned func is
// called: a wait calls it before it sleeps, then polls once more, so a
// stop before the flag was cleared is found by the poll and one after it
// wakes the sleep.
func sleepOnStops() (func(), error) {
	s := &stopSignals
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sleepers++
	if err := applyStopSignals(); err != nil {
		s.sleepers--
		return nil, err
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sleepers--
		_ = applyStopSignals()
	}, nil
}

// The kernel's struct sigaction on x86-64, as rt_sigaction(2) takes it
// (include/linux/signal_types.h, with SA_RESTORER), and the values it
// uses (include/uapi/asm-generic/signal-defs.h SIG_DFL, SIG_IGN;
// arch/x86/include/uapi/asm/signal.h SA_NOCLDSTOP).
type kernelSigaction struct {
	Handler  uintptr
	Flags    uint64
	Restorer uintptr
	Mask     uint64
}

const (
	sigDfl      = 0
	sigIgn      = 1
	saNoCldStop = 0x1
)

// setNoCldStop sets or clears SA_NOCLDSTOP on SIGCHLD's action, leaving
// the rest of it (the runtime's handler, flags and mask) as it is. Where
// SIGCHLD has no handler (SIG_DFL, SIG_IGN: no Go runtime of ours), it
// changes nothing.
func setNoCldStop(on bool) error {
	var act kernelSigaction
	if err := sigchldAction(nil, &act); err != nil {
		return err
	}
	if act.Handler == sigDfl || act.Handler == sigIgn {
		return nil
	}
	if on {
		act.Flags |= saNoCldStop
	} else {
		act.Flags &^= saNoCldStop
	}
	return sigchldAction(&act, nil)
}
