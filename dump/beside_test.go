//go:build linux

package dump

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEitherDoesWorkOnce(t *testing.T) {
	var calls atomic.Int32
	e := newEither(func() int { calls.Add(1); return 7 })
	if got := e.get(); got != 7 {
		t.Fatalf("get = %d, want 7", got)
	}
	e.run()
	if got := e.get(); got != 7 || calls.Load() != 1 {
		t.Fatalf("get = %d after %d calls of the work, want 7 after 1", got, calls.Load())
	}
}

// A get that comes while the other goroutine does the work waits for
// that work's result and does not do it again.
func TestEitherWaitsForWorkBegun(t *testing.T) {
	for _, hold := range []time.Duration{time.Millisecond, 2 * eitherSpin} {
		var calls atomic.Int32
		begun, release := make(chan struct{}), make(chan struct{})
		e := newEither(func() int {
			calls.Add(1)
			close(begun)
			<-release
			return 42
		})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); e.run() }()
		<-begun
		go func() { time.Sleep(hold); close(release) }()
		if got := e.get(); got != 42 {
			t.Fatalf("held %v: get = %d, want 42", hold, got)
		}
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("held %v: the work ran %d times, want 1", hold, n)
		}
	}
}
