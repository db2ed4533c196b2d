//go:build linux

package ptrace

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A stop sends no SIGCHLD while a tracer is open and no wait sleeps, and
// a wait that sleeps past its spin still wakes at the stop: SIGCHLD's
// SA_NOCLDSTOP is cleared for it and set again after.
func TestStopSignalsOnlyForSleepingWaits(t *testing.T) {
	needRoot(t)
	if set, err := noCldStopSet(); err != nil || set {
		t.Fatalf("before any tracer: SA_NOCLDSTOP set %v (%v), want clear", set, err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	tr := NewTracer()
	defer tr.Close()
	if set, err := noCldStopSet(); err != nil || !set {
		t.Fatalf("tracer open: SA_NOCLDSTOP set %v (%v), want set", set, err)
	}
	if err := tr.Seize(pid); err != nil {
		t.Fatal(err)
	}
	// A stop that sent no SIGCHLD would be seen only at the deadline.
	defer func(d time.Duration) { stopTimeout = d }(stopTimeout)
	stopTimeout = 30 * time.Second
	// The stop comes long after the wait's spin: the wait is asleep.
	whileAsleep := make(chan bool, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		set, _ := noCldStopSet()
		whileAsleep <- set
		unix.Kill(pid, unix.SIGSTOP)
	}()
	start := time.Now()
	s, err := tr.Wait(pid)
	if err != nil {
		t.Fatalf("wait for the stop after %v: %v", time.Since(start), err)
	}
	if s.Kind != SignalStop || s.Sig != int(unix.SIGSTOP) {
		t.Fatalf("stop %v, want the SIGSTOP's signal-delivery-stop", s)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the stop was seen %v after the wait began, 0.3 s after the SIGSTOP was sent", d)
	}
	if set := <-whileAsleep; set {
		t.Fatal("SA_NOCLDSTOP was set while a wait slept: the stop could not wake it")
	}
	if set, err := noCldStopSet(); err != nil || !set {
		t.Fatalf("after the wait: SA_NOCLDSTOP set %v (%v), want set", set, err)
	}
	tr.Close()
	if set, err := noCldStopSet(); err != nil || set {
		t.Fatalf("tracer closed: SA_NOCLDSTOP set %v (%v), want clear", set, err)
	}
}

// noCldStopSet reports whether SIGCHLD's action has SA_NOCLDSTOP now.
func noCldStopSet() (bool, error) {
	var act kernelSigaction
	if err := sigchldAction(nil, &act); err != nil {
		return false, err
	}
	return act.Flags&saNoCldStop != 0, nil
}
