// Command goprog is a test target (test/harness_test.go) that exercises the
// Go runtime across a checkpoint: GOMAXPROCS(2) with two goroutines in
// tight loops that only async preemption (SIGURG) can interrupt, a
// 100-stage channel pipeline that computes a checksum with a closed form,
// 100 goroutines blocked on channel receives, a time.Ticker, a time.Sleep
// loop, a time.After loop, an allocating goroutine that keeps the garbage
// collector busy, and os/signal.Notify for SIGTERM (the runtime's own
// signal handling).
//
// Usage: goprog RESULT_PATH
//
// It creates RESULT_PATH.ready once every goroutine has made progress and
// records every counter. On SIGTERM it checks that every counter is past
// its value at ready and then moves again, that the pipeline's checksum
// matches n(n+1)/2, that each spinning goroutine's state is its LCG
// advanced by its iteration count, that every blocked goroutine answers,
// that the allocations kept their contents, and that the ticker ticks;
// then it writes "PASS\n" or "FAIL: reason\n" to RESULT_PATH.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	stages  = 100 // pipeline goroutines
	waiters = 100 // goroutines blocked on a receive until SIGTERM
	hogs    = 2   // goroutines in tight loops
	lcgA    = 6364136223846793005
	lcgC    = 1442695040888963407
	// Every stage j adds j+1: a value leaves the pipeline 5050 higher.
	pipelineAdd = stages * (stages + 1) / 2
)

// The pipeline's output: the consumer has seen 1..seqN and summed them into
// seqSum. Kept in globals under seqMu so a debugger can damage them.
var (
	seqMu  sync.Mutex
	seqN   uint64
	seqSum uint64
)

type counters struct {
	stage     [stages]atomic.Uint64
	hogIters  [hogs]atomic.Uint64
	ticks     atomic.Uint64
	sleeps    atomic.Uint64
	afters    atomic.Uint64
	allocs    atomic.Uint64
	consumed  atomic.Uint64
	failMu    sync.Mutex
	firstFail string
}

func (c *counters) fail(format string, args ...any) {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	if c.firstFail == "" {
		c.firstFail = fmt.Sprintf(format, args...)
	}
}

func (c *counters) failure() string {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	return c.firstFail
}

// snapshot is every progress counter, named.
func (c *counters) snapshot() map[string]uint64 {
	m := map[string]uint64{
		"ticker ticks":      c.ticks.Load(),
		"time.Sleep rounds": c.sleeps.Load(),
		"time.After rounds": c.afters.Load(),
		"allocation rounds": c.allocs.Load(),
		"pipeline consumer": c.consumed.Load(),
	}
	for j := range c.stage {
		m[fmt.Sprintf("pipeline stage %d", j)] = c.stage[j].Load()
	}
	for h := range c.hogIters {
		m[fmt.Sprintf("spinning goroutine %d", h)] = c.hogIters[h].Load()
	}
	return m
}

var (
	c    counters
	stop atomic.Bool
)

// lcgJump returns the LCG state after n steps from x, in O(log n) by
// composing the affine map x -> a*x + c with itself.
func lcgJump(x, n uint64) uint64 {
	mulA, addC := uint64(lcgA), uint64(lcgC) // the map for 2^k steps
	accA, accC := uint64(1), uint64(0)       // the map for the steps so far
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			accA, accC = mulA*accA, mulA*accC+addC
		}
		mulA, addC = mulA*mulA, mulA*addC+addC
	}
	return accA*x + accC
}

type hogResult struct {
	h        int
	iters, x uint64
}

