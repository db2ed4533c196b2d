//go:build linux

package test

// cr_run --slurm on a real one-node cluster (slurm_harness_test.go): a batch
// job (slurmjobs/cr_run_job.sh running slurmjobs/hashcount.c, whose state
// is only in its memory) is preempted, requeued by `scontrol requeue` and
// checkpointed by hand with `scancel --signal`; each time it is
// checkpointed into its directory, and when it runs again it goes on from
// the checkpoint: its output, every run appended to one file, holds every
// step exactly once and the hash of them all. The restarted program is one
// of the new job's processes as Slurm tracks them, and writes to the new
// run's output file. docs/SLURM.md has the timings logged here.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
)

var (
	hashcountOnce sync.Once
	hashcountPath string
	hashcountErr  error
)

// hashcountBinary compiles slurmjobs/hashcount.c once per test binary run.
func hashcountBinary(t *testing.T) string {
	t.Helper()
	hashcountOnce.Do(func() {
		hashcountPath = filepath.Join(binDir, "hashcount")
		src := filepath.Join(moduleRoot, "test", "slurmjobs", "hashcount.c")
		if b, err := exec.Command("gcc", "-O1", "-g", "-Wall", "-Werror", "-o", hashcountPath, src).CombinedOutput(); err != nil {
			hashcountErr = fmt.Errorf("compile %s: %w\n%s", src, err, b)
		}
	})
	if hashcountErr != nil {
		t.Fatal(hashcountErr)
	}
	return hashcountPath
}

// hashcountHash is the hash hashcount writes after step n.
func hashcountHash(n int) string {
	h := uint64(0xcbf29ce484222325)
	for i := 1; i <= n; i++ {
		for b := 0; b < 8; b++ {
			h ^= uint64(i) >> (8 * b) & 0xff
			h *= 0x100000001b3
		}
	}
	return fmt.Sprintf("%016x", h)
}

// crRunJob is a submitted cr_run_job.sh running hashcount.
type crRunJob struct {
	c     *slurmCluster
	id    string
	out   string // its output file, every run appended
	dir   string // its CHECKPOINT_DIR
	steps int
	tag   string // on hashcount's command line
}

// crRunSpec is a hashcount job under cr_run --slurm.
type crRunSpec struct {
	name          string
	steps, stepMs int
	ignoreTerm    bool     // hashcount ignores SIGTERM
	options       []string // more options of cr_run
	sbatch        []string // more options of sbatch
}

// submitCrRun submits the job to partition low.
func submitCrRun(t *testing.T, c *slurmCluster, spec crRunSpec) *crRunJob {
	t.Helper()
	j := &crRunJob{c: c, out: c.path(spec.name + ".out"), dir: c.path("checkpoint-" + spec.name), steps: spec.steps,
		tag: spec.name + "-" + randomHex(t, 4)}
	args := []string{hashcountBinary(t), strconv.Itoa(spec.steps), strconv.Itoa(spec.stepMs), j.tag}
	if spec.ignoreTerm {
		args = append(args, "ignore-term")
	}
	env := []string{"ALL", "CR_RUN=" + blcrTool(t, "cr_run"), "CHECKPOINT_DIR=" + j.dir, "CR_RUN_OPTIONS=" + strings.Join(spec.options, " ")}
	opts := append([]string{"--job-name=" + spec.name, "--partition=low", "--output=" + j.out, "--export=" + strings.Join(env, ",")}, spec.sbatch...)
	opts = append(opts, filepath.Join(moduleRoot, "test", "slurmjobs", "cr_run_job.sh"))
	j.id = c.sbatch(t, append(opts, args...)...)
	t.Cleanup(func() { c.cancelAll(t) })
	return j
}

// output is the job's output file: hashcount's step numbers in order, its
// done line's count and hash ("" before it), and every other line.
func (j *crRunJob) output(t *testing.T) (steps []int, done, hash string, other []string) {
	t.Helper()
	data, err := os.ReadFile(j.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "step" && f[2] == "hash":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("%s: bad line %q", j.out, line)
			}
			steps = append(steps, n)
		case len(f) == 4 && f[0] == "done" && f[2] == "hash":
			done, hash = f[1], f[3]
		case line != "":
			other = append(other, line)
		}
	}
	return steps, done, hash, other
}

