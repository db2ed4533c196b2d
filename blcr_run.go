//go:build linux

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/restorer"
)

func runCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "dir", Aliases: []string{"D"}, Usage: "supervise the job and keep its checkpoints in `DIR`: restart it from the newest generation there if there is one, else start PROGRAM"},
		&cli.DurationFlag{Name: "checkpoint-every", Usage: "with -D: checkpoint the job every `DURATION` (10m, 1h) into a new generation; SIGUSR1 to cr_run takes one at once"},
		&cli.IntFlag{Name: "keep", Value: 2, Usage: "with -D: keep the `N` newest generations"},
		&cli.BoolFlag{Name: "incremental", Usage: "with -D: each generation after the first (and after a restart) holds only the pages written since the one before; the generations a kept one needs are kept too"},
		&cli.BoolFlag{Name: "remove-on-success", Usage: "with -D: remove the generations when the job exits with status 0 (they stay otherwise)"},
		&cli.BoolFlag{Name: "slurm", Usage: "with -D, as a Slurm batch job (exec cr_run in the script, #SBATCH --requeue --signal=B:USR1@60): checkpoint and requeue the job when it is preempted or near its time limit, restart it from the checkpoint when it runs again (docs/SLURM.md)"},
		&cli.StringFlag{Name: "slurm-signal", Value: "USR1", Usage: "with --slurm: the job's --signal `SIG` (a name or number), Slurm's warning"},
		&cli.DurationFlag{Name: "slurm-warning", Value: time.Minute, Usage: "with --slurm: the job's --signal time (`DURATION`, @60: 1m); the signal within it of the end time is the time-limit warning"},
		callbackTimeoutFlag(),
		statsFlag("latest checkpoint"),
		compressFlag("each generation"),
		pidnsFlag(),
		relocateFlag(),
		trustImagesFlag,
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no error message (the exit code still tells)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print each checkpoint taken"},
	}
	return &cli.Command{
		Name:      "run",
		Usage:     "run a program ready to be checkpointed (BLCR's cr_run)",
		UsageText: "cr_run [--] PROGRAM [ARGS...]\n   cr_run -D DIR [--checkpoint-every=DURATION] [options] -- PROGRAM [ARGS...]\n   cr_run --slurm -D DIR [options] -- PROGRAM [ARGS...]\n   gocr run [options] [--] PROGRAM [ARGS...]",
		Description: "Runs PROGRAM with ARGS. gocr needs nothing loaded into a program to checkpoint it, so\n" +
			"cr_run becomes PROGRAM (execve(2)): it keeps cr_run's PID, process group, session,\n" +
			"standard input, output and error and environment, and its exit status is cr_run's.\n" +
			"As with BLCR, 'cr_run PROGRAM &' then 'cr_checkpoint $!' checkpoints it.\n" +
			"With -D DIR, cr_run stays as the job's parent instead: it starts PROGRAM in a session\n" +
			"of its own, or, when DIR holds a checkpoint, restarts the job from the newest one that\n" +
			"reads whole (so the same command line starts a job afresh and later resumes it),\n" +
			"checkpoints it every --checkpoint-every and on SIGUSR1 into new generations in DIR,\n" +
			"waits for it and exits as it does. SIGTERM, SIGINT or SIGHUP to cr_run stop the\n" +
			"checkpoints and are passed on to the job. --remove-on-success removes the generations\n" +
			"when the job exits with status 0.\n" +
			"With --slurm, cr_run is a Slurm batch job's process ('exec cr_run --slurm -D DIR -- PROGRAM'\n" +
			"in the script, with #SBATCH --requeue --signal=B:USR1@60): at a preemption or the time-limit\n" +
			"warning it checkpoints the job, ends it and requeues it; at SIGTERM with a requeue under way\n" +
			"it checkpoints and ends it; at a --signal sent by hand it checkpoints and the job goes on;\n" +
			"a requeued job restarts from its checkpoint with the new run's output files (docs/SLURM.md).\n" +
			"Options go before PROGRAM.",
		Flags: append(flags, saveFlags()...),
		// Everything after the program name is the program's: the options
		// before it are parsed by runAction.
		SkipFlagParsing: true,
		Action:          runAction,
	}
}

// runOptions is what cr_run's command line says.
type runOptions struct {
	args     []string // PROGRAM ARGS
	dir      string   // "": become the program
	periodic *checkpointOptions
	slurm    *slurmOptions // --slurm
	pidns    string
	relocate []string
	trust    bool
	quiet    bool
	// removeOnSuccess: the generations go when the job exits with 0.
	removeOnSuccess bool
}

