//go:build linux

package test

// What gocr's Slurm integration relies on, shown on a real one-node cluster
// (slurm_harness_test.go) with a batch job that only records the signals it
// gets (slurmjobs/signal_recorder.sh): preemption warns the batch process
// with the job's --signal, then SIGTERMs it and requeues the job, which
// starts again with SLURM_RESTART_COUNT=1 and its output appended;
// `scontrol requeue` SIGTERMs and requeues; `scancel --signal=USR1 --batch`
// signals the batch process and lets the job run on. The timings each step
// took are logged (docs/SLURM.md has those measured here).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jobEvent is one line of signal_recorder.sh's output.
type jobEvent struct {
	name    string // start, usr1, cont, term or requeue
	restart int    // SLURM_RESTART_COUNT of the run that saw it
	pid     int
	at      time.Time
	// What `scontrol show job` said then: PreemptTime ("None" unless the
	// job was picked for preemption) and Restarts (one more than restart
	// once the job is being requeued).
	preempt  string
	restarts int
}

func (e jobEvent) String() string {
	return fmt.Sprintf("%s restart=%d pid=%d preempt=%s restarts=%d", e.name, e.restart, e.pid, e.preempt, e.restarts)
}

// readJobEvents parses the recorder's lines in path; Slurm's own lines in
// the same output (e.g. "slurmstepd: error: *** JOB 1 ... CANCELLED ...")
// are skipped.
func readJobEvents(path string) ([]jobEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var events []jobEvent
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || !strings.HasPrefix(f[1], "restart=") {
			continue
		}
		kv := map[string]string{}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = v
		}
		e := jobEvent{name: f[0], preempt: kv["preempt"]}
		var err1, err2, err3 error
		e.restart, err1 = strconv.Atoi(kv["restart"])
		e.pid, err2 = strconv.Atoi(kv["pid"])
		// "?": scontrol did not answer in time (the recorder's stderr
		// says why): -1, which the checks of what Slurm shows at each
		// signal take as unknown (what they check is Slurm's behaviour,
		// seen in every run where scontrol answers).
		e.restarts = -1
		if kv["restarts"] != "?" {
			e.restarts, err3 = strconv.Atoi(kv["restarts"])
		}
		secs, err4 := strconv.ParseFloat(strings.ReplaceAll(kv["t"], ",", "."), 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("%s: bad line %q: %w", path, line, err)
		}
		e.at = time.Unix(0, int64(secs*1e9))
		events = append(events, e)
	}
	return events, nil
}

// recorderJob is a submitted signal_recorder.sh and its output file.
type recorderJob struct {
	c   *slurmCluster
	id  string
	out string
}

// submitRecorder submits signal_recorder.sh to partition low, requeueable,
// asking for SIGUSR1 to its batch process (B:) 60 s before its end, with its
// output appended across runs: the options a cr_run job script carries.
// env is added to the job's environment.
func submitRecorder(t *testing.T, c *slurmCluster, name string, env ...string) *recorderJob {
	t.Helper()
	j := &recorderJob{c: c, out: c.path(name + ".out")}
	j.id = c.sbatch(t, "--job-name="+name, "--partition=low", "--requeue", "--signal=B:USR1@60",
		"--open-mode=append", "--output="+j.out, "--export="+strings.Join(append([]string{"ALL"}, env...), ","),
		filepath.Join(moduleRoot, "test", "slurmjobs", "signal_recorder.sh"))
	t.Cleanup(func() { c.cancelAll(t) })
	return j
}

// preempt submits a job to partition high that needs the whole node, so
// that it preempts whatever runs in low, and returns its ID.
func preempt(t *testing.T, c *slurmCluster) string {
	t.Helper()
	return c.sbatch(t, "--job-name=high", "--partition=high", "--exclusive",
		"--output="+c.path("high.out"), "--wrap=exec sleep 3600")
}