// lastStep is the last step written, 0 before the first.
func (j *crRunJob) lastStep(t *testing.T) int {
	t.Helper()
	steps, _, _, _ := j.output(t)
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1]
}

// waitStep waits until the job has written step n; a job that ended
// before fails t at once, with its output.
func (j *crRunJob) waitStep(t *testing.T, n int) {
	t.Helper()
	j.c.waitFor(t, slurmStartTimeout+time.Duration(j.steps)*100*time.Millisecond, fmt.Sprintf("job %s step %d", j.id, n), func() (bool, string) {
		if last := j.lastStep(t); last >= n {
			return true, ""
		}
		job, err := j.c.job(j.id)
		if err == nil && slices.Contains([]string{"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, job["JobState"]) {
			_, _, _, other := j.output(t)
			t.Fatalf("job %s ended (%s, ExitCode=%s) before step %d; its output but for its steps:\n%s",
				j.id, job["JobState"], job["ExitCode"], n, strings.Join(other, "\n"))
		}
		return false, fmt.Sprintf("last step %d, job %v", j.lastStep(t), job["JobState"])
	})
}

// generations lists the numbers of the job's generations.
func (j *crRunJob) generations(t *testing.T) []int {
	t.Helper()
	gens, err := contextfile.Generations(j.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ns []int
	for _, g := range gens {
		ns = append(ns, g.N)
	}
	return ns
}

// program waits for the job's hashcount process and returns its PID here.
func (j *crRunJob) program(t *testing.T) int {
	t.Helper()
	pid := 0
	j.c.waitFor(t, slurmStartTimeout, "hashcount "+j.tag, func() (bool, string) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			st, err := readProcEntry(p)
			if err == nil && st.state != "Z" && commOf(p) == "hashcount" && slices.Contains(strings.Split(string(cmdline), "\x00"), j.tag) {
				pid = p
				return true, ""
			}
		}
		return false, "none"
	})
	return pid
}

// checkProgram fails t unless the job's program (pid) is one of the job's
// processes for Slurm and its proctrack, a descendant of the job's cr_run,
// and writes to cr_run's own stdout, the output file slurmd opened for
// this run: the same open file (kcmp(2), KCMP_FILE), not one reopened by
// its path.
func (j *crRunJob) checkProgram(t *testing.T, pid int) {
	t.Helper()
	crRun := j.checkJobProcess(t, pid)
	if same, err := sameOpenFile(crRun, pid, 1); err != nil || !same {
		t.Errorf("the program's stdout (pid %d) is not cr_run's (pid %d), the output file of this run: same %v, %v", pid, crRun, same, err)
	}
}

// checkJobProcess fails t unless pid is one of the job's processes for
// Slurm and its proctrack, and a descendant of the job's cr_run, whose
// PID it returns.
func (j *crRunJob) checkJobProcess(t *testing.T, pid int) int {
	t.Helper()
	checkTracked(t, j.c, j.id, pid)
	listed := j.c.scontrol(t, "listpids", j.id, j.c.node)
	found := false
	for _, line := range strings.Split(listed, "\n") {
		f := strings.Fields(line)
		found = found || len(f) > 0 && f[0] == strconv.Itoa(pid)
	}
	if !found {
		t.Errorf("scontrol listpids %s does not list the program, pid %d:\n%s", j.id, pid, listed)
	}
	crRun := 0
	for p := pid; p > 1 && crRun == 0; {
		e, err := readProcEntry(p)
		if err != nil {
			t.Fatalf("pid %d: %v", p, err)
		}
		if commOf(e.ppid) == "cr_run" {
			crRun = e.ppid
		}
		p = e.ppid
	}
	if crRun == 0 {
		t.Fatalf("the program, pid %d, is not a descendant of cr_run", pid)
	}
	return crRun
}

