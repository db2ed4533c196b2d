//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kind is one kind of trial: a job kind, and what gocr does to it.
type kind struct {
	job string // single, threads or tree (job.c)
	op  string // dump, dump --leave-running, or restore
}

func (k kind) String() string { return k.job + " " + k.op }

const (
	opDump         = "dump"
	opDumpLeave    = "dump --leave-running"
	opRestore      = "restore"
	imagesDirName  = "images"
	inventoryImage = "inventory.img"
)

// The outcomes of a trial. Every one but lost keeps the job.
const (
	dumpComplete     = "dump complete, restore works"
	dumpCompleteLeft = "dump complete, job left partly ended, restore works"
	runsUntouched    = "job runs on untouched"
	restoreComplete  = "restore complete, job runs"
	restoreNothing   = "nothing left, images restore afterwards"
	pidTaken         = "inconclusive: a PID was taken by another process"
	lost             = "LOST"
)

// harness is what every trial shares.
type harness struct {
	gocr, jobBin, work string
}

// gocrRun is one gocr run, killed at a given instant or not.
type gocrRun struct {
	killed  bool          // SIGKILL ended it (it had not exited first)
	sentAt  time.Duration // when the SIGKILL was sent, from gocr's start; 0 if not
	code    int           // its exit code when it was not killed
	stderr  string
	elapsed time.Duration
}

// runGocr runs gocr with args and SIGKILLs it after kill, unless kill is
// negative or it exits first.
func (h *harness) runGocr(kill time.Duration, args ...string) (gocrRun, error) {
	cmd := exec.Command(h.gocr, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return gocrRun{}, err
	}
	sent := make(chan time.Duration, 1)
	if kill >= 0 {
		t := time.AfterFunc(kill, func() {
			sent <- time.Since(start)
			cmd.Process.Signal(syscall.SIGKILL)
		})
		defer t.Stop()
	}
	err := cmd.Wait()
	r := gocrRun{elapsed: time.Since(start), stderr: stderr.String()}
	select {
	case r.sentAt = <-sent:
	default:
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		} else {
			r.code = ee.ExitCode()
		}
	default:
		return r, err
	}
	return r, nil
}

// trial is one trial's setting and what it found.
type trial struct {
	n       int
	k       kind
	dir     string // the trial's own directory
	j       *job
	delay   time.Duration
	run     gocrRun
	outcome string
	notes   []string
	last    time.Time // when the last stage ended (-v)
}

// images is the trial's image directory.
func (t *trial) images() string { return filepath.Join(t.dir, imagesDirName) }

func (t *trial) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// verbose makes every trial note how long its stages took.
var verbose bool

// stage notes, with -v, that a stage ended and how long it took since
// the last one.
func (t *trial) stage(name string) {
	if verbose {
		now := time.Now()
		if !t.last.IsZero() {
			t.note("%s %v", name, now.Sub(t.last).Round(time.Millisecond))
		}
		t.last = now
	}
}

// dumpTrial: a job runs, gocr dumps it and is killed at t.delay. Either
// the dump is complete (the images restore, and the job goes on from its
// checkpoint) or the job runs on untouched.
func (h *harness) dumpTrial(t *trial) error {
	var err error
	t.stage("")
	if t.j, err = startJob(h.jobBin, t.k.job, filepath.Join(t.dir, "logs")); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	t.stage("start")
	args := []string{"dump", "-t", strconv.Itoa(t.j.pids[0]), "-D", t.images()}
	if t.k.op == opDumpLeave {
		args = append(args, "--leave-running")
	}
	if t.run, err = h.runGocr(t.delay, args...); err != nil {
		return err
	}
	t.stage("gocr")
	if !t.run.killed && t.run.code != 0 {
		t.note("gocr failed by itself (exit %d): %s", t.run.code, strings.TrimSpace(t.run.stderr))
	}
	if _, err := os.Stat(filepath.Join(t.images(), inventoryImage)); err != nil {
		t.outcome = lost
		if err := t.j.checkRuns(); err != nil {
			return fmt.Errorf("no complete dump, and the job does not run on untouched: %w", err)
		}
		t.outcome = runsUntouched
		return t.j.kill()
	}
	t.outcome = lost
	alive := t.j.alive()
	switch {
	case t.k.op == opDumpLeave || len(alive) == len(t.j.pids):
		// The job was left running (by --leave-running, or by gocr
		// dying before it could end the job): it must run on as ever.
		if err := t.j.checkRuns(); err != nil {
			return fmt.Errorf("dump complete, but the job left running does not run on untouched: %w", err)
		}
		t.outcome = dumpComplete
	case len(alive) > 0:
		t.outcome = dumpCompleteLeft
	default:
		t.outcome = dumpComplete
	}
	t.stage("check")
	if err := t.j.kill(); err != nil {
		return err
	}
	t.stage("kill")
	if err := h.restoreAndCheck(t); err != nil {
		t.outcome = lost
		return fmt.Errorf("dump complete, but: %w", err)
	}
	return nil
}

