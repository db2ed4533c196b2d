//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/images"
)

// Periodic checkpoints (docs/BLCR.md, "Periodic checkpoints"): gocr
// checkpoint --every for a running PID, and cr_run --checkpoint-every
// for the job it supervises (blcr_supervise.go). Each checkpoint is a new
// generation in a directory, a context file complete before it has its
// name; the older ones stay until it is, then the oldest beyond --keep go.
// SIGUSR1 asks for one at once, as batch systems ask.

// periodicArgs checks the options of gocr checkpoint --every.
func periodicArgs(c *cli.Context, o *checkpointOptions) (*checkpointOptions, error) {
	if !c.IsSet("every") {
		return nil, usagef("-D DIR and --keep go with --every DURATION")
	}
	if o.every = c.Duration("every"); o.every <= 0 {
		return nil, usagef("invalid --every %v: a duration above 0 (10m, 1h)", c.Duration("every"))
	}
	o.incremental = c.Bool("incremental")
	if o.keep = c.Int("keep"); o.keep < 1 {
		return nil, usagef("invalid --keep %d: keep at least 1 generation", o.keep)
	}
	if !c.IsSet("dir") {
		return nil, usagef("--every needs -D DIR, the directory of the generations")
	}
	for _, f := range []string{"file", "fd", "atomic", "backup", "clobber", "noclobber"} {
		if c.IsSet(f) {
			return nil, usagef("--%s is about one context file; --every writes the generations of -D DIR", f)
		}
	}
	if o.after != 0 {
		return nil, usagef("--every lets the processes run on between checkpoints: give none of --stop, --term, --abort, --kill and --signal")
	}
	dir, err := filepath.Abs(c.String("dir"))
	if err != nil {
		return nil, usageError{err}
	}
	o.dir, o.path, o.out = dir, "", nil
	return o, nil
}

// generations is a directory of generations, held (flock(2) on the
// directory) by the one checkpointer writing it.
type generations struct {
	dir      string
	keep     int
	compress contextfile.Compression
	lock     *os.File
	// incremental: each generation after the first holds only the
	// pages written since the one before (blcr_incremental.go).
	incremental bool
}

// openGenerations creates dir if missing (mode 0700: the contexts hold
// the job's memory), takes it, and removes what a checkpointer killed
// while writing left there.
func openGenerations(dir string, keep int) (*generations, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory of the generations: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use: another gocr writes its generations", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	g := &generations{dir: dir, keep: keep, lock: f}
	if err := contextfile.RemoveStaleTemporaries(dir); err != nil {
		g.close()
		return nil, err
	}
	stale, _ := filepath.Glob(filepath.Join(dir, ".gocr-checkpoint-*"))
	for _, s := range stale {
		os.RemoveAll(s)
	}
	return g, nil
}

func (g *generations) close() { g.lock.Close() }