// sameOpenFile tells whether fd of pid a and fd of pid b are the same
// open file description (kcmp(2), KCMP_FILE: 0 when equal).
func sameOpenFile(a, b, fd int) (bool, error) {
	const kcmpFile = 0 // enum kcmp_type, include/uapi/linux/kcmp.h
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpFile, uintptr(fd), uintptr(fd), 0)
	if errno != 0 {
		return false, fmt.Errorf("kcmp %d %d: %w", a, b, errno)
	}
	return r == 0, nil
}

// checkComplete waits for the job to complete after restarts restarts and
// checks its output: every step from first (1 unless the output of the
// runs before was not kept) once, in order, and the done line with the
// hash of all steps.
func (j *crRunJob) checkComplete(t *testing.T, restarts, first int) {
	t.Helper()
	j.c.waitJob(t, j.id, "COMPLETED", restarts, slurmStartTimeout+time.Duration(j.steps)*100*time.Millisecond)
	steps, done, hash, other := j.output(t)
	var want []int
	for i := first; i <= j.steps; i++ {
		want = append(want, i)
	}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %d to %d, each once", steps, first, j.steps)
	}
	if done != strconv.Itoa(j.steps) || hash != hashcountHash(j.steps) {
		t.Errorf("done %q hash %q, want %d and %s", done, hash, j.steps, hashcountHash(j.steps))
	}
	if job, _ := j.c.job(j.id); job["Restarts"] != strconv.Itoa(restarts) || job["ExitCode"] != "0:0" {
		t.Errorf("job %s ended with Restarts=%s ExitCode=%s, want %d and 0:0", j.id, job["Restarts"], job["ExitCode"], restarts)
	}
	t.Logf("job %s output, but for its steps:\n%s", j.id, strings.Join(other, "\n"))
}

// logLine waits for a line of cr_run's in the job's output that holds
// want, after the first skip such lines, and returns it.
func (j *crRunJob) logLine(t *testing.T, want string, skip int) string {
	t.Helper()
	var found string
	j.c.waitFor(t, slurmStartTimeout, fmt.Sprintf("cr_run saying %q", want), func() (bool, string) {
		_, _, _, other := j.output(t)
		n := 0
		for _, l := range other {
			if strings.HasPrefix(l, "cr_run: ") && strings.Contains(l, want) {
				if n == skip {
					found = l
					return true, ""
				}
				n++
			}
		}
		return false, strings.Join(other, " | ")
	})
	return found
}

// The acceptance of docs/SLURM.md: the job is preempted twice by a job of
// the higher partition; each time cr_run checkpoints it at the warning,
// ends it and requeues it, and the next run restarts it from there; the
// second time its PID is taken meanwhile, so it restarts in a PID
// namespace of its own. Its output is every step once: nothing done
// before a preemption is done again. With --remove-on-success its
// checkpoints go when it completes. The second preemption (20 s) runs
// under `make soak` only: a restart into a PID namespace because the
// PID is taken is tested outside Slurm too (TestCrRestartPidns).
func TestSlurmCrRunPreemption(t *testing.T) {
	needsRoot(t)
	c := startSlurm(t)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	j := submitCrRun(t, c, crRunSpec{name: "preempted", steps: 400, stepMs: 40, options: []string{"--remove-on-success"}})
	c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
	pid := j.program(t)
	j.checkProgram(t, pid)
	restartTimeout := (slurmCredExpire+15)*time.Second + slurmStartTimeout
	rounds := 1
	if soaking() {
		rounds = 2
	}
	for round := 1; round <= rounds; round++ {
		j.waitStep(t, j.lastStep(t)+20)
		view, err := readTreeView(t, j.program(t))
		if err != nil {
			t.Fatalf("preemption %d: read what the kernel shows of the program: %v", round, err)
		}
		gensBefore := j.generations(t)
		submitted := time.Now()
		high := preempt(t, c)
		c.waitJob(t, j.id, "PENDING", round, slurmStartTimeout)
		requeued := time.Now()
		before := j.lastStep(t)
		gens := j.generations(t)
		if len(gens) == 0 || len(gensBefore) > 0 && gens[len(gens)-1] <= gensBefore[len(gensBefore)-1] {
			t.Fatalf("preemption %d: generations %v, then %v: no new one", round, gensBefore, gens)
		}
		written := j.logLine(t, "the job ended", round-1)
		c.waitJob(t, high, "RUNNING", 0, slurmStartTimeout)
		highRunning := time.Now()
		t.Logf("preemption %d: job requeued (PENDING) %v and the high job running %v after its submission, at step %d; %s",
			round, ms(requeued.Sub(submitted)), ms(highRunning.Sub(submitted)), before, written)
		// Held by another process (or already by a stranger on a busy
		// machine), the PID sends the restart into a PID namespace.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); round == 2 && errors.Is(err, os.ErrNotExist) {
			takePid(t, pid)
		}
		c.scancel(t, high)
		c.waitJob(t, j.id, "RUNNING", round, restartTimeout)
		restarted := time.Now()
		j.waitStep(t, before+1)
		t.Logf("preemption %d: restarted %v after the requeue, step %d written %v after", round, ms(restarted.Sub(requeued)), before+1, ms(time.Since(restarted)))
		prog := j.program(t)
		j.checkProgram(t, prog)
		if round == 1 {
			// Its stdout and stderr are the next run's, the job's
			// output file Slurm opened again (O_APPEND), which has
			// grown by the steps and cr_run's lines since: all
			// but their offsets is compared. (The second round
			// restarts in a PID namespace of its own.)
			checkTreeView(t, prog, view, []string{"fd/1/pos", "fd/2/pos"})
		}
		if ns := nsPids(prog); round == 2 && (len(ns) < 2 || ns[len(ns)-1] != pid) {
			t.Errorf("with its PID %d taken, the program restarted as %d with NSpid %v: want its PID in a namespace of its own", pid, prog, ns)
		}
	}
	j.checkComplete(t, rounds, 1)
	if _, err := os.Stat(j.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("with --remove-on-success the checkpoint directory is still there once the job completed: %v (generations %v)", err, j.generations(t))
	}
}

