//go:build linux

package wptrack

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary serves as the holder when started with this variable.
func TestMain(m *testing.M) {
	if os.Getenv("GOCR_WPTRACK_TEST_HOLDER") == "1" {
		if err := Serve(os.NewFile(3, "listener")); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHolderKeepsTracking: a tracker handed to a holder keeps tracking
// after gocr's own copy is closed, comes back with the dump it was put
// since, and only once: a second take says since no dump.
func TestHolderKeepsTracking(t *testing.T) {
	tr := selfTracker(t)
	pm := selfPagemap(t)
	mem, err := unix.Mmap(-1, 0, 64*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	base := uint64(sliceStart(mem))
	if err := tr.Register(base, base+64*page); err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(base, base+64*page); err != nil {
		t.Fatal(err)
	}
	start, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A root that is this process but named apart from other tests'.
	root := Proc{Pid: os.Getpid(), Start: start}
	cmd := []string{"/usr/bin/env", "GOCR_WPTRACK_TEST_HOLDER=1", os.Args[0]}
	if err := Put(root, "dump-1", []Proc{root}, []*Tracker{tr}, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Put(root, "", nil, nil, nil) })
	tr.Close()
	mem[3*page] = 1

	h, err := Take(root)
	if err != nil || h == nil {
		t.Fatalf("take: %v, %v", h, err)
	}
	defer h.Close()
	if h.Since != "dump-1" || len(h.Trackers) != 1 || h.Procs[0] != root {
		t.Fatalf("took since %q, %v; want dump-1 and this process", h.Since, h.Procs)
	}
	got, err := Scan(pm, base, base+64*page)
	if err != nil {
		t.Fatal(err)
	}
	if written, _ := pagesOf(t, got, base); len(written) != 1 || written[0] != 3 {
		t.Fatalf("written pages %v, want [3]", written)
	}
	again, err := Take(root)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Since != "" {
		t.Fatalf("second take: since %q, want none (the first took it)", again.Since)
	}

	// Given nothing, the holder ends, and with it (its copies closed,
	// ours too) the registration.
	h.Close()
	again.Close()
	if err := Put(root, "", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := dial(root)
		if err != nil {
			t.Fatal(err)
		}
		if fd < 0 {
			break
		}
		unix.Close(fd)
		if time.Now().After(deadline) {
			t.Fatal("the holder still answers after being given nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Scan(pm, base, base+64*page); err == nil {
		t.Fatal("the mapping is still registered after every copy of its tracker was closed")
	}
}
