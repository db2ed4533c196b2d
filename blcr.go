//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// BLCR's three tools (cr_checkpoint, cr_restart, cr_run) are gocr's
// checkpoint, restart and run commands, also reached by running the gocr
// binary under those names (make install links them): docs/BLCR.md.

// blcrNames maps each BLCR tool to the gocr command it is.
var blcrNames = map[string]string{
	"cr_checkpoint": "checkpoint",
	"cr_restart":    "restart",
	"cr_run":        "run",
}

// progName is what gocr was invoked as, for its messages: cr_restart's
// errors say cr_restart.
var progName = "gocr"

// blcrArgs turns the command line of gocr invoked as a BLCR tool into
// gocr's (cr_restart ARGS: gocr restart ARGS), and spells BLCR's
// optional-value --backup so the flag parser takes it.
func blcrArgs(args []string) []string {
	if len(args) == 0 {
		return args
	}
	base := filepath.Base(args[0])
	out := append([]string(nil), args...)
	if cmd, ok := blcrNames[base]; ok {
		progName = base
		out = append([]string{args[0], cmd}, args[1:]...)
	}
	if len(out) > 1 && out[1] == "checkpoint" {
		// --backup takes an optional =NAME (cr_checkpoint(1)); alone it
		// must not take the PID after it as its value.
		for i, a := range out[2:] {
			if a == "--" {
				break
			}
			if a == "--backup" {
				out[2+i] = "--backup="
			}
		}
	}
	return out
}

// blcrCommands are the commands of BLCR's tools.
func blcrCommands() []*cli.Command {
	cmds := []*cli.Command{checkpointCommand(), restartCommand(), runCommand(), manCommand()}
	for _, c := range cmds {
		// A flag that does not parse is an error of the arguments,
		// with its own exit code (blcrExit).
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return report(err, exitUsage, false)
		}
	}
	return cmds
}

// Exit codes of cr_checkpoint and cr_restart for each failure class
// (docs/BLCR.md, "Exit codes"), from sysexits.h (/usr/include/sysexits.h)
// so they mean what they mean elsewhere: EX_USAGE, EX_DATAERR,
// EX_UNAVAILABLE, EX_TEMPFAIL.
const (
	exitUsage       = 64 // the command line, or a context file that cannot be read
	exitPermanent   = 65 // the context is damaged or cannot be restored
	exitEnvironment = 69 // this machine lacks a file or directory the job needs
	exitTemporary   = 75 // try again later: a PID in use, a lock held
	exitFailure     = 1  // a checkpoint that failed
)

// usageError is an error in the arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// report prints err as one line under the name gocr was run as, unless
// quiet, and returns the exit code that ends gocr silently.
func report(err error, code int, quiet bool) error {
	if !quiet {
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
	}
	return exitCode(code)
}

// verbosef prints a progress line when --verbose is given.
func verbosef(c *cli.Context, format string, args ...any) {
	if c.Bool("verbose") {
		fmt.Fprintf(os.Stderr, "%s: %s\n", progName, fmt.Sprintf(format, args...))
	}
}

// afterFlags are the options of what to do to the processes once a
// checkpoint or restart is done: BLCR's, one signal to every process
// (cr_checkpoint(1) and cr_restart(1), "Signals"). --run, the default,
// sends none.
func afterFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "run", Usage: "send no signal: the processes run on after the " + what + " (the default)"},
		&cli.BoolFlag{Name: "cont", Usage: "send SIGCONT to every process after the " + what + " (resumes a job that was stopped)"},
		&cli.BoolFlag{Name: "stop", Usage: "send SIGSTOP to every process after the " + what},
		&cli.BoolFlag{Name: "term", Usage: "send SIGTERM to every process after the " + what},
		&cli.BoolFlag{Name: "abort", Usage: "send SIGABRT to every process after the " + what},
		&cli.BoolFlag{Name: "kill", Usage: "send SIGKILL to every process after the " + what},
		&cli.StringFlag{Name: "signal", Aliases: []string{"S"}, Usage: "send signal `NUM` (a number or a name: 15, TERM, SIGTERM) to every process after the " + what},
	}
}

// afterSignal reads the after-options: the signal to send, 0 for none.
// BLCR honours the last of several; gocr refuses more than one, since
// the flag parser cannot tell their order.
func afterSignal(c *cli.Context) (unix.Signal, error) {
	var given []string
	var sig unix.Signal
	for _, o := range []struct {
		name string
		sig  unix.Signal
	}{{"run", 0}, {"cont", unix.SIGCONT}, {"stop", unix.SIGSTOP}, {"term", unix.SIGTERM}, {"abort", unix.SIGABRT}, {"kill", unix.SIGKILL}} {
		if c.Bool(o.name) {
			given = append(given, "--"+o.name)
			sig = o.sig
		}
	}
	if c.IsSet("signal") {
		given = append(given, "--signal")
		s, err := parseSignal(c.String("signal"))
		if err != nil {
			return 0, err
		}
		sig = s
	}
	if len(given) > 1 {
		return 0, usagef("give at most one of --run, --cont, --stop, --term, --abort, --kill and --signal, not %s", strings.Join(given, " and "))
	}
	return sig, nil
}

// parseSignal reads a signal as a decimal number or a name, with or
// without SIG.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		if n == 0 || n > 64 { // SIGRTMAX is 64 on Linux (signal(7))
			return 0, usagef("invalid --signal %q: signals are 1 to 64", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, usagef("invalid --signal %q: not a signal number or name", s)
}

// jobProcs are the processes of a job, each held by a pidfd: a signal
// sent through one can only reach the process it was opened for, never
// one that took its PID after it ended (pidfd_open(2)).
type jobProcs struct {
	fds map[int]int // pid: pidfd
}

func newJobProcs() *jobProcs { return &jobProcs{fds: map[int]int{}} }

// hold opens a pidfd for each pid not held yet; a process gone is
// skipped.
func (j *jobProcs) hold(pids []int) {
	for _, pid := range pids {
		if _, ok := j.fds[pid]; ok {
			continue
		}
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			j.fds[pid] = fd
		}
	}
}

// only forgets every process not in pids.
func (j *jobProcs) only(pids []int) {
	keep := map[int]bool{}
	for _, p := range pids {
		keep[p] = true
	}
	for pid, fd := range j.fds {
		if !keep[pid] {
			unix.Close(fd)
			delete(j.fds, pid)
		}
	}
}

// signal sends sig to every process held. One that has ended meanwhile
// (ESRCH) is not an error.
func (j *jobProcs) signal(sig unix.Signal) error {
	var errs []error
	for pid, fd := range j.fds {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("send %s to pid %d: %w", unix.SignalName(sig), pid, err))
		}
	}
	return errors.Join(errs...)
}

func (j *jobProcs) close() {
	for _, fd := range j.fds {
		unix.Close(fd)
	}
	j.fds = nil
}