// `scancel --signal=USR1 --batch` checkpoints the job, which goes on;
// `scontrol requeue` checkpoints it at the SIGTERM, ends it, and the next
// run restarts from that checkpoint. Under proctrack/linuxproc Slurm's
// SIGTERM reaches the program too, which has to survive it (ignore-term);
// under proctrack/cgroup only cr_run gets it. The linuxproc case (25 s)
// runs under `make soak` only: the other cr_run tests run under
// proctrack/linuxproc, where Slurm's SIGTERM at a preemption reaches
// the program too.
func TestSlurmCrRunRequeue(t *testing.T) {
	needsRoot(t)
	for _, proctrack := range []string{"linuxproc", "cgroup"} {
		t.Run(proctrack, func(t *testing.T) {
			if proctrack == "linuxproc" {
				soakOnly(t)
			}
			c := startSlurmWith(t, slurmOptions{proctrack: proctrack})
			j := submitCrRun(t, c, crRunSpec{name: "requeued", steps: 250, stepMs: 30, ignoreTerm: proctrack == "linuxproc"})
			c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
			j.waitStep(t, 10)

			sent := time.Now()
			c.scancel(t, "--signal=USR1", "--batch", j.id)
			c.waitFor(t, slurmStartTimeout, "a generation", func() (bool, string) {
				return len(j.generations(t)) == 1, fmt.Sprint(j.generations(t))
			})
			t.Logf("scancel --signal=USR1 --batch: generation written %v later", time.Since(sent).Round(time.Millisecond))
			at := j.lastStep(t)
			j.waitStep(t, at+5)
			if job := c.waitJob(t, j.id, "RUNNING", 0, 0); job["Restarts"] != "0" {
				t.Fatalf("the job was requeued by a checkpoint by hand: Restarts=%s", job["Restarts"])
			}

			sent = time.Now()
			c.scontrol(t, "requeue", j.id)
			c.waitJob(t, j.id, "PENDING", 1, slurmStartTimeout)
			pending := time.Now()
			before := j.lastStep(t)
			if gens := j.generations(t); len(gens) != 2 {
				t.Fatalf("generations %v after the requeue: want the one by hand and the requeue's", gens)
			}
			t.Logf("scontrol requeue: PENDING again %v later, at step %d; %s", pending.Sub(sent).Round(time.Millisecond), before, j.logLine(t, "the job ended", 0))
			c.waitJob(t, j.id, "RUNNING", 1, (slurmCredExpire+15)*time.Second+slurmStartTimeout)
			j.waitStep(t, before+1)
			j.checkProgram(t, j.program(t))
			j.checkComplete(t, 1, 1)
			if gens := j.generations(t); len(gens) == 0 {
				t.Errorf("the generations are gone once the job completed: without --remove-on-success they stay")
			}
		})
	}
}

