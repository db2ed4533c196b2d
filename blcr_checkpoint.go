//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/proc"
)

func checkpointCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "tree", Aliases: []string{"T"}, Usage: "PID and all its descendants (the default)"},
		&cli.BoolFlag{Name: "pid", Aliases: []string{"p", "process"}, Usage: "PID alone, without its children"},
		&cli.BoolFlag{Name: "pgid", Aliases: []string{"g", "group"}, Usage: "the whole process group PID (from its leader down)"},
		&cli.BoolFlag{Name: "sid", Aliases: []string{"s", "session"}, Usage: "the whole session PID (from its leader down)"},
		&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "write the context to `FILE` (- for standard output; default: context.PID in the current directory)"},
		&cli.IntFlag{Name: "fd", Aliases: []string{"F"}, Value: -1, DefaultText: "none", Usage: "write the context to the open file descriptor `FD`"},
		&cli.BoolFlag{Name: "atomic", Usage: "write a new FILE under a temporary name and rename it over the old one once complete (the default)"},
		&cli.StringFlag{Name: "backup", Usage: "as --atomic, keeping the old FILE as `NAME`, or as FILE.~N~ (N one above the highest there) for --backup alone"},
		&cli.BoolFlag{Name: "clobber", Usage: "remove the old FILE at once and write the new one in its place (a failed checkpoint then leaves none)"},
		&cli.BoolFlag{Name: "noclobber", Usage: "fail if FILE exists"},
		&cli.StringFlag{Name: "time", Usage: "give up after `SECONDS`, leaving the processes as they were"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no error message (the exit code still tells)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print what is done"},
		callbackTimeoutFlag(),
		statsFlag("checkpoint"),
		compressFlag("the context"),
		&cli.DurationFlag{Name: "every", Usage: "checkpoint again every `DURATION` (10m, 1h) into a new generation in -D DIR, until the processes end; SIGUSR1 asks for one at once"},
		&cli.IntFlag{Name: "keep", Value: 2, Usage: "with --every: keep the `N` newest generations"},
		&cli.BoolFlag{Name: "incremental", Usage: "with --every: each generation after the first holds only the pages written since the one before; the generations a kept one needs are kept too"},
		&cli.StringFlag{Name: "dir", Aliases: []string{"D"}, Usage: "with --every: the `DIR` of the generations (gen-000001.ctx, ...)"},
		ghostLimitFlag(),
	}
	flags = append(flags, saveFlags()...)
	return &cli.Command{
		Name:      "checkpoint",
		Usage:     "checkpoint a process, process group or session to a context file (BLCR's cr_checkpoint)",
		UsageText: "cr_checkpoint [options] PID\n   gocr checkpoint [options] PID",
		Description: "Freezes process PID and its descendants (or only PID with --pid, or its whole process\n" +
			"group or session with --pgid or --sid), saves their complete state in one context\n" +
			"file (context.PID in the current directory unless -f says otherwise), and lets them\n" +
			"run on, or sends them the signal an option asks for once the context is complete.\n" +
			"They are frozen only while their state is read. cr_restart starts them again from\n" +
			"the context. If the checkpoint fails, the processes run on as they were and an\n" +
			"existing context file is left as it was (except with --clobber).\n" +
			"With --every, it checkpoints the processes again and again into the generations\n" +
			"of -D DIR until they end (docs/BLCR.md, \"Periodic checkpoints\").\n" +
			"Options go before PID. Exit status: 0, 1 if the checkpoint failed, 64 for a bad\n" +
			"command line.",
		Flags:  append(flags, afterFlags("checkpoint")...),
		Action: checkpointAction,
	}
}

// checkpointOptions is what the command line of a checkpoint says.
type checkpointOptions struct {
	dump    dump.Options
	pid     int
	path    string // the context file; "" with out
	out     *os.File
	file    contextfile.FileOptions
	after   unix.Signal
	timeout time.Duration
	stats   string // --stats FILE, absolute
	quiet   bool
	verbose bool
	// Periodic checkpoints: every > 0, into the generations of dir.
	every time.Duration
	keep  int
	dir   string
	// incremental: generations after the first hold only the pages
	// written since the one before (blcr_incremental.go).
	incremental bool
}

