//go:build linux

package sharedword

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLoadStoreWait(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	Store(b, 8, 7)
	if got := Load(b, 8); got != 7 {
		t.Fatalf("Load = %d, want 7", got)
	}
	// A wait on a value the word does not hold returns at once.
	start := time.Now()
	Wait(b, 8, 6, time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Wait on a stale value slept %v", d)
	}
	// A wait on the current value sleeps until its timeout.
	start = time.Now()
	Wait(b, 8, 7, 50*time.Millisecond)
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Wait on the current value returned after %v, want ~50ms", d)
	}
}