// The --signal near the job's end time is the time-limit warning: cr_run
// checkpoints the job, ends it and requeues it (Slurm would end it at the
// time limit as TIMEOUT, not requeued). Slurm sends the warning only
// within 30 s of its time (slurmTimeLimitPeriod), so the test brings the
// end time near (scontrol update TimeLimit) and sends the signal itself,
// as Slurm does: to the batch process alone.
// The job's output is opened with --open-mode=truncate, so the run that
// restarts it starts with an empty file: the restarted program writes
// there, from its start, not at the offset it had in the file of the run
// before (which, the file now shorter, a restore would refuse).
func TestSlurmCrRunTimeLimit(t *testing.T) {
	needsRoot(t)
	c := startSlurm(t)
	j := submitCrRun(t, c, crRunSpec{name: "timelimit", steps: 300, stepMs: 30, sbatch: []string{"--time=10", "--open-mode=truncate"}})
	c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
	j.waitStep(t, 10)
	// 2 minutes from its start: within --slurm-warning (1m) and the
	// slack of cr_run's.
	c.scontrol(t, "update", "JobId="+j.id, "TimeLimit=2")
	c.scancel(t, "--signal=USR1", "--batch", j.id)
	c.waitJob(t, j.id, "PENDING", 1, slurmStartTimeout)
	before := j.lastStep(t)
	t.Logf("time-limit warning: %s; requeued at step %d", j.logLine(t, "time limit near", 0), before)
	if gens := j.generations(t); len(gens) != 1 {
		t.Fatalf("generations %v after the time-limit warning, want one", gens)
	}
	c.waitJob(t, j.id, "RUNNING", 1, (slurmCredExpire+15)*time.Second+slurmStartTimeout)
	j.waitStep(t, before+1)
	j.checkProgram(t, j.program(t))
	j.checkComplete(t, 1, before+1)
}

// A signal that is not Slurm's warning reaches the program as it would
// without cr_run: `scancel --signal=USR2 --batch` kills hashcount, and the
// job ends as killed by it, with no checkpoint taken.
func TestSlurmCrRunSignalPassedOn(t *testing.T) {
	needsRoot(t)
	c := startSlurm(t)
	j := submitCrRun(t, c, crRunSpec{name: "passon", steps: 1000, stepMs: 30})
	c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
	j.waitStep(t, 5)
	c.scancel(t, "--signal=USR2", "--batch", j.id)
	job := c.waitJob(t, j.id, "FAILED", 0, slurmStartTimeout)
	// ExitCode is the exit status, then the signal that ended the batch
	// process (scontrol(1)).
	if want := fmt.Sprintf("0:%d", unix.SIGUSR2); job["ExitCode"] != want {
		t.Errorf("job ended with ExitCode=%s, want %s: cr_run killed by the signal that killed the program", job["ExitCode"], want)
	}
	if gens := j.generations(t); len(gens) != 0 {
		t.Errorf("generations %v after SIGUSR2: want none", gens)
	}
}

// cr_run --slurm outside a Slurm job says so and runs nothing.
func TestSlurmCrRunOutsideSlurm(t *testing.T) {
	needsRoot(t)
	dir := t.TempDir()
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SLURM_") {
			env = append(env, e)
		}
	}
	cmd := exec.Command(blcrTool(t, "cr_run"), "--slurm", "-D", filepath.Join(dir, "ckpt"), "--", "touch", filepath.Join(dir, "ran"))
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 64 || !strings.Contains(string(out), "SLURM_JOB_ID is not set") {
		t.Errorf("cr_run --slurm outside Slurm: %v, %q: want exit 64 saying SLURM_JOB_ID is not set", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Errorf("cr_run --slurm outside Slurm ran the program")
	}
}