func checkpointAction(c *cli.Context) error {
	o, err := checkpointArgs(c)
	if err != nil {
		return report(err, exitUsage, c.Bool("quiet"))
	}
	if o.every > 0 {
		return checkpointEveryAction(c, o)
	}
	sigs := catchSignals()
	err = runCheckpoint(sigs.ctx, c, o)
	err = sigs.end(err, "the processes run on as they were, and no context file was written", "the checkpoint was complete")
	if err != nil {
		return report(err, exitFailure, c.Bool("quiet"))
	}
	return nil
}

func checkpointArgs(c *cli.Context) (*checkpointOptions, error) {
	o := &checkpointOptions{}
	switch c.NArg() {
	case 0:
		return nil, usagef("give the PID to checkpoint")
	case 1:
	default:
		return nil, usagef("give one PID, with the options before it (got %q)", c.Args().Slice())
	}
	pid, err := parsePID("PID", c.Args().First())
	if err != nil {
		return nil, usageError{err}
	}
	o.pid = pid
	var scopes []string
	for _, s := range []string{"tree", "pid", "pgid", "sid"} {
		if c.Bool(s) {
			scopes = append(scopes, "--"+s)
		}
	}
	if len(scopes) > 1 {
		return nil, usagef("give one of --tree, --pid, --pgid and --sid, not %v", scopes)
	}
	o.dump = dump.Options{Version: version, LeaveRunning: true, GhostLimit: c.Int64("ghost-limit")}
	switch {
	case c.Bool("pgid"):
		o.dump.Pgid = pid
	case c.Bool("sid"):
		o.dump.Sid = pid
	default:
		o.dump.Pid = pid
		o.dump.Alone = c.Bool("pid")
	}
	if o.dump.Save, err = savedFiles(commandArgv("checkpoint"), c.Command.Flags); err != nil {
		return nil, usageError{err}
	}
	o.dump.BeforeFreeze = callbacks.Before(c.Duration("callback-timeout"))
	o.quiet = c.Bool("quiet")
	if c.IsSet("stats") {
		if o.stats, err = filepath.Abs(c.String("stats")); err != nil {
			return nil, usageError{err}
		}
	}
	var policies []string
	for _, p := range []string{"atomic", "backup", "clobber", "noclobber"} {
		if c.IsSet(p) {
			policies = append(policies, "--"+p)
		}
	}
	if len(policies) > 1 {
		return nil, usagef("give one of --atomic, --backup, --clobber and --noclobber, not %v", policies)
	}
	switch {
	case c.IsSet("backup"):
		o.file = contextfile.FileOptions{Replace: contextfile.Backup, BackupName: c.String("backup")}
	case c.Bool("clobber"):
		o.file.Replace = contextfile.Clobber
	case c.Bool("noclobber"):
		o.file.Replace = contextfile.NoClobber
	}
	o.file.Compression = compression(c)
	switch {
	case c.IsSet("file") && c.IsSet("fd"):
		return nil, usagef("give -f FILE or -F FD, not both")
	case c.IsSet("fd"):
		fd := c.Int("fd")
		if fd < 0 {
			return nil, usagef("invalid --fd %d", fd)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, usagef("--fd %d: not an open file descriptor", fd)
		}
		o.out = os.NewFile(uintptr(fd), "fd "+strconv.Itoa(fd))
	case c.String("file") == "-":
		o.out = os.Stdout
	case c.IsSet("file"):
		o.path = c.String("file")
	default:
		o.path = fmt.Sprintf("context.%d", pid)
	}
	if o.out != nil {
		// A context is binary: sent to a terminal it is lost, and may
		// upset the terminal (the isatty(3) test, TCGETS).
		if _, err := unix.IoctlGetTermios(int(o.out.Fd()), unix.TCGETS); err == nil {
			return nil, usagef("standard output is a terminal: give -f FILE, or send the context to a file or a pipe")
		}
	}
	if o.out != nil && len(policies) > 0 {
		// cr_checkpoint(1): these are ignored for a descriptor; gocr
		// says so rather than ignore what was asked.
		return nil, usagef("%s is about a context file, not standard output or a descriptor", policies[0])
	}
	if o.path != "" {
		abs, err := filepath.Abs(o.path)
		if err != nil {
			return nil, usageError{err}
		}
		o.path = abs
	}
	if c.IsSet("time") {
		n, err := strconv.ParseUint(c.String("time"), 10, 31)
		if err != nil || n == 0 {
			return nil, usagef("invalid --time %q: a whole number of seconds above 0", c.String("time"))
		}
		o.timeout = time.Duration(n) * time.Second
	}
	if o.after, err = afterSignal(c); err != nil {
		return nil, err
	}
	if c.IsSet("every") || c.IsSet("dir") || c.IsSet("keep") || c.IsSet("incremental") {
		return periodicArgs(c, o)
	}
	return o, nil
}

