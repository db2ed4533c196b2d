//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/proc"
)

// cr_run --slurm -D DIR: cr_run as a Slurm batch job's process, so that a
// preempted or timed-out job is checkpointed, requeued and restarted
// instead of started over (docs/SLURM.md, where each fact about Slurm
// used here was measured). Slurm sends the job's --signal to the batch
// process alone (sbatch(1), --signal with B:), so cr_run must be that
// process: `exec cr_run --slurm ...` in the script.

// slurmOptions are cr_run's options for Slurm.
type slurmOptions struct {
	// signal is the job's --signal: the warning before preemption (with
	// SlurmctldParameters=preempt_send_user_signal) or before the time
	// limit, also sent by hand with `scancel --signal`.
	signal unix.Signal
	// warning is the --signal's time (@60: 60 s): a signal that comes
	// within warning plus slurmSignalSlack of the job's end time is the
	// time-limit warning.
	warning time.Duration
}

// slurmSignalSlack: Slurm may send a --signal up to 60 s before its time
// (sbatch(1), --signal) and looks for jobs past a deadline only every
// 30 s (PERIODIC_TIMEOUT, src/slurmctld/slurmctld.h).
const slurmSignalSlack = 90 * time.Second

// slurmCommandTimeout bounds one scontrol run: it is an RPC to slurmctld,
// which may be busy with this very job, and a SIGTERM leaves only
// KillWait (30 s by default) for everything.
const slurmCommandTimeout = 5 * time.Second

// slurmRun is cr_run's hold on its Slurm job.
type slurmRun struct {
	o     *runOptions
	opts  *slurmOptions
	dir   string
	quiet bool
	id    string // SLURM_JOB_ID
	run   int    // SLURM_RESTART_COUNT: 0 the first time, 1 after one requeue...
	// The signals cr_run catches: the job's --signal (warning: the
	// periodic checkpoints' channel when it is SIGUSR1, which they catch
	// already), SIGTERM, and those passed on to the program as they
	// would have reached it without cr_run.
	warning <-chan os.Signal
	term    chan os.Signal
	other   chan os.Signal
}

// slurmPassedOn are the signals cr_run passes on to the job's root, as
// they would have reached the program, the batch process, without
// cr_run (`scancel --signal=SIG --batch`), but for the job's --signal.
// SIGUSR1, when it is not the --signal, asks for a checkpoint, as for
// cr_run -D.
var slurmPassedOn = []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR2, unix.SIGALRM}

// listenSlurm reads the job from the environment slurmd gives the batch
// process and catches its signals, before DIR or the job exist, so that
// none is lost and none ends cr_run by its default action.
func listenSlurm(o *runOptions, p *periodic) (*slurmRun, error) {
	s := &slurmRun{o: o, opts: o.slurm, dir: o.dir, quiet: o.quiet, id: os.Getenv("SLURM_JOB_ID"),
		term: make(chan os.Signal, 4), other: make(chan os.Signal, 8)}
	if s.id == "" {
		return nil, usagef("--slurm runs as a Slurm batch job (exec cr_run --slurm in the job script): SLURM_JOB_ID is not set")
	}
	if v := os.Getenv("SLURM_RESTART_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, usagef("SLURM_RESTART_COUNT=%q is not a count", v)
		}
		s.run = n
	}
	signal.Notify(s.term, syscall.SIGTERM)
	if s.opts.signal == unix.SIGUSR1 {
		s.warning = p.asked
	} else {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, s.opts.signal)
		s.warning = ch
	}
	for _, sig := range slurmPassedOn {
		if sig != s.opts.signal {
			signal.Notify(s.other, sig)
		}
	}
	return s, nil
}

// logf prints one line about the job on stderr, the job's output file,
// unless --quiet.
func (s *slurmRun) logf(format string, args ...any) {
	if !s.quiet {
		fmt.Fprintf(os.Stderr, "%s: slurm job %s run %d: %s\n", progName, s.id, s.run, fmt.Sprintf(format, args...))
	}
}

// starting says when a requeued job starts over, as it would without
// cr_run: there is nothing to restart it from.
func (s *slurmRun) starting(existing bool) {
	if !existing && s.run > 0 {
		s.logf("requeued, but %s holds no generation: starting the program from the beginning", s.dir)
	}
}

// started says how the job runs.
func (s *slurmRun) started(sv *supervisor) {
	if sv.from != "" {
		s.logf("restarted from %s, pid %d", sv.from, sv.root)
	} else {
		s.logf("started, pid %d, checkpoints in %s", sv.root, s.dir)
	}
}

// slurmStdio are the files of cr_run's own standard input, output and
// error: the batch job's, which slurmd opened for this run (its --input,
// --output and --error). The job's fds 0 to 2 on them are dumped as
// inherited (dump.Options.InheritStdio), so that the restarted job gets
// the files of the run that restarts it, as the program would have.
func slurmStdio() []files.FileID {
	var ids []files.FileID
	for fd := 0; fd <= 2; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			ids = append(ids, files.FileID{Dev: st.Dev, Ino: st.Ino})
		}
	}
	return ids
}

