//go:build linux

package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// progress is the line a checkpoint or restart that takes over a second
// keeps up to date on stderr: what it does, the bytes so far, the rate
// and the time left. It is shown only when stderr is a terminal (the
// isatty(3) test, TCGETS): a log or a pipe gets nothing.
type progress struct {
	mu      sync.Mutex
	what    string
	done    func() int64
	total   int64 // 0: not known
	start   time.Time
	shown   bool
	stop    chan struct{}
	stopped sync.WaitGroup
}

// progressDelay is how long an operation goes before its line appears;
// progressEvery, how often it is redrawn.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
)

// newProgress starts the line, or returns nil (whose methods do nothing)
// when stderr is no terminal or quiet is set.
func newProgress(quiet bool) *progress {
	if quiet {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	p := &progress{start: time.Now(), stop: make(chan struct{})}
	p.stopped.Add(1)
	go p.run()
	return p
}

// phase says what is done now: done counts its bytes so far (nil: it
// has none to count), of total (0 if not known).
func (p *progress) phase(what string, done func() int64, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.what, p.done, p.total = what, done, total
	p.start = time.Now()
	p.mu.Unlock()
}

func (p *progress) run() {
	defer p.stopped.Done()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	first := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if time.Since(first) >= progressDelay {
				p.draw()
			}
		}
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.what == "" {
		return
	}
	if p.done == nil {
		// No bytes to count: how long it has taken.
		fmt.Fprintf(os.Stderr, "\r%s: %s, %v\033[K", progName, p.what, time.Since(p.start).Round(time.Second))
		p.shown = true
		return
	}
	n := p.done()
	line := fmt.Sprintf("%s: %s: %s", progName, p.what, size(n))
	if p.total > 0 {
		line += " of " + size(p.total)
	}
	elapsed := time.Since(p.start).Seconds()
	if elapsed > 0 && n > 0 {
		rate := float64(n) / elapsed
		line += fmt.Sprintf(", %s/s", size(int64(rate)))
		if p.total > n {
			left := time.Duration(float64(p.total-n) / rate * float64(time.Second))
			line += fmt.Sprintf(", %v left", left.Round(time.Second))
		}
	}
	// \r back to the line's start; \033[K erases what a longer line left
	// (ECMA-48 EL, console_codes(4)).
	fmt.Fprintf(os.Stderr, "\r%s\033[K", line)
	p.shown = true
}

// end stops the line and ends it, if it was shown, so that what follows
// starts on a line of its own.
func (p *progress) end() {
	if p == nil {
		return
	}
	close(p.stop)
	p.stopped.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(os.Stderr, "\n")
	}
}

// size prints n bytes in binary units.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// diskUsage is the space the files under dir take: how much a dump wrote
// so far. Blocks, not sizes: a page image is written at offsets, its size
// runs ahead of what is written (stat(2), st_blocks in 512-byte units).
func diskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// memoryOf estimates the page data a dump of pids writes: the anonymous,
// shared-memory and swapped-out memory of each (man 5 proc,
// /proc/PID/status RssAnon, RssShmem, VmSwap; in kB).
func memoryOf(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, key := range []string{"RssAnon:", "RssShmem:", "VmSwap:"} {
			total += statusKB(string(b), key) * 1024
		}
	}
	return total
}

func statusKB(status, key string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
