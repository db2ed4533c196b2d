//go:build linux

package callbacks

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/sharedword"
)

// fakePage is a callbacks page of this process with status st, a memfd
// mapped twice: gocr's view, which finish unmaps, and the one returned,
// on which a test plays libgocr.
func fakePage(t *testing.T, st uint32) (*page, []byte) {
	t.Helper()
	fd, err := unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, pageSize); err != nil {
		t.Fatal(err)
	}
	var views [2][]byte
	for i := range views {
		if views[i], err = unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { unix.Munmap(views[1]) })
	sharedword.Store(views[1], offStatus, st)
	return &page{pid: os.Getpid(), tid: os.Getpid(), b: views[0]}, views[1]
}

// waitRequest waits until the page's request is no longer old, as
// libgocr's thread does, and returns it.
func waitRequest(b []byte, old uint32) (uint32, bool) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := sharedword.Load(b, offRequest); r != old {
			return r, true
		}
		sharedword.Wait(b, offRequest, old, 10*time.Millisecond)
	}
	return old, false
}

func newTestCheckpoint(t *testing.T, p *page) *checkpoint {
	t.Helper()
	cp, err := newCheckpoint([]*page{p})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestReadyThenContinue: gocr asks, the process gets ready, and is told
// the checkpoint was taken, by a gocr that names itself.
func TestReadyThenContinue(t *testing.T) {
	p, b := fakePage(t, stIdle)
	verdict := make(chan uint32, 1)
	go func() {
		req, ok := waitRequest(b, 0)
		if !ok || req&codeMask != reqCheckpoint {
			verdict <- 0
			return
		}
		sharedword.Store(b, offStatus, req&^codeMask|stBusy)
		sharedword.Store(b, offStatus, req&^codeMask|stReady)
		wake(b, offStatus)
		v, _ := waitRequest(b, req)
		verdict <- v
	}()
	cp := newTestCheckpoint(t, p)
	if err := cp.ready(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if got := int(sharedword.Load(b, offGocrPid)); got != os.Getpid() {
		t.Errorf("request signed by pid %d, want gocr's %d", got, os.Getpid())
	}
	cp.finish(true)
	if v := <-verdict; v != 2<<seqShift|reqContinue {
		t.Errorf("verdict request %#x, want seq 2 CONTINUE (%#x)", v, 2<<seqShift|reqContinue)
	}
}

// TestNotReadyTimesOut: a process that never gets ready fails the wait
// after the timeout, in one line naming it, and is told the checkpoint
// was not taken.
func TestNotReadyTimesOut(t *testing.T) {
	p, b := fakePage(t, stIdle)
	cp := newTestCheckpoint(t, p)
	err := cp.ready(context.Background(), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "--callback-timeout") {
		t.Fatalf("ready = %v, want a timeout naming --callback-timeout", err)
	}
	cp.finish(false)
	if r := sharedword.Load(b, offRequest); r != 2<<seqShift|reqFailed {
		t.Fatalf("request after the timeout is %#x, want seq 2 FAILED (%#x)", r, 2<<seqShift|reqFailed)
	}
}

// TestStillBusyIsNotAsked: a process still running the callbacks of an
// earlier checkpoint is not asked again; the wait says so, and nothing is
// sent to it afterwards.
func TestStillBusyIsNotAsked(t *testing.T) {
	p, b := fakePage(t, 5<<seqShift|stAfter)
	sharedword.Store(b, offRequest, 5<<seqShift|reqContinue)
	cp := newTestCheckpoint(t, p)
	err := cp.ready(context.Background(), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "earlier checkpoint") {
		t.Fatalf("ready = %v, want an error about an earlier checkpoint", err)
	}
	cp.finish(false)
	if r := sharedword.Load(b, offRequest); r != 5<<seqShift|reqContinue {
		t.Fatalf("request became %#x while the process was busy", r)
	}
}

// TestReadyStopsWithContext: the wait ends with the operation's context.
func TestReadyStopsWithContext(t *testing.T) {
	p, _ := fakePage(t, stIdle)
	cp := newTestCheckpoint(t, p)
	cause := errors.New("interrupted")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if err := cp.ready(ctx, time.Minute); !errors.Is(err, cause) {
		t.Fatalf("ready = %v, want it to wrap %v", err, cause)
	}
	cp.finish(false)
}