// supervise runs the job until it ends or is ended for a requeue.
func (s *slurmRun) supervise(sv *supervisor, p *periodic, gens *generations, opts dump.Options) error {
	opts.InheritStdio = slurmStdio()
	ended := pidfdEnded(sv.childFd)
	p.ended = ended
	asked := p.asked
	if s.opts.signal == unix.SIGUSR1 {
		asked = nil // SIGUSR1 is the warning: s.warning
	}
	checkpoint := func(told bool) {
		sv.mu.Lock()
		st, err := p.checkpoint(context.Background(), opts, false)
		sv.mu.Unlock()
		if told && err == nil {
			s.logf("generation %d written to %s (frozen %v); the job goes on", st.Generation, st.Context, st.frozen().Round(time.Millisecond))
		}
	}
	due, stopTimer := p.timer()
	for {
		told := false
		select {
		case <-ended:
			stopTimer()
			return sv.exit(s.o, gens)
		case <-due:
		case <-asked:
		case sig := <-s.warning:
			why := s.why(sv, sig.(syscall.Signal))
			if why.cause == causeManual {
				s.logf("%s: %s", unix.SignalName(sig.(syscall.Signal)), why)
				told = true
				break
			}
			stopTimer()
			return s.end(sv, p, gens, opts, sig.(syscall.Signal), why)
		case <-s.term:
			why := s.why(sv, unix.SIGTERM)
			if why.cause != causeCancel {
				stopTimer()
				return s.end(sv, p, gens, opts, unix.SIGTERM, why)
			}
			// The user wants the job gone: it gets the SIGTERM, as
			// without cr_run, and no more checkpoints are taken.
			s.logf("SIGTERM: %s: passed on to the program, the generations are left as they are", why)
			stopTimer()
			due, asked = nil, nil
			s.passOn(sv, unix.SIGTERM)
			continue
		case sig := <-s.other:
			s.passOn(sv, sig.(syscall.Signal))
			continue
		}
		stopTimer()
		checkpoint(told)
		due, stopTimer = p.timer()
	}
}

func (s *slurmRun) passOn(sv *supervisor, sig unix.Signal) {
	if err := unix.PidfdSendSignal(sv.rootFd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) && !s.quiet {
		fmt.Fprintf(os.Stderr, "%s: pass %v on to pid %d: %v\n", progName, unix.SignalName(sig), sv.root, err)
	}
}

// end checkpoints the job into a new generation, ending it there, asks
// Slurm to requeue the job unless Slurm is requeueing it already, waits
// for the job to be gone, and returns cr_run's end: exit status 0 once
// the job is requeued. A checkpoint that fails leaves the job to the
// requeue, which restarts it from the generation before; but a job that
// has ended on its own meanwhile ends cr_run as it would have, not
// requeued by cr_run: its work is done.
func (s *slurmRun) end(sv *supervisor, p *periodic, gens *generations, opts dump.Options, sig unix.Signal, why slurmWhy) error {
	s.logf("%s: %s: checkpointing the job and ending it", unix.SignalName(sig), why)
	start := time.Now()
	sv.mu.Lock()
	st, err := p.checkpoint(context.Background(), opts, true)
	sv.mu.Unlock()
	if err == nil {
		s.logf("generation %d written to %s in %v (frozen %v); the job ended", st.Generation, st.Context,
			time.Since(start).Round(time.Millisecond), st.frozen().Round(time.Millisecond))
	} else if !errors.Is(err, errEndedAtCheckpoint) {
		select {
		case <-p.ended:
			s.logf("the program ended meanwhile")
			return sv.exit(s.o, gens)
		default:
		}
		s.logf("the checkpoint failed: a restart takes the newest complete generation, if any")
		s.passOn(sv, unix.SIGTERM)
	}
	var requeueErr error
	if why.requeue {
		requeueErr = s.requeue(sv)
	}
	// The job's processes go before cr_run does: cr_run is their
	// subreaper, and after it nothing would keep them in the job.
	// The dump, their tracer, may have reaped the job's child already
	// when it ended it (ptrace(2): a tracer waits for its tracees).
	if _, werr := sv.wait(); werr != nil && !errors.Is(werr, unix.ECHILD) && !s.quiet {
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName, werr)
	}
	sv.endOrphans()
	if requeueErr != nil {
		return report(requeueErr, exitFailure, s.quiet)
	}
	if why.cause == causeUnknown {
		return report(fmt.Errorf("whether Slurm requeues the job is not known: its checkpoints stay in %s", s.dir), exitFailure, s.quiet)
	}
	return nil
}