// wait waits for the n-th (from 1) event name of run restart and returns it.
func (j *recorderJob) wait(t *testing.T, name string, restart, n int, timeout time.Duration) jobEvent {
	t.Helper()
	var found jobEvent
	what := fmt.Sprintf("job %s event %q #%d of run %d", j.id, name, n, restart)
	j.c.waitFor(t, timeout, what, func() (bool, string) {
		events, err := readJobEvents(j.out)
		if err != nil {
			return false, err.Error()
		}
		seen := 0
		for _, e := range events {
			if e.name == name && e.restart == restart {
				if seen++; seen == n {
					found = e
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("events %v", events)
	})
	return found
}

// events is every recorded event, as name/restart.
func (j *recorderJob) events(t *testing.T) []string {
	t.Helper()
	events, err := readJobEvents(j.out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range events {
		names = append(names, fmt.Sprintf("%s/%d", e.name, e.restart))
	}
	return names
}

// TestSlurmCluster: what Slurm itself does that cr_run relies on
// (docs/SLURM.md). The cr_run tests go through the same paths end to end,
// so only the quick check runs in `make test`; the requeue and preemption
// timings, a minute in all, run under `make soak`.
func TestSlurmCluster(t *testing.T) {
	c := startSlurm(t)
	// A requeued job becomes eligible cred_expire+1 s after its requeue;
	// then the scheduler (sched_interval=2) starts it.
	restartTimeout := (slurmCredExpire+15)*time.Second + slurmStartTimeout
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

	t.Run("ScancelSignalBatchLetsJobRun", func(t *testing.T) {
		j := submitRecorder(t, c, "manual")
		c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
		start := j.wait(t, "start", 0, 1, slurmStartTimeout)
		// The harness's check that a stopped cluster left no process
		// behind must see a running job's batch script.
		if _, ok := c.clusterProcesses()[start.pid]; !ok {
			t.Errorf("the harness does not count job %s's batch script (pid %d) among the cluster's processes: %v", j.id, start.pid, c.clusterProcesses())
		}
		for n := 1; n <= 2; n++ {
			sent := time.Now()
			c.scancel(t, "--signal=USR1", "--batch", j.id)
			e := j.wait(t, "usr1", 0, n, slurmStartTimeout)
			t.Logf("scancel --signal=USR1 --batch: SIGUSR1 in the batch script %v later", ms(e.at.Sub(sent)))
			// How a program tells this from a preemption warning.
			if e.preempt != "None" || e.restarts != 0 {
				t.Errorf("at a manual signal the job shows PreemptTime=%s Restarts=%d, want None and 0", e.preempt, e.restarts)
			}
		}
		if job := c.waitJob(t, j.id, "RUNNING", 0, 0); job["Restarts"] != "0" {
			t.Errorf("job %s restarted after scancel --signal: Restarts=%s", j.id, job["Restarts"])
		}
		if got, want := strings.Join(j.events(t), " "), "start/0 usr1/0 usr1/0"; got != want {
			t.Errorf("events %q, want %q: the batch script must get SIGUSR1 and run on", got, want)
		}
	})

	t.Run("ScontrolRequeueTermsAndRestarts", func(t *testing.T) {
		soakOnly(t)
		j := submitRecorder(t, c, "requeue")
		c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
		first := j.wait(t, "start", 0, 1, slurmStartTimeout)
		sent := time.Now()
		c.scontrol(t, "requeue", j.id)
		term := j.wait(t, "term", 0, 1, slurmStartTimeout)
		c.waitJob(t, j.id, "PENDING", 1, slurmStartTimeout)
		requeued := time.Now()
		second := j.wait(t, "start", 1, 1, restartTimeout)
		t.Logf("scontrol requeue: SIGTERM %v later, restarted %v after the requeue (eligible after cred_expire=%ds+1s), pid %d then %d",
			ms(term.at.Sub(sent)), ms(second.at.Sub(requeued)), slurmCredExpire, first.pid, second.pid)
		// At the SIGTERM the job already counts the restart: how a
		// program tells a requeue from a cancellation.
		if term.restarts != 1 && term.restarts != -1 {
			t.Errorf("at the requeue's SIGTERM the job shows Restarts=%d, want 1", term.restarts)
		}
		// No --signal warning on an admin's requeue: SIGTERM is all the job
		// gets before SIGKILL KillWait later.
		if got, want := strings.Join(j.events(t), " "), "start/0 term/0 start/1"; got != want {
			t.Errorf("events %q, want %q", got, want)
		}
	})

	t.Run("PreemptionSignalsTermsAndRequeues", func(t *testing.T) {
		soakOnly(t)
		low := submitRecorder(t, c, "low")
		c.waitJob(t, low.id, "RUNNING", 0, slurmStartTimeout)
		first := low.wait(t, "start", 0, 1, slurmStartTimeout)

		submitted := time.Now()
		high := preempt(t, c)
		usr1 := low.wait(t, "usr1", 0, 1, slurmStartTimeout)
		// The end-of-grace SIGTERM: slurmctld looks for jobs past their
		// end time every slurmTimeLimitPeriod.
		termTimeout := slurmGraceTime*time.Second + slurmTimeLimitPeriod + slurmStartTimeout
		term := low.wait(t, "term", 0, 1, termTimeout)
		c.waitJob(t, low.id, "PENDING", 1, slurmStartTimeout)
		requeued := time.Now()
		c.waitJob(t, high, "RUNNING", 0, slurmStartTimeout)
		highRunning := time.Now()

		c.scancel(t, high)
		highCancelled := time.Now()
		second := low.wait(t, "start", 1, 1, restartTimeout)
		job := c.waitJob(t, low.id, "RUNNING", 1, slurmStartTimeout)

		t.Logf("preemption: SIGUSR1 in the batch script %v after the high job's submission; SIGTERM %v after SIGUSR1 (GraceTime=%ds); requeued (PENDING, Restarts=1) %v after SIGTERM; high job running %v after submission",
			ms(usr1.at.Sub(submitted)), ms(term.at.Sub(usr1.at)), slurmGraceTime, ms(requeued.Sub(term.at)), ms(highRunning.Sub(submitted)))
		t.Logf("restart: SLURM_RESTART_COUNT=1 run started %v after the high job was cancelled and %v after the requeue (EligibleTime %s); pid %d then %d",
			ms(second.at.Sub(highCancelled)), ms(second.at.Sub(requeued)), job["EligibleTime"], first.pid, second.pid)

		if grace := slurmGraceTime * time.Second; term.at.Sub(usr1.at) < grace-time.Second {
			t.Errorf("SIGTERM %v after SIGUSR1, before the partition's GraceTime %v", term.at.Sub(usr1.at), grace)
		}
		// How a program tells a preemption warning from a manual signal,
		// and a preemption's SIGTERM from a cancellation.
		if usr1.preempt == "None" || usr1.restarts != 0 {
			t.Errorf("at the preemption warning the job shows PreemptTime=%s Restarts=%d, want a time and 0", usr1.preempt, usr1.restarts)
		}
		if term.restarts != 1 && term.restarts != -1 {
			t.Errorf("at the preemption's SIGTERM the job shows Restarts=%d, want 1", term.restarts)
		}
		// One output file, both runs: --open-mode=append.
		if got, want := strings.Join(low.events(t), " "), "start/0 usr1/0 term/0 start/1"; got != want {
			t.Errorf("events %q, want %q: SIGUSR1 at preemption, SIGTERM at the end of the grace time, then the requeued run", got, want)
		}
	})

	// A job that has saved its state at the warning need not wait for the
	// grace time to end: it requeues itself, and the preemptor starts at
	// once. (Ending on its own instead would complete the job: Slurm
	// requeues a preempted job only when it ends it.)
	t.Run("PreemptedJobRequeuesItself", func(t *testing.T) {
		soakOnly(t)
		low := submitRecorder(t, c, "selfrequeue", "SIGNAL_RECORDER_ON_USR1=requeue")
		c.waitJob(t, low.id, "RUNNING", 0, slurmStartTimeout)
		low.wait(t, "start", 0, 1, slurmStartTimeout)

		submitted := time.Now()
		high := preempt(t, c)
		usr1 := low.wait(t, "usr1", 0, 1, slurmStartTimeout)
		term := low.wait(t, "term", 0, 1, slurmStartTimeout)
		c.waitJob(t, high, "RUNNING", 0, slurmStartTimeout)
		highRunning := time.Now()
		c.waitJob(t, low.id, "PENDING", 1, slurmStartTimeout)
		t.Logf("self-requeue at the preemption warning: SIGTERM %v after SIGUSR1; high job running %v after submission (GraceTime=%ds)",
			ms(term.at.Sub(usr1.at)), ms(highRunning.Sub(submitted)), slurmGraceTime)
		if term.restarts != 1 && term.restarts != -1 {
			t.Errorf("at the self-requeue's SIGTERM the job shows Restarts=%d, want 1", term.restarts)
		}
		c.scancel(t, high)
		low.wait(t, "start", 1, 1, restartTimeout)
		if got, want := strings.Join(low.events(t), " "), "start/0 usr1/0 requeue/0 term/0 start/1"; got != want {
			t.Errorf("events %q, want %q", got, want)
		}
	})
}

// Where a job's processes are tracked, and which of them a requeue's
// SIGTERM reaches, under each ProctrackType: what decides where cr_run's
// restored processes must live and who can checkpoint at a SIGTERM.
func TestSlurmProctrack(t *testing.T) {
	for _, tc := range []struct {
		proctrack string
		// childTerm: whether a child of the batch script gets the SIGTERM.
		childTerm bool
	}{
		{"linuxproc", true},
		{"cgroup", false},
	} {
		t.Run(tc.proctrack, func(t *testing.T) {
			c := startSlurmWith(t, slurmOptions{proctrack: tc.proctrack})
			j := submitRecorder(t, c, "tracked", "SIGNAL_RECORDER_CHILD=1")
			c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
			batch := j.wait(t, "start", 0, 1, slurmStartTimeout)
			child := j.wait(t, "child-start", 0, 1, slurmStartTimeout)
			for _, e := range []jobEvent{batch, child} {
				checkTracked(t, c, j.id, e.pid)
			}
			c.scontrol(t, "requeue", j.id)
			j.wait(t, "term", 0, 1, slurmStartTimeout)
			// Every process of the job is gone once it is pending again.
			c.waitJob(t, j.id, "PENDING", 1, slurmStartTimeout)
			gotChildTerm := false
			for _, e := range j.events(t) {
				gotChildTerm = gotChildTerm || e == "child-term/0"
			}
			if gotChildTerm != tc.childTerm {
				t.Errorf("with proctrack/%s the batch script's child got SIGTERM: %v, want %v (events %v)", tc.proctrack, gotChildTerm, tc.childTerm, j.events(t))
			}
		})
	}
}

// checkTracked fails t unless pid is one of job id's processes as the
// cluster's proctrack sees them: a descendant of a slurmstepd for
// linuxproc, in the freezer cgroup of the job's batch step for cgroup.
func checkTracked(t *testing.T, c *slurmCluster, id string, pid int) {
	t.Helper()
	switch c.proctrack {
	case "linuxproc":
		var chain []string
		for p := pid; p > 1; {
			e, err := readProcEntry(p)
			if err != nil {
				t.Fatalf("pid %d: %v", p, err)
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
			name := strings.TrimSpace(string(comm))
			chain = append(chain, fmt.Sprintf("%d %s", p, name))
			if name == "slurmstepd" {
				return
			}
			p = e.ppid
		}
		t.Errorf("pid %d of job %s is not a descendant of a slurmstepd: %v", pid, id, chain)
	case "cgroup":
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(":freezer:/slurm_%s/uid_%d/job_%s/step_batch\n", c.node, os.Geteuid(), id)
		if !strings.Contains(string(data), want) {
			t.Errorf("pid %d of job %s is not in its batch step's freezer cgroup (%q):\n%s", pid, id, want, data)
		}
	}
}