// errTimeout ends a checkpoint that took longer than --time.
type errTimeout struct{ d time.Duration }

func (e errTimeout) Error() string { return fmt.Sprintf("--time of %v passed", e.d) }

// runCheckpoint dumps the processes into a private directory (the
// processes run on as soon as their state is read), writes the context
// from it, and only then sends the signal asked for. A checkpoint that
// fails before the signal leaves the processes running as they were.
//
// --kill is the exception: the dump itself ends the processes, still
// frozen, once their dump is complete and synced, so they take no step
// after the state saved that a restart would take again (BLCR's kernel
// module, too, signalled them before they ran on). From then on their
// dump is all there is of them, and it is kept, and named, if writing
// the context fails.
func runCheckpoint(ctx context.Context, c *cli.Context, o *checkpointOptions) (err error) {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.timeout, errTimeout{o.timeout})
		defer cancel()
	}
	tmpParent := os.TempDir()
	if o.path != "" {
		if err := contextfile.CheckTarget(o.path, o.file); err != nil {
			return err
		}
		if o.file.Replace == contextfile.Clobber {
			// cr_checkpoint(1): --clobber removes the old context at
			// once, so its space is free for the new one.
			if err := os.Remove(o.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		// Beside the context: the dump is as large as the context, and
		// belongs on the file system chosen for it.
		tmpParent = filepath.Dir(o.path)
	}
	tmp, err := os.MkdirTemp(tmpParent, ".gocr-checkpoint-")
	if err != nil {
		return fmt.Errorf("directory for the dump: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	killed := o.after == unix.SIGKILL
	o.dump.LeaveRunning = !killed
	procs := newJobProcs()
	defer procs.close()
	if o.after != 0 && !killed {
		procs.hold(selected(o.dump))
	}

	start := time.Now()
	o.dump.Dir = filepath.Join(tmp, "images")
	prog := newProgress(o.quiet)
	defer prog.end()
	prog.phase(fmt.Sprintf("checkpoint of pid %d", o.pid), func() int64 { return diskUsage(tmp) }, memoryOf(selected(o.dump)))
	if err := dump.Run(ctx, o.dump); err != nil {
		return err
	}
	verbosef(c, "processes of pid %d dumped in %v", o.pid, time.Since(start).Round(time.Millisecond))
	stats := &checkpointStats{Dump: readDumpStats(o.dump.Dir)}
	// The progress counts the images read: compressed, the context
	// written is smaller than they are.
	written, consumed := new(atomic.Int64), new(atomic.Int64)
	prog.phase("writing the context", consumed.Load, diskUsage(o.dump.Dir))
	writeStart := time.Now()
	defer func() {
		if err == nil && o.stats != "" {
			stats.ContextBytes = written.Load()
			stats.ContextWriteNs = ns(time.Since(writeStart))
			stats.TotalNs = ns(time.Since(start))
			stats.Context = o.path
			err = writeStatsFile(o.stats, stats)
		}
	}()
	if killed {
		verbosef(c, "processes of pid %d killed", o.pid)
		defer func() {
			if err != nil {
				keep = true
				err = fmt.Errorf("%w; the processes were killed at the checkpoint, which is kept in %s (gocr restore -D %s)", err, o.dump.Dir, o.dump.Dir)
			}
		}()
	} else {
		if o.after != 0 {
			pids, err := dumpedPids(o.dump.Dir)
			if err != nil {
				return err
			}
			procs.hold(pids)
			procs.only(pids)
		}
		// Until the signal, giving up leaves the processes as they were.
		if err := stoppedCtx(ctx); err != nil {
			return err
		}
	}
	signal := o.after
	if killed {
		signal = 0
	}

	if o.path != "" {
		o.file.Written, o.file.Consumed = written, consumed
		if err := contextfile.WriteFile(o.path, o.dump.Dir, o.file); err != nil {
			return err
		}
		verbosef(c, "context written to %s", o.path)
		return afterCheckpoint(c, procs, signal)
	}
	// A stream is complete only with its end record: the signal goes
	// before it, so a cr_restart reading the stream starts only once the
	// signal is sent.
	cw, err := contextfile.NewWriterOptions(contextfile.CountingWriter{W: o.out, N: written}, contextfile.WriterOptions{Compression: o.file.Compression, Consumed: consumed})
	if err == nil {
		err = cw.AddDir(o.dump.Dir)
	}
	if err == nil {
		err = cw.Flush()
	}
	if err == nil && !killed {
		err = stoppedCtx(ctx)
	}
	if err != nil {
		return fmt.Errorf("write the context to %s: %w", o.out.Name(), err)
	}
	if err := afterCheckpoint(c, procs, signal); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("write the end of the context to %s: %w", o.out.Name(), err)
	}
	verbosef(c, "context written to %s", o.out.Name())
	return nil
}

// afterCheckpoint sends the signal asked for (none: 0) to every
// checkpointed process.
func afterCheckpoint(c *cli.Context, procs *jobProcs, sig unix.Signal) error {
	if sig == 0 {
		return nil
	}
	if err := procs.signal(sig); err != nil {
		return err
	}
	verbosef(c, "sent %s to %d processes", unix.SignalName(sig), len(procs.fds))
	return nil
}

// selected lists the processes a dump with o would take, as they are
// now: their pidfds, opened before the dump, name them however long the
// checkpoint takes.
func selected(o dump.Options) []int {
	if o.Pid != 0 {
		if o.Alone {
			return []int{o.Pid}
		}
		pids := []int{o.Pid}
		for i := 0; i < len(pids) && i < 1<<16; i++ {
			children, _ := proc.Children(pids[i])
			pids = append(pids, children...)
		}
		return pids
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(pid); err == nil && (o.Pgid != 0 && st.Pgrp == o.Pgid || o.Sid != 0 && st.Session == o.Sid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// dumpedPids lists the processes of the dump in dir.
func dumpedPids(dir string) ([]int, error) {
	d, err := images.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var pids []int
	for _, p := range d.Inventory().Pids {
		pids = append(pids, int(p))
	}
	return pids, nil
}

// stoppedCtx returns why ctx ended, or nil while it runs.
func stoppedCtx(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// readDumpStats reads the figures a dump wrote beside its images
// (dump.StatsFile); nil if there are none.
func readDumpStats(dir string) *dump.Stats {
	b, err := os.ReadFile(filepath.Join(dir, dump.StatsFile))
	if err != nil {
		return nil
	}
	var st dump.Stats
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

// commandArgv is the command line after the command's name, as given
// (blcrArgs spells cr_checkpoint ARGS as gocr checkpoint ARGS).
func commandArgv(name string) []string {
	args := blcrArgs(os.Args)
	if len(args) > 1 && args[1] == name {
		return args[2:]
	}
	return nil
}