// endOrphans ends the job's processes that left its tree, orphaned below
// cr_run, their subreaper: they are in no checkpoint, and once cr_run
// exits they would be reparented out of the job (to init, beyond what
// proctrack/linuxproc tracks). Each is killed and reaped; its own
// children come up to cr_run in turn.
func (sv *supervisor) endOrphans() {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for range 1 << 10 {
		kids, _ := proc.Children(os.Getpid())
		if len(kids) == 0 {
			return
		}
		for _, pid := range kids {
			// cr_run's child, not reaped yet: the PID is still its.
			unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	}
}

// requeue asks Slurm to requeue the job: a job that ends by itself is
// COMPLETED, not requeued, even when preempted (docs/SLURM.md). Slurm
// refuses a second requeue of a job it is requeueing already, which is
// then no failure.
func (s *slurmRun) requeue(sv *supervisor) error {
	_, err := s.scontrol(sv, "requeue", s.id)
	if err == nil {
		s.logf("requeued")
		return nil
	}
	if job, serr := s.show(sv); serr == nil && s.requeueing(job) {
		return nil
	}
	return fmt.Errorf("the job is checkpointed in %s but could not be requeued: %w", s.dir, err)
}

// slurmCause is why Slurm signalled the job.
type slurmCause int

const (
	causeManual    slurmCause = iota // the --signal sent by hand: scancel --signal
	causePreempt                     // the --signal at preemption
	causeTimeLimit                   // the --signal before the time limit, or its SIGTERM
	causeRequeue                     // Slurm is requeueing the job: preemption's end, scontrol requeue
	causeCancel                      // SIGTERM of scancel
	causeUnknown                     // scontrol did not answer
)

// slurmWhy is what cr_run made of a signal, and what it does about it.
type slurmWhy struct {
	cause   slurmCause
	detail  string
	requeue bool // cr_run asks for the requeue, Slurm does not
}

func (w slurmWhy) String() string { return w.detail }

// why asks Slurm why the job got sig (docs/SLURM.md, "Why the job is
// being signalled"): the job's Restarts count is already one above the
// run's when Slurm is requeueing it; PreemptTime is set once it is picked
// for preemption; its end time is near at the time-limit warning.
func (s *slurmRun) why(sv *supervisor, sig unix.Signal) slurmWhy {
	job, err := s.show(sv)
	if err != nil {
		if sig == unix.SIGTERM {
			// Saved and ended: if Slurm requeues the job it restarts from
			// there, if not the checkpoint is there for a resubmission.
			return slurmWhy{causeUnknown, fmt.Sprintf("the cause is not known (%v)", err), false}
		}
		return slurmWhy{causeManual, fmt.Sprintf("the cause is not known (%v): checkpointing, the job goes on", err), false}
	}
	switch {
	case s.requeueing(job):
		return slurmWhy{causeRequeue, fmt.Sprintf("Slurm is requeueing the job (Restarts=%s)", job["Restarts"]), false}
	case job["PreemptTime"] != "" && job["PreemptTime"] != "None":
		return slurmWhy{causePreempt, fmt.Sprintf("preemption (PreemptTime=%s)", job["PreemptTime"]), true}
	case sig == unix.SIGTERM && (job["Reason"] == "TimeLimit" || job["JobState"] == "TIMEOUT"):
		return slurmWhy{causeTimeLimit, "time limit reached", true}
	case sig != unix.SIGTERM && s.endNear(job):
		return slurmWhy{causeTimeLimit, fmt.Sprintf("time limit near (EndTime=%s)", job["EndTime"]), true}
	case sig != unix.SIGTERM:
		return slurmWhy{causeManual, "a checkpoint asked for by hand: checkpointing, the job goes on", false}
	}
	return slurmWhy{causeCancel, "the job is cancelled", false}
}

// requeueing tells whether Slurm counts a restart of the job beyond this
// run's: it does so as soon as it requeues the job.
func (s *slurmRun) requeueing(job map[string]string) bool {
	n, err := strconv.Atoi(job["Restarts"])
	return err == nil && n > s.run
}

// endNear tells whether the job's end time is within the --signal's
// warning (plus slurmSignalSlack) from now.
func (s *slurmRun) endNear(job map[string]string) bool {
	if job["TimeLimit"] == "" || job["TimeLimit"] == "UNLIMITED" {
		return false
	}
	// scontrol prints times in the local time zone (slurm_make_time_str).
	end, err := time.ParseInLocation("2006-01-02T15:04:05", job["EndTime"], time.Local)
	return err == nil && time.Until(end) <= s.opts.warning+slurmSignalSlack
}

// show is `scontrol -o show job ID` as a map: JobState=RUNNING is
// job["JobState"] = "RUNNING".
func (s *slurmRun) show(sv *supervisor) (map[string]string, error) {
	out, err := s.scontrol(sv, "-o", "show", "job", s.id)
	if err != nil {
		return nil, err
	}
	job := map[string]string{}
	for _, f := range strings.Fields(out) {
		if k, v, ok := strings.Cut(f, "="); ok {
			job[k] = v
		}
	}
	return job, nil
}

// scontrol runs scontrol with args, trying again twice on a failure
// (slurmctld may be busy with this very job). It holds sv.mu: cr_run,
// the job's subreaper, reaps its other children, and must not take
// scontrol's exit from os/exec.
func (s *slurmRun) scontrol(sv *supervisor, args ...string) (string, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	var err error
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), slurmCommandTimeout)
		var out, stderr strings.Builder
		cmd := exec.CommandContext(ctx, "scontrol", args...)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err = cmd.Run()
		cancel()
		if err == nil {
			return strings.TrimSpace(out.String()), nil
		}
		err = fmt.Errorf("scontrol %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return "", err
}
