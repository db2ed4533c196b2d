//go:build linux

package test

// An Open MPI job under cr_run --slurm on the one-node cluster
// (slurm_harness_test.go): the batch step runs mpirun on the job's 2 tasks
// of targets/mpiring.c (accept_mpi_test.go), the job is preempted mid-run,
// checkpointed at the warning and requeued, and the next run restarts the
// whole mpirun tree from the checkpoint. docs/SLURM.md, "MPI jobs", says
// which MCA settings mpirun needs inside a Slurm job and why.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mpiOneNode is the MCA setting of a one-node job besides mpiRestorable
// (docs/SLURM.md, "MPI jobs"): the ranks talk through shared memory only
// (btl vader, and self to themselves). With btl tcp as well, unused
// between ranks on one node, each rank listens on the first free port
// from 1024 up (btl_tcp_port_min_v4), which another Open MPI job on the
// node may hold by the time the job restarts: the restore then fails.
var mpiOneNode = []string{"--mca", "btl", "self,vader"}

// btlTCPPorts are the ports the ranks of an Open MPI job with btl tcp
// listen on first: btl_tcp_port_min_v4 (1024) and the next.
var btlTCPPorts = []int{1024, 1025}

// TestSlurmCrRunMPI: the MPI job is preempted once it is past step
// mpiDumpAfter (and before mpiHold, where it waits until the test releases
// it after the checkpoint); while it is requeued, the ports another Open
// MPI job would take are held; the next run restarts mpirun and its ranks
// from the checkpoint, all three tracked as the new job's and writing to
// its output file, and the job
// ends with exactly the result of an uninterrupted run, every step line of
// rank 0 written once: nothing done before the checkpoint is done again.
func TestSlurmCrRunMPI(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	want := uninterruptedResult(t)
	c := startSlurm(t)
	dir := jobDir(t) // mpirun's HOME and TMPDIR (its session directory)
	release := filepath.Join(dir, "release")
	j := &crRunJob{c: c, out: c.path("mpi.out"), dir: c.path("checkpoint-mpi")}
	// mpirun takes the number of ranks from the job's tasks (Slurm's
	// SLURM_TASKS_PER_NODE); --overcommit allows 2 tasks on a node with
	// one CPU. mpirun runs as jobUID (accept_test.go), cr_run as root.
	argv := append(asJobUser(), "mpirun")
	argv = append(append(append(argv, mpiRestorable...), mpiOneNode...),
		mpiring(t), strconv.Itoa(mpiSteps), strconv.Itoa(mpiHold), release)
	env := []string{"ALL", "CR_RUN=" + blcrTool(t, "cr_run"), "CHECKPOINT_DIR=" + j.dir, "CR_RUN_OPTIONS=", "HOME=" + dir, "TMPDIR=" + dir}
	j.id = c.sbatch(t, append([]string{"--job-name=mpi", "--partition=low", "--ntasks=2", "--overcommit",
		"--output=" + j.out, "--export=" + strings.Join(env, ","),
		filepath.Join(moduleRoot, "test", "slurmjobs", "cr_run_job.sh")}, argv...)...)
	t.Cleanup(func() { c.cancelAll(t) })
	output := func() string { b, _ := os.ReadFile(j.out); return string(b) }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("job %s output:\n%s", j.id, output())
		}
	})

	c.waitJob(t, j.id, "RUNNING", 0, slurmStartTimeout)
	c.waitFor(t, slurmStartTimeout, fmt.Sprintf("job %s at step %d", j.id, mpiDumpAfter), func() (bool, string) {
		return strings.Contains(output(), fmt.Sprintf("step %d\n", mpiDumpAfter)), output()
	})
	submitted := time.Now()
	high := preempt(t, c)
	c.waitJob(t, j.id, "PENDING", 1, slurmStartTimeout)
	requeued := time.Now()
	if gens := j.generations(t); len(gens) != 1 {
		t.Fatalf("generations %v after the preemption, want one", gens)
	}
	if strings.Contains(output(), fmt.Sprintf("step %d\n", mpiHold)) {
		t.Fatalf("the job went past its hold before the test released it")
	}
	t.Logf("preempted: job PENDING again %v after the high job's submission; %s",
		requeued.Sub(submitted).Round(time.Millisecond), j.logLine(t, "the job ended", 0))
	for _, port := range btlTCPPorts {
		// Held by someone else already, it is just as taken.
		if l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)); err == nil {
			defer l.Close()
		}
	}
	c.scancel(t, high)

	c.waitJob(t, j.id, "RUNNING", 1, (slurmCredExpire+15)*time.Second+slurmStartTimeout)
	restarted := time.Now()
	j.logLine(t, "restarted from", 0)
	t.Logf("restarted %v after the requeue", restarted.Sub(requeued).Round(time.Millisecond))
	outInfo, err := os.Stat(j.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range mpiProcesses(t, c, release) {
		j.checkJobProcess(t, pid)
		// The output file itself, but not the open file slurmd gave
		// cr_run for this run: the ranks hold it at other fds too
		// (docs/SLURM.md, "MPI jobs"), so it is reopened by its path.
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/fd/1", pid)); err != nil || !os.SameFile(fi, outInfo) {
			t.Errorf("pid %d: stdout is not the job's output file %s: %v", pid, j.out, err)
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	job := c.waitJob(t, j.id, "COMPLETED", 1, slurmStartTimeout)
	t.Logf("completed %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if job["ExitCode"] != "0:0" {
		t.Errorf("job ended with ExitCode=%s, want 0:0", job["ExitCode"])
	}
	var steps []string
	result := ""
	for _, line := range strings.Split(output(), "\n") {
		switch {
		case strings.HasPrefix(line, "step "):
			steps = append(steps, strings.TrimPrefix(line, "step "))
		case strings.HasPrefix(line, "result "):
			result = line
		}
	}
	var wantSteps []string
	for i := 0; i < mpiSteps; i += 100 {
		wantSteps = append(wantSteps, strconv.Itoa(i))
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("rank 0 wrote steps %v, want %v each once", steps, wantSteps)
	}
	if result != want {
		t.Errorf("restarted job: %q, uninterrupted: %q", result, want)
	}
}

// mpiProcesses waits for the job's mpirun, the one whose command line
// holds tag, with its 2 ranks, and returns the three PIDs here.
func mpiProcesses(t *testing.T, c *slurmCluster, tag string) []int {
	t.Helper()
	var pids []int
	c.waitFor(t, slurmStartTimeout, "mpirun with 2 ranks", func() (bool, string) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil || commOf(p) != "mpirun" || !slices.Contains(strings.Split(cmdlineOf(p), "\x00"), tag) {
				continue
			}
			pids = []int{p}
			for _, e := range treeEntries(t, p) {
				if e.pid != p && commOf(e.pid) == "mpiring" {
					pids = append(pids, e.pid)
				}
			}
			return len(pids) == 3, fmt.Sprintf("mpirun and ranks %v", pids)
		}
		return false, "no mpirun"
	})
	return pids
}