// removeAll removes every generation, and the directory once it is
// empty (a file of the user's own in it is left, and the directory
// with it).
func (g *generations) removeAll() error {
	gens, err := contextfile.Generations(g.dir)
	if err != nil {
		return err
	}
	g.removeIncremental()
	for _, gen := range gens {
		if err := os.Remove(gen.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(g.dir); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// errEndedAtCheckpoint: a checkpoint that ends the processes failed after
// it ended them.
var errEndedAtCheckpoint = errors.New("the processes were ended at the checkpoint")

// take checkpoints the processes o selects, leaving them running, into
// the next generation, and then removes the oldest beyond g.keep.
// timeout > 0 bounds it; a checkpoint that fails or is stopped leaves the
// processes running as they were and the generations as they were.
//
// With end, the dump itself ends the processes, still frozen, once their
// state is complete and synced (as cr_checkpoint --kill), so they take no
// step after it that a restart would take again. From then on the dump
// is all there is of them: should writing the context fail, it is kept
// in DIR as images-gen-N and the error names it (gocr restore -D).
func (g *generations) take(ctx context.Context, o dump.Options, timeout time.Duration, prog *progress, end bool) (_ *checkpointStats, err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimeout{timeout})
		defer cancel()
	}
	n, err := contextfile.NextGeneration(g.dir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(g.dir, ".gocr-checkpoint-")
	if err != nil {
		return nil, fmt.Errorf("directory for the dump: %w", err)
	}
	keepTmp := false
	defer func() {
		if !keepTmp {
			os.RemoveAll(tmp)
		}
	}()
	start := time.Now()
	o.Dir = filepath.Join(tmp, "images")
	o.LeaveRunning = !end
	prevN := 0
	if g.incremental {
		o.Track, o.TrackHolder = true, trackHolderCmd
		var prev string
		if prev, prevN = g.prevImages(); prev != "" {
			o.Prev, o.PrevRef = prev, "../"+filepath.Base(contextfile.GenerationPath(g.dir, prevN))
		}
	}
	prog.phase(fmt.Sprintf("generation %d", n), func() int64 { return diskUsage(tmp) }, memoryOf(selected(o)))
	if err := dump.Run(ctx, o); err != nil {
		return nil, err
	}
	if end {
		defer func() {
			if err != nil {
				kept := filepath.Join(g.dir, fmt.Sprintf("images-gen-%06d", n))
				if rerr := os.Rename(o.Dir, kept); rerr != nil {
					keepTmp = true
					err = fmt.Errorf("%w; %w, which is kept in %s (gocr restore -D %s; moving it to %s failed: %v)", err, errEndedAtCheckpoint, o.Dir, o.Dir, kept, rerr)
					return
				}
				err = fmt.Errorf("%w; %w, which is kept in %s (gocr restore -D %s)", err, errEndedAtCheckpoint, kept, kept)
			}
		}()
	}
	st := &checkpointStats{Dump: readDumpStats(o.Dir), Generation: n, Context: contextfile.GenerationPath(g.dir, n)}
	if g.incremental {
		// Noted before the generation has its name: --keep must
		// never see it without its parent.
		parent := 0
		if d, err := images.Open(o.Dir); err == nil {
			if len(d.Inventory().GetParentDumpId()) > 0 {
				parent = prevN
			}
			d.Close()
		}
		if err := g.recordParent(n, parent); err != nil {
			return nil, fmt.Errorf("note generation %d's parent: %w", n, err)
		}
	}
	written, consumed := new(atomic.Int64), new(atomic.Int64)
	prog.phase(fmt.Sprintf("writing generation %d", n), consumed.Load, diskUsage(o.Dir))
	writeStart := time.Now()
	// NoClobber: a number taken meanwhile is never replaced.
	if err := contextfile.WriteFile(st.Context, o.Dir, contextfile.FileOptions{Replace: contextfile.NoClobber, Written: written, Consumed: consumed, Compression: g.compress}); err != nil {
		return nil, err
	}
	st.ContextBytes = written.Load()
	st.ContextWriteNs = ns(time.Since(writeStart))
	st.TotalNs = ns(time.Since(start))
	if g.incremental {
		if err := g.keepPrevImages(o.Dir, n); err != nil {
			fmt.Fprintf(os.Stderr, "%s: warning: generation %d is complete, but keeping its page maps for the next failed (the next will be full): %v\n", progName, n, err)
		}
	}
	if err := g.prune(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: warning: generation %d is complete, but removing the oldest failed: %v\n", progName, n, err)
	}
	return st, nil
}

// periodic takes a generation every interval and on SIGUSR1.
type periodic struct {
	gens    *generations
	every   time.Duration // 0: only on SIGUSR1
	timeout time.Duration // of each checkpoint
	stats   string        // --stats FILE
	quiet   bool
	verbose bool
	asked   chan os.Signal // SIGUSR1
	// ended is closed once the job has ended: a checkpoint that failed
	// because it did is not worth a message.
	ended <-chan struct{}
}

// newPeriodic starts listening for SIGUSR1, before the directory of the
// generations is made: once it exists, SIGUSR1 no longer ends gocr by
// its default action.
func newPeriodic(every time.Duration) *periodic {
	p := &periodic{every: every, asked: make(chan os.Signal, 1)}
	signal.Notify(p.asked, syscall.SIGUSR1)
	return p
}

func (p *periodic) close() { signal.Stop(p.asked) }

// timer is when the next periodic checkpoint is due (nil channel: never).
func (p *periodic) timer() (<-chan time.Time, func()) {
	if p.every <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(p.every)
	return t.C, func() { t.Stop() }
}

// checkpoint takes one generation and says how it went: a failure is
// told, and the job runs on (unless end: generations.take); the next one
// is tried at its time.
func (p *periodic) checkpoint(ctx context.Context, o dump.Options, end bool) (*checkpointStats, error) {
	prog := newProgress(p.quiet)
	st, err := p.gens.take(ctx, o, p.timeout, prog, end)
	prog.end()
	if err != nil {
		select {
		case <-p.ended:
			return nil, err
		default:
		}
		if !p.quiet {
			what := ", the processes run on"
			if end {
				// The error says whether the processes were ended.
				what = ""
			}
			fmt.Fprintf(os.Stderr, "%s: checkpoint into %s failed%s: %v\n", progName, p.gens.dir, what, err)
		}
		return nil, err
	}
	if p.verbose {
		fmt.Fprintf(os.Stderr, "%s: generation %d written to %s (%s, frozen %v)\n", progName, st.Generation, st.Context, size(st.ContextBytes), st.frozen().Round(time.Microsecond))
	}
	if p.stats != "" {
		if err := writeStatsFile(p.stats, st); err != nil && !p.quiet {
			fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
		}
	}
	return st, nil
}

// frozen is how long the job was frozen for the checkpoint.
func (st *checkpointStats) frozen() time.Duration {
	if st.Dump == nil {
		return 0
	}
	return time.Duration(st.Dump.FrozenNs)
}

// checkpointEveryAction runs gocr checkpoint --every: generations of PID
// until it ends. SIGTERM, SIGINT or SIGHUP stop it (a checkpoint under
// way is abandoned, the processes run on as they were) and gocr ends by
// the signal; the job, which gocr did not start, is left alone.
func checkpointEveryAction(c *cli.Context, o *checkpointOptions) error {
	quiet := c.Bool("quiet")
	pidfd, err := unix.PidfdOpen(o.pid, 0)
	if err != nil {
		return report(usagef("pid %d: %v", o.pid, err), exitUsage, quiet)
	}
	defer unix.Close(pidfd)
	p := newPeriodic(o.every)
	defer p.close()
	gens, err := openGenerations(o.dir, o.keep)
	if err != nil {
		return report(err, exitFailure, quiet)
	}
	defer gens.close()
	gens.compress = o.file.Compression
	gens.incremental = o.incremental
	p.gens = gens
	p.timeout, p.stats, p.quiet, p.verbose = o.timeout, o.stats, quiet, c.Bool("verbose")
	sigs := catchSignals()
	ended := pidfdEnded(pidfd)
	p.ended = ended
	due, stopTimer := p.timer()
	for {
		select {
		case <-ended:
			stopTimer()
			verbosef(c, "pid %d ended", o.pid)
			sigs.stopCatching()
			return nil
		case <-sigs.ctx.Done():
			stopTimer()
			sigs.stopCatching()
			e := sigs.got.Load()
			fmt.Fprintf(os.Stderr, "%s: %v: periodic checkpoints stopped; pid %d runs on\n", progName, e, o.pid)
			dieBy(e.sig)
		case <-due:
		case <-p.asked:
		}
		stopTimer()
		p.checkpoint(sigs.ctx, o.dump, false)
		due, stopTimer = p.timer()
	}
}

// pidfdEnded is closed once the process of pidfd has ended: a pidfd
// polls readable then (pidfd_open(2)).
func pidfdEnded(pidfd int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == nil && n > 0 || err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return ch
}
