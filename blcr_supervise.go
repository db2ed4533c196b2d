//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/internal/childfds"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/restorer"
)

// cr_run -D DIR: cr_run stays the job's parent, checkpoints it into the
// generations of DIR, and exits as it does. It is never part of a
// checkpoint: the dump takes the job's root and its descendants.

// supervisor is cr_run's hold on the job it runs.
type supervisor struct {
	// child is cr_run's child whose end is the job's: the root, or the
	// init of the PID namespace the job was restarted in, which exits
	// with the root's status (restorer.Result.ReaperPid).
	child   int
	childFd int // its pidfd
	// root is the job's root process in cr_run's PID namespace: what is
	// checkpointed, and what a signal to cr_run is passed on to.
	root   int
	rootFd int
	// from is the context the job was restarted from ("": started).
	from string
	// mu is held while a checkpoint runs: the job is then traced, and a
	// wait4(2) for one of its processes could take its ptrace stops (a
	// tracee is a child for wait, ptrace(2)); cr_run waits only between
	// checkpoints.
	mu sync.Mutex
}

// runSupervised runs cr_run -D: path is PROGRAM's (lookErr: why it was
// not found), run only when DIR holds no generation.
func runSupervised(o *runOptions, path string, lookErr error) error {
	// Descendants orphaned in the job stay below cr_run, not init
	// (prctl(2), PR_SET_CHILD_SUBREAPER), and cr_run reaps them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return report(fmt.Errorf("become a subreaper: %w", err), exitFailure, o.quiet)
	}
	// The job gets standard input, output and error and nothing else of
	// what cr_run was given: a descriptor shared with a process outside
	// it (a pipe from a batch system's daemon) would make every
	// checkpoint refuse it.
	if err := childfds.CloseOnExecInherited(); err != nil {
		return report(err, exitFailure, o.quiet)
	}
	// Before DIR and the job exist, so that no signal meant for the job
	// is lost and SIGUSR1 never ends cr_run by its default action.
	p := newPeriodic(o.periodic.every)
	defer p.close()
	var sl *slurmRun
	term := make(chan os.Signal, 4)
	if o.slurm != nil {
		var err error
		if sl, err = listenSlurm(o, p); err != nil {
			return report(err, exitUsage, o.quiet)
		}
	} else {
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	gens, err := openGenerations(o.dir, o.periodic.keep)
	if err != nil {
		return report(err, exitFailure, o.quiet)
	}
	defer gens.close()
	gens.compress = o.periodic.file.Compression
	gens.incremental = o.periodic.incremental
	p.gens = gens
	p.timeout, p.stats, p.quiet, p.verbose = o.periodic.timeout, o.periodic.stats, o.quiet, o.periodic.verbose

	existing, err := gensPresent(o.dir)
	if err != nil {
		return report(err, exitFailure, o.quiet)
	}
	if sl != nil {
		sl.starting(existing)
	}
	var sv *supervisor
	if existing {
		sv, err = restartJob(o)
		if err != nil {
			class := classify(err)
			return report(fmt.Errorf("%s: %w", class.what(), err), class.code, o.quiet)
		}
	} else {
		if lookErr != nil {
			return report(lookErr, 127, o.quiet)
		}
		if sv, err = startJob(path, o.args); err != nil {
			return report(err, 126, o.quiet)
		}
		o.verbosef("pid %d started, checkpoints in %s", sv.root, o.dir)
	}
	defer unix.Close(sv.childFd)
	defer unix.Close(sv.rootFd)
	go func() {
		for range chld {
			sv.mu.Lock()
			sv.reapOrphans()
			sv.mu.Unlock()
		}
	}()
	opts := o.periodic.dump
	opts.Pid, opts.Version = sv.root, version
	if sl != nil {
		sl.started(sv)
		return sl.supervise(sv, p, gens, opts)
	}

	// A signal to cr_run stops the checkpoints (one under way is
	// abandoned, the job running on as it was) and goes on to the job.
	ckptCtx, stopCheckpoints := context.WithCancel(context.Background())
	defer stopCheckpoints()
	go func() {
		for sig := range term {
			stopCheckpoints()
			if err := unix.PidfdSendSignal(sv.rootFd, sig.(syscall.Signal), nil, 0); err != nil && !errors.Is(err, unix.ESRCH) && !o.quiet {
				fmt.Fprintf(os.Stderr, "%s: pass %v on to pid %d: %v\n", progName, sig, sv.root, err)
			}
		}
	}()

	ended := pidfdEnded(sv.childFd)
	p.ended = ended
	due, stopTimer := p.timer()
	asked := p.asked
	for {
		select {
		case <-ended:
			stopTimer()
			return sv.exit(o, gens)
		case <-ckptCtx.Done():
			stopTimer()
			due, asked = nil, nil
			continue
		case <-due:
		case <-asked:
		}
		stopTimer()
		sv.mu.Lock()
		p.checkpoint(ckptCtx, opts, false)
		sv.mu.Unlock()
		if ckptCtx.Err() == nil {
			due, stopTimer = p.timer()
		}
	}
}

