//go:build libgocr

// Command gocallbacks is a test target (test/harness_test.go): a Go program
// using libgocr's checkpoint callbacks through cgo and the Go wrapper
// (libgocr/go/gocr), as test/targets/callbacks.c does from C.
//
//	gocallbacks RESULT_PATH MODE
//
// It holds a deleted scratch file at fd scratchFD, which its callbacks
// replace around a checkpoint (its contents tell whether they ran), and
// records buffered in memory that must be on disk before a checkpoint.
// Two callbacks, in Go:
//   - "scratch", registered first: closes the scratch file before the
//     checkpoint and opens a new one after;
//   - "flush", registered second, so its part before Checkpoint runs first
//     and its part after runs last: has a writer goroutine write the
//     buffered records to RESULT_PATH.flushed (a callback uses the Go
//     runtime as any goroutine does).
//
// MODE is what the checkpoint must end in: "continue" (dump
// --leave-running) or "restarted" (dump, then restore). On SIGTERM it
// checks that each callback ran once, in order, on libgocr's callbacks
// thread, and heard MODE; that gocr itself sent that answer (the request
// word of its callbacks page); and that the files are as the callbacks left
// them.
//
// It links to libgocr (-lgocr), so it builds only with the libgocr tag, as
// the harness builds it: go build ./... must not need libgocr installed.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../libgocr
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "protocol.h"

// callbacks_page finds this process's callbacks page in /proc/self/maps.
static struct gocr_cb_page *callbacks_page(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long start = 0;

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "/memfd:" GOCR_CB_MEMFD_NAME " (deleted)")) {
			start = strtoul(line, NULL, 16);
			break;
		}
	}
	fclose(f);
	return (struct gocr_cb_page *)start;
}

// page_word reads the request word (which 0) or the helper thread's tid
// (which 1) of the callbacks page; -1 when there is no page.
static int64_t page_word(int which)
{
	struct gocr_cb_page *p = callbacks_page();

	if (!p)
		return -1;
	return __atomic_load_n(which ? &p->tid : &p->request, __ATOMIC_ACQUIRE);
}
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/libgocr/go/gocr"
)

const (
	scratchFD = 40
	records   = 100
)

// state is what the callbacks did, read by main after SIGTERM.
type state struct {
	mu       sync.Mutex
	steps    []string
	results  [2]gocr.Result
	errs     [2]error
	runs     [2]int
	tids     [2]int
	writeErr error
	done     chan struct{}
}

func (s *state) step(cb int, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, name)
	if name == "scratch-before" || name == "flush-before" {
		s.runs[cb]++
		s.tids[cb] = unix.Gettid()
	}
}

func (s *state) heard(cb int, r gocr.Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results[cb], s.errs[cb] = r, err
}