// runAction becomes the program, or with -D supervises it (runSupervised).
// Without -D nothing of gocr stays between the job and whoever started
// it: its PID is the one the shell knows ($!), its signals and exit
// status are its own, and a checkpoint of it holds no gocr process.
func runAction(c *cli.Context) error {
	o, err := runArgs(c)
	if err != nil {
		return report(err, exitUsage, o != nil && o.quiet)
	}
	path, err := exec.LookPath(o.args[0])
	if o.dir != "" {
		return runSupervised(o, path, err)
	}
	if err != nil {
		// The shell's code for a program not found (bash(1), "EXIT
		// STATUS").
		return report(err, 127, false)
	}
	err = unix.Exec(path, o.args, os.Environ())
	return report(fmt.Errorf("run %s: %w", path, err), 126, false)
}

// runArgs parses the options before PROGRAM with the command's flags;
// the flag parser stops at "--" or PROGRAM, the first argument that is
// not an option.
func runArgs(c *cli.Context) (*runOptions, error) {
	args := c.Args().Slice()
	set := flag.NewFlagSet("cr_run", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		cli.ShowCommandHelpAndExit(c.Lineage()[1], "run", 0)
	}
	if err := set.Parse(args); err != nil {
		return nil, usageError{err}
	}
	// Each name of a flag is a flag of its own in set: the value given
	// under one goes to all (as urfave does after its own parsing).
	for _, f := range c.Command.Flags {
		names := f.Names()
		set.Visit(func(g *flag.Flag) {
			if slices.Contains(names, g.Name) {
				for _, n := range names {
					if n != g.Name {
						set.Set(n, g.Value.String())
					}
				}
			}
		})
	}
	rc := cli.NewContext(c.App, set, c)
	o := &runOptions{args: set.Args(), quiet: rc.Bool("quiet")}
	if len(o.args) == 0 {
		return o, usagef("give the PROGRAM to run")
	}
	var given []string
	set.Visit(func(f *flag.Flag) { given = append(given, "--"+f.Name) })
	if !rc.IsSet("dir") {
		if len(given) > 0 {
			return o, usagef("%s goes with -D DIR (cr_run -D DIR %s ... -- PROGRAM)", given[0], given[0])
		}
		return o, nil
	}
	dir, err := filepath.Abs(rc.String("dir"))
	if err != nil {
		return o, usageError{err}
	}
	o.dir = dir
	o.pidns, o.relocate, o.trust = rc.String("pidns"), rc.StringSlice("relocate"), rc.Bool("trust-images")
	switch o.pidns {
	case restorer.PidnsAuto, restorer.PidnsAlways, restorer.PidnsNever:
	default:
		return o, usagef("invalid --pidns %q: use auto, always or never", o.pidns)
	}
	if err := checkRelocations(o.relocate); err != nil {
		return o, err
	}
	p := &checkpointOptions{dir: dir, every: rc.Duration("checkpoint-every"), keep: rc.Int("keep"), quiet: o.quiet, incremental: rc.Bool("incremental")}
	if rc.IsSet("checkpoint-every") && p.every <= 0 {
		return o, usagef("invalid --checkpoint-every %v: a duration above 0 (10m, 1h)", p.every)
	}
	if p.keep < 1 {
		return o, usagef("invalid --keep %d: keep at least 1 generation", p.keep)
	}
	if rc.IsSet("stats") {
		if p.stats, err = filepath.Abs(rc.String("stats")); err != nil {
			return o, usageError{err}
		}
	}
	if p.dump.Save, err = savedFiles(args[:len(args)-len(o.args)], c.Command.Flags); err != nil {
		return o, usageError{err}
	}
	o.removeOnSuccess = rc.Bool("remove-on-success")
	if rc.Bool("slurm") {
		sig, err := parseSignal(rc.String("slurm-signal"))
		if err != nil {
			return o, usagef("invalid --slurm-signal %q: not a signal number or name", rc.String("slurm-signal"))
		}
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGTERM, unix.SIGCONT, unix.SIGCHLD:
			return o, usagef("invalid --slurm-signal %s: Slurm sends SIGCONT and SIGTERM on its own, and SIGKILL, SIGSTOP and SIGCHLD cannot warn", unix.SignalName(sig))
		}
		if rc.Duration("slurm-warning") < 0 {
			return o, usagef("invalid --slurm-warning %v", rc.Duration("slurm-warning"))
		}
		o.slurm = &slurmOptions{signal: sig, warning: rc.Duration("slurm-warning")}
	} else {
		for _, f := range []string{"slurm-signal", "slurm-warning"} {
			if rc.IsSet(f) {
				return o, usagef("--%s goes with --slurm", f)
			}
		}
	}
	p.dump.BeforeFreeze = callbacks.Before(rc.Duration("callback-timeout"))
	p.verbose = rc.Bool("verbose")
	p.file.Compression = compression(rc)
	o.periodic = p
	return o, nil
}