// hog spins without a function call in its loop, so it reaches no
// cooperative preemption point: the scheduler can only take its P by
// signalling the thread (SIGURG).
func hog(h int) hogResult {
	x := uint64(h + 1)
	var n uint64
	for {
		x = x*lcgA + lcgC
		n++
		if n&0xffff == 0 {
			c.hogIters[h].Store(n)
			if stop.Load() {
				break
			}
		}
	}
	return hogResult{h, n, x}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goprog RESULT_PATH")
		os.Exit(2)
	}
	result := os.Args[1]
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

	runtime.GOMAXPROCS(2)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM)
	fmt.Printf("goprog: pid %d, GOMAXPROCS %d\n", os.Getpid(), runtime.GOMAXPROCS(0))

	// The pipeline: producer -> 100 stages -> consumer.
	var ch [stages + 1]chan uint64
	for j := range ch {
		ch[j] = make(chan uint64, 4)
	}
	go func() {
		for k := uint64(1); ; k++ {
			ch[0] <- k
		}
	}()
	for j := 0; j < stages; j++ {
		go func(j int) {
			for v := range ch[j] {
				c.stage[j].Add(1)
				ch[j+1] <- v + uint64(j) + 1
			}
		}(j)
	}
	go func() {
		want := uint64(1)
		for v := range ch[stages] {
			if v != want+pipelineAdd {
				c.fail("pipeline delivered %d after %d values, want %d", v, want-1, want+pipelineAdd)
				return
			}
			seqMu.Lock()
			seqN = want
			seqSum += want
			seqMu.Unlock()
			c.consumed.Add(1)
			want++
		}
	}()

	// Goroutines blocked on a receive until the check.
	var in [waiters]chan uint64
	replies := make(chan [2]uint64, waiters)
	for i := range in {
		in[i] = make(chan uint64)
		go func(i int) {
			v := <-in[i]
			replies <- [2]uint64{uint64(i), v*3 + uint64(i)}
		}(i)
	}

	hogDone := make(chan hogResult, hogs)
	for h := 0; h < hogs; h++ {
		go func(h int) { hogDone <- hog(h) }(h)
	}

	ticker := time.NewTicker(10 * time.Millisecond)
	go func() {
		for range ticker.C {
			c.ticks.Add(1)
		}
	}()
	go func() {
		const d = 50 * time.Millisecond
		for {
			start := time.Now()
			time.Sleep(d)
			if el := time.Since(start); el < d {
				c.fail("time.Sleep(%v) returned after %v", d, el)
			}
			c.sleeps.Add(1)
		}
	}()
	go func() {
		for {
			<-time.After(30 * time.Millisecond)
			c.afters.Add(1)
		}
	}()

	// Allocations the collector must keep intact: a ring of buffers, each
	// filled with its round number.
	var ringMu sync.Mutex
	var ring [16][]uint64
	go func() {
		for r := uint64(1); ; r++ {
			b := make([]uint64, 8192)
			for i := range b {
				b[i] = r*0x9e3779b97f4a7c15 + uint64(i)
			}
			ringMu.Lock()
			ring[r%16] = b
			ringMu.Unlock()
			c.allocs.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	checkRing := func() {
		ringMu.Lock()
		defer ringMu.Unlock()
		for k, b := range ring {
			if b == nil {
				continue
			}
			base := b[0] // the round's pattern starts there
			for i := range b {
				if b[i] != base+uint64(i) {
					failNow("allocation in ring slot %d: word %d is %#x, want %#x", k, i, b[i], base+uint64(i))
				}
			}
		}
	}

	// Ready once everything has moved.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f := c.failure(); f != "" {
			failNow("before ready: %s", f)
		}
		moving := true
		for _, v := range c.snapshot() {
			if v == 0 {
				moving = false
			}
		}
		if moving {
			break
		}
		if time.Now().After(deadline) {
			failNow("not every goroutine made progress within 10 s: %v", c.snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	atReady := c.snapshot()
	if f, err := os.Create(result + ".ready"); err != nil {
		failNow("create ready file: %v", err)
	} else {
		f.Close()
	}

	<-sigc

	// Verification.
	if f := c.failure(); f != "" {
		failNow("%s", f)
	}
	atTerm := c.snapshot()
	for name, v := range atTerm {
		if v <= atReady[name] {
			failNow("%s counter is %d at SIGTERM, %d at ready: it did not advance", name, v, atReady[name])
		}
	}
	// Everything moves again now, after the restore: the ticker ticks,
	// timers fire, the pipeline flows past two preempted spinners.
	deadline = time.Now().Add(5 * time.Second)
	for name := range atTerm {
		for c.snapshot()[name] <= atTerm[name] {
			if f := c.failure(); f != "" {
				failNow("%s", f)
			}
			if time.Now().After(deadline) {
				failNow("%s counter stuck at %d after SIGTERM", name, atTerm[name])
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	seqMu.Lock()
	n, sum := seqN, seqSum
	seqMu.Unlock()
	want := n / 2 * (n + 1)
	if n%2 == 1 {
		want = (n + 1) / 2 * n
	}
	if n == 0 || sum != want {
		failNow("pipeline checksum: sum of 1..%d is %d, want %d", n, sum, want)
	}

	for i := range in {
		in[i] <- uint64(i) + 1000
	}
	got := map[uint64]bool{}
	for range in {
		select {
		case r := <-replies:
			if r[1] != (r[0]+1000)*3+r[0] {
				failNow("blocked goroutine %d answered %d, want %d", r[0], r[1], (r[0]+1000)*3+r[0])
			}
			got[r[0]] = true
		case <-time.After(5 * time.Second):
			failNow("only %d of %d blocked goroutines answered", len(got), waiters)
		}
	}

	stop.Store(true)
	for h := 0; h < hogs; h++ {
		select {
		case r := <-hogDone:
			if want := lcgJump(uint64(r.h+1), r.iters); r.x != want {
				failNow("spinning goroutine %d: state %#x after %d iterations, want %#x", r.h, r.x, r.iters, want)
			}
		case <-time.After(5 * time.Second):
			failNow("a spinning goroutine did not stop")
		}
	}

	runtime.GC()
	checkRing()
	if f := c.failure(); f != "" {
		failNow("%s", f)
	}
	report("PASS")
}