// openScratch opens a new deleted file at scratchFD holding text
// (O_TMPFILE, man 2 open).
func openScratch(dir, text string) error {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open a deleted file in %s: %w", dir, err)
	}
	if fd != scratchFD {
		if err := unix.Dup3(fd, scratchFD, unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("dup3 to fd %d: %w", scratchFD, err)
		}
		unix.Close(fd)
	}
	_, err = unix.Pwrite(scratchFD, []byte(text), 0)
	return err
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gocallbacks RESULT_PATH continue|restarted")
		os.Exit(2)
	}
	result, mode := os.Args[1], os.Args[2]
	report := func(verdict string) {
		if err := os.WriteFile(result, []byte(verdict+"\n"), 0o644); err != nil {
			os.Exit(2)
		}
		if verdict != "PASS" {
			fmt.Fprintln(os.Stderr, verdict)
			os.Exit(1)
		}
		os.Exit(0)
	}
	failNow := func(format string, args ...any) { report("FAIL: " + fmt.Sprintf(format, args...)) }

	var want gocr.Result
	var wantReq uint32
	switch mode {
	case "continue":
		want, wantReq = gocr.Continue, uint32(C.GOCR_CB_REQ_CONTINUE)
	case "restarted":
		want, wantReq = gocr.Restarted, uint32(C.GOCR_CB_REQ_RESTARTED)
	default:
		failNow("unknown mode %s", mode)
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM)

	var pending bytes.Buffer
	for i := 1; i <= records; i++ {
		fmt.Fprintf(&pending, "record %d\n", i)
	}
	dir := filepath.Dir(result)
	flushed := result + ".flushed"

	// The calls that must be refused.
	if _, err := gocr.Checkpoint(); !errors.Is(err, syscall.EINVAL) {
		failNow("Checkpoint() outside a callback: %v, want EINVAL", err)
	}
	if _, err := gocr.RegisterCallback(nil); !errors.Is(err, syscall.EINVAL) {
		failNow("RegisterCallback(nil): %v, want EINVAL", err)
	}

	s := &state{done: make(chan struct{})}
	// The writer goroutine: the flush callback hands it the records and
	// waits for its answer, so the callback depends on the scheduler
	// running other goroutines while it runs on a thread Go did not start.
	writes := make(chan []byte)
	written := make(chan error)
	go func() {
		for b := range writes {
			err := os.WriteFile(flushed, b, 0o644)
			if err == nil {
				var f *os.File
				if f, err = os.Open(flushed); err == nil {
					err = f.Sync()
					f.Close()
				}
			}
			written <- err
		}
	}()

	if err := openScratch(dir, "scratch before\n"); err != nil {
		failNow("%v", err)
	}
	scratch := func() {
		s.step(0, "scratch-before")
		unix.Close(scratchFD)
		r, err := gocr.Checkpoint()
		s.heard(0, r, err)
		s.step(0, "scratch-after")
		if err := openScratch(dir, "scratch after\n"); err != nil {
			s.mu.Lock()
			s.writeErr = err
			s.mu.Unlock()
		}
	}
	flush := func() {
		s.step(1, "flush-before")
		writes <- pending.Bytes()
		err := <-written
		r, cerr := gocr.Checkpoint()
		s.heard(1, r, cerr)
		s.step(1, "flush-after")
		s.mu.Lock()
		if err != nil && s.writeErr == nil {
			s.writeErr = err
		}
		s.mu.Unlock()
		close(s.done)
	}
	if id, err := gocr.RegisterCallback(scratch); err != nil || id != 0 {
		failNow("RegisterCallback(scratch) = %d, %v; want id 0", id, err)
	}
	if id, err := gocr.RegisterCallback(flush); err != nil || id != 1 {
		failNow("RegisterCallback(flush) = %d, %v; want id 1", id, err)
	}

	if f, err := os.Create(result + ".ready"); err != nil {
		failNow("create ready file: %v", err)
	} else {
		f.Close()
	}
	<-sigc

	// gocr restore returns without waiting for the callbacks.
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.mu.Lock()
		failNow("the callbacks did not finish within 10 s of SIGTERM (ran %v times; steps %v)", s.runs, s.steps)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wantSteps := []string{"flush-before", "scratch-before", "scratch-after", "flush-after"}
	if fmt.Sprint(s.steps) != fmt.Sprint(wantSteps) {
		failNow("callback steps %v, want %v", s.steps, wantSteps)
	}
	if s.runs != [2]int{1, 1} {
		failNow("the callbacks ran %v times, want once each", s.runs)
	}
	helper := int(C.page_word(1))
	for i := range 2 {
		if s.errs[i] != nil || s.results[i] != want {
			failNow("callback %d: Checkpoint() = %v, %v; want %v", i, s.results[i], s.errs[i], want)
		}
		if s.tids[i] != helper || helper == os.Getpid() {
			failNow("callback %d ran in thread %d, not libgocr's callbacks thread %d", i, s.tids[i], helper)
		}
	}
	if req := int64(C.page_word(0)); req < 0 || uint32(req)&uint32(C.GOCR_CB_CODE_MASK) != wantReq {
		failNow("gocr's last request is %#x, want code %d: gocr did not send the answer", req, wantReq)
	}
	if s.writeErr != nil {
		failNow("a callback failed: %v", s.writeErr)
	}
	if b, err := os.ReadFile(flushed); err != nil || !bytes.Equal(b, pending.Bytes()) {
		failNow("%s holds %d bytes (%v), not the %d buffered before the checkpoint", flushed, len(b), err, pending.Len())
	}
	var st unix.Stat_t
	if err := unix.Fstat(scratchFD, &st); err != nil {
		failNow("the scratch file was not reopened: fstat fd %d: %v", scratchFD, err)
	}
	if st.Nlink != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		failNow("fd %d is not a deleted scratch file (nlink %d)", scratchFD, st.Nlink)
	}
	buf := make([]byte, 64)
	n, err := unix.Pread(scratchFD, buf, 0)
	if err != nil || string(buf[:n]) != "scratch after\n" {
		failNow("the scratch file holds %q (%v), not what the callback wrote after the checkpoint", buf[:max(n, 0)], err)
	}
	report("PASS")
}