// restoreAndCheck restores the trial's images, detached, and checks the
// job goes on from its checkpoint, then ends it.
func (h *harness) restoreAndCheck(t *trial) error {
	r, err := h.runGocr(-1, "restore", "-D", t.images(), "-d")
	if err != nil {
		return err
	}
	t.stage("restore")
	if r.code != 0 {
		if strings.Contains(r.stderr, "in use") {
			t.outcome = pidTaken
			t.note("restore: %s", strings.TrimSpace(r.stderr))
			return nil
		}
		return fmt.Errorf("restore failed (exit %d): %s", r.code, strings.TrimSpace(r.stderr))
	}
	if err := t.j.checkRuns(); err != nil {
		return fmt.Errorf("restored job: %w", err)
	}
	t.stage("check")
	defer t.stage("kill")
	return t.j.kill()
}

// restoreTrial: a job is dumped (complete), then gocr restores it and is
// killed at t.delay. Either the restore completed and the job runs, or no
// process of the restore is left and the images restore afterwards.
func (h *harness) restoreTrial(t *trial) error {
	var err error
	if t.j, err = startJob(h.jobBin, t.k.job, filepath.Join(t.dir, "logs")); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	r, err := h.runGocr(-1, "dump", "-t", strconv.Itoa(t.j.pids[0]), "-D", t.images())
	if err != nil || r.code != 0 {
		return fmt.Errorf("set up: dump failed (%v): %s", err, r.stderr)
	}
	if err := t.j.waitGone(); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if t.run, err = h.runGocr(t.delay, "restore", "-D", t.images(), "-d"); err != nil {
		return err
	}
	t.outcome = lost
	if !t.run.killed {
		if t.run.code != 0 {
			if strings.Contains(t.run.stderr, "in use") {
				t.outcome = pidTaken
				t.note("restore: %s", strings.TrimSpace(t.run.stderr))
				return t.j.kill()
			}
			return fmt.Errorf("restore failed by itself (exit %d): %s", t.run.code, strings.TrimSpace(t.run.stderr))
		}
		if err := t.j.checkRuns(); err != nil {
			return fmt.Errorf("restore exited 0, but: %w", err)
		}
		t.outcome = restoreComplete
		return t.j.kill()
	}
	// Killed: wait until the restore's processes have ended themselves,
	// every PID of the job free again and no process gocr created left,
	// or, if gocr had released them, all run.
	deadline := time.Now().Add(settle)
	for {
		taken := t.j.taken()
		left := leftovers()
		if len(taken) == 0 && len(left) == 0 {
			t.outcome = restoreNothing
			break
		}
		if len(t.j.alive()) == len(t.j.pids) && t.j.untouched() == "" && t.j.growing(200*time.Millisecond) {
			if err := t.j.checkRuns(); err == nil {
				t.outcome = restoreComplete
				return t.j.kill()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gocr killed mid-restore left, after %v, %d of the job's %d PIDs taken (%s) and processes %s",
				settle, len(taken), len(t.j.pids), describe(taken), describe(left))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.restoreAndCheck(t); err != nil {
		t.outcome = lost
		return fmt.Errorf("nothing left by the killed restore, but the images do not restore: %w", err)
	}
	return nil
}

// keepEvidence moves what a lost trial leaves into an evidence directory
// and returns its path: the trial's directory (images, logs), gocr's
// stderr, the job's processes as /proc shows them.
func (h *harness) keepEvidence(t *trial, seed uint64, why error) string {
	dir := filepath.Join(h.work, fmt.Sprintf("lost-seed%d-trial%d", seed, t.n))
	os.RemoveAll(dir)
	os.Rename(t.dir, dir)
	report := fmt.Sprintf("trial %d (%v), seed %d, gocr killed after %v\nwhy: %v\ngocr: killed=%v exit=%d after %v\n--- gocr stderr\n%s\n",
		t.n, t.k, seed, t.delay, why, t.run.killed, t.run.code, t.run.elapsed, t.run.stderr)
	if t.j != nil {
		report += "--- the job's processes\n" + t.j.snapshot()
	}
	os.WriteFile(filepath.Join(dir, "report.txt"), []byte(report), 0o600)
	return dir
}