// gensPresent tells whether dir holds any generation to restart from.
func gensPresent(dir string) (bool, error) {
	gens, err := contextfile.Generations(dir)
	return len(gens) > 0, err
}

// startJob starts PROGRAM as cr_run's child, in a session of its own:
// a job whose session and process group are its own restarts wherever
// it is restarted, needing no session from outside it (restorer.buildTree).
func startJob(path string, args []string) (*supervisor, error) {
	cmd := exec.Command(path, args[1:]...)
	cmd.Args = args
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", path, err)
	}
	// Never reaped by os/exec (no Wait): cr_run waits for it itself,
	// so the PID stays the job's until then.
	pid := cmd.Process.Pid
	return holdJob(pid, pid)
}

// restartJob restarts the job from the newest whole generation of
// o.dir, as cr_run's child, detached: cr_run waits for it itself.
func restartJob(o *runOptions) (*supervisor, error) {
	sigs := catchSignals()
	prog := newProgress(o.quiet)
	ex, err := contextSource{dir: o.dir, trust: o.trust, progress: prog}.open()
	if err == nil {
		defer ex.close()
	}
	if err == nil && o.pidns == restorer.PidnsAuto {
		err = checkJobGone(ex.images)
	}
	var stdio [3]*os.File
	if err == nil {
		stdio, _, err = restartStdio(ex.images, false)
	}
	prog.end()
	var res *restorer.Result
	if err == nil {
		res, err = restorer.Run(sigs.ctx, restorer.Options{
			Images: ex.images, Detach: true, Supervised: true, TrustImages: o.trust,
			Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2],
			PidNamespace: o.pidns, Relocate: o.relocate,
			Restarted: callbacks.Restarted,
		})
	}
	if err != nil {
		return nil, sigs.end(err, "no process it created is left", "")
	}
	// A signal that came once the job ran is in runSupervised's channel
	// too, and goes on to the job.
	sigs.stopCatching()
	o.verbosef("pid %d restarted from %s", res.Pid, ex.name)
	child := res.HostPid
	if res.ReaperPid != 0 {
		child = res.ReaperPid
	}
	sv, err := holdJob(child, res.HostPid)
	if sv != nil {
		sv.from = ex.name
	}
	return sv, err
}

// holdJob opens the pidfds of the job's child and root. Both are still
// cr_run's to reap, or below it, so their PIDs are theirs.
func holdJob(child, root int) (*supervisor, error) {
	sv := &supervisor{child: child, root: root, childFd: -1, rootFd: -1}
	var err error
	if sv.childFd, err = unix.PidfdOpen(child, 0); err != nil {
		return nil, fmt.Errorf("pid %d: %w", child, err)
	}
	if sv.rootFd, err = unix.PidfdOpen(root, 0); err != nil {
		unix.Close(sv.childFd)
		return nil, fmt.Errorf("pid %d: %w", root, err)
	}
	return sv, nil
}

// reapOrphans reaps cr_run's children that ended, other than the job's:
// processes of the job orphaned below the subreaper.
// Precondition: sv.mu held (no checkpoint runs).
func (sv *supervisor) reapOrphans() {
	kids, _ := proc.Children(os.Getpid())
	for _, pid := range kids {
		if pid == sv.child {
			continue
		}
		if st, err := proc.ReadStat(pid); err == nil && st.State == 'Z' {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}

// exit waits for the job's child, which has ended, and ends cr_run as it
// ended: with its exit status, or killed by the same signal. With
// --remove-on-success, a job that exited with status 0 takes its
// generations with it.
func (sv *supervisor) exit(o *runOptions, gens *generations) error {
	ws, err := sv.wait()
	if err != nil {
		return report(err, exitFailure, false)
	}
	if ws.Exited() && ws.ExitStatus() == 0 && o.removeOnSuccess {
		if err := gens.removeAll(); err != nil {
			return report(fmt.Errorf("the job exited with status 0, but removing its generations failed: %w", err), exitFailure, o.quiet)
		}
	}
	switch {
	case ws.Signaled():
		dieLike(ws.Signal())
	case ws.ExitStatus() != 0:
		return exitCode(ws.ExitStatus())
	}
	return nil
}

// wait waits for the job's child to end and reaps it.
func (sv *supervisor) wait() (unix.WaitStatus, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(sv.child, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait for pid %d: %w", sv.child, err)
		}
		return ws, nil
	}
}

// verbosef prints a progress line with --verbose (cr_run parses its own
// options: the command's context does not have them).
func (o *runOptions) verbosef(format string, args ...any) {
	if o.periodic.verbose {
		fmt.Fprintf(os.Stderr, "%s: %s\n", progName, fmt.Sprintf(format, args...))
	}
}
