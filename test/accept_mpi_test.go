//go:build linux

package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// An Open MPI job on one node: mpirun with 2 ranks of mpiring.c,
// checkpointed as the whole mpirun tree mid-run and restored, ends with
// exactly the result of an uninterrupted run (docs/STATE.md, "MPI jobs",
// says which MCA settings it needs and why).

// mpiSteps is how many messages each rank exchanges (5 ms apart: 1.5 s of
// work or more); the test dumps the job once it is past step
// mpiDumpAfter, and the job waits before step mpiHold until released, so
// it is still running however late the dump comes.
const (
	mpiSteps     = 300
	mpiDumpAfter = 100
	mpiHold      = 200
)

// mpiRestorable are the MCA settings TestMPIRing runs with (docs/STATE.md,
// "MPI jobs"): the mmap shared-memory component rather than posix, which
// keeps an fd on a deleted /dev/shm file in every process, and processes
// started with posix_spawn, which hands the ranks mpirun's own stdout
// rather than a pseudo-terminal each. TestMPIDefaultShmem runs with the
// default shared-memory component.
var mpiRestorable = []string{"--mca", "shmem", "mmap", "--mca", "odls", "pspawn"}

var (
	mpiringOnce sync.Once
	mpiringPath string
	mpiringErr  error
)

// mpiring builds test/targets/mpiring.c with mpicc once, or skips.
func mpiring(t *testing.T) string {
	t.Helper()
	needsProgram(t, "mpirun", "openmpi-bin")
	mpicc := needsProgram(t, "mpicc", "libopenmpi-dev")
	mpiringOnce.Do(func() {
		mpiringPath = filepath.Join(binDir, "mpiring")
		out, err := exec.Command(mpicc, "-O1", "-g", "-Wall", "-Werror", "-o", mpiringPath,
			filepath.Join(moduleRoot, "test", "targets", "mpiring.c")).CombinedOutput()
		if err != nil {
			mpiringErr = fmt.Errorf("mpicc mpiring.c: %w\n%s", err, out)
		}
	})
	if mpiringErr != nil {
		t.Fatal(mpiringErr)
	}
	return mpiringPath
}

// mpiJob is one mpirun of mpiring, as jobUID, its output in a file.
type mpiJob struct {
	cmd     *exec.Cmd
	pid     int
	outPath string
	release string        // created, the job goes past step mpiHold
	cmdline string        // mpirun's, once it runs (waitStep)
	done    chan struct{} // closed once mpirun (the original) is reaped
}

// startMPIJob starts mpirun -np 2 mpiring with the MCA settings given,
// released at once or not; cleanup kills the job, original or restored.
func startMPIJob(t *testing.T, mca []string, released bool) *mpiJob {
	t.Helper()
	ring := mpiring(t)
	dir := jobDir(t)
	job := &mpiJob{outPath: filepath.Join(dir, "out"), release: filepath.Join(dir, "release"), done: make(chan struct{})}
	if released {
		job.releaseHold(t)
	}
	out, err := os.Create(job.outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// --oversubscribe: 2 ranks even on a machine with 1 CPU.
	argv := append(asJobUser(), "mpirun", "-np", "2", "--oversubscribe")
	argv = append(append(argv, mca...), ring, strconv.Itoa(mpiSteps), strconv.Itoa(mpiHold), job.release)
	job.cmd = exec.Command(argv[0], argv[1:]...)
	job.cmd.Dir = dir
	// Its session directory (and what a killed job leaves there) in the
	// test's directory.
	job.cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR="+dir)
	job.cmd.Stdout, job.cmd.Stderr = out, out
	if err := job.cmd.Start(); err != nil {
		t.Fatalf("start mpirun: %v", err)
	}
	job.pid = job.cmd.Process.Pid
	go func() { job.cmd.Wait(); close(job.done) }()
	t.Cleanup(func() {
		select {
		case <-job.done:
		default:
			job.cmd.Process.Kill()
			<-job.done
		}
		// A restored mpirun is not the test's child.
		if job.cmdline != "" && !gone(job.pid) && cmdlineOf(job.pid) == job.cmdline {
			if err := syscall.Kill(job.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill restored mpirun pid %d: %v", job.pid, err)
			}
			if !waitGone(job.pid, pidGoneTimeout) {
				t.Errorf("restored mpirun pid %d still present %v after SIGKILL", job.pid, pidGoneTimeout)
			}
		}
	})
	return job
}

// waitStep waits until rank 0 has passed step n, and returns the job's
// processes (mpirun first), which cleanup kills if left.
func (job *mpiJob) waitStep(t *testing.T, n int) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(job.output(), fmt.Sprintf("step %d\n", n)) {
		select {
		case <-job.done:
			t.Fatalf("mpirun ended (%v) before step %d\n%s", job.cmd.ProcessState, n, job.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mpirun not at step %d after 20 s\n%s", n, job.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	job.cmdline = cmdlineOf(job.pid)
	pids := trackTree(t, job.pid)
	if len(pids) != 2 {
		t.Fatalf("mpirun pid %d has %d descendants, want its 2 ranks: %v", job.pid, len(pids), pids)
	}
	return append([]int{job.pid}, pids...)
}

// releaseHold lets the job go past step mpiHold.
func (job *mpiJob) releaseHold(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(job.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (job *mpiJob) output() string {
	b, _ := os.ReadFile(job.outPath)
	return string(b)
}

// result is the job's "result X" line, once it has ended.
func (job *mpiJob) result(t *testing.T) string {
	t.Helper()
	out := job.output()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "result ") {
		t.Fatalf("the job's output does not end with its result:\n%s", out)
	}
	return last
}

// wait waits for the original mpirun to end and requires exit status 0.
func (job *mpiJob) wait(t *testing.T) {
	t.Helper()
	select {
	case <-job.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("mpirun still runs after 30 s\n%s", job.output())
	}
	if !job.cmd.ProcessState.Success() {
		t.Fatalf("mpirun: %v\n%s", job.cmd.ProcessState, job.output())
	}
}

var (
	mpiExpectedOnce sync.Once
	mpiExpected     string
)

// uninterruptedResult is the result of the same job run to its end
// untouched, once per test binary.
func uninterruptedResult(t *testing.T) string {
	t.Helper()
	mpiExpectedOnce.Do(func() {
		job := startMPIJob(t, mpiRestorable, true)
		job.wait(t)
		mpiExpected = job.result(t)
	})
	if mpiExpected == "" {
		t.Fatal("the uninterrupted run failed (see the first test that ran it)")
	}
	return mpiExpected
}

// TestMPIRing: the mpirun tree dumped mid-run with -t and restored
// detached, so that the oracle (oracle_test.go) compares mpirun and both
// ranks with what they were before the dump while the job waits before
// step mpiHold; it then ends with the result of an uninterrupted run.
// TestMPIRingTCP and TestMPIDefaultShmem restore in the foreground.
func TestMPIRing(t *testing.T) {
	needsGocr(t)
	dumpRestoreMPI(t, mpiRestorable, true)
}

// dumpRestoreMPI runs the ring job with mca, dumps the mpirun tree
// mid-run with -t, restores it and waits for the restored mpirun (gocr
// restore fails unless it exits 0), which must end with the result of
// an uninterrupted run. With oracle, it restores with -d instead and
// compares the restored tree with the one dumped before it lets the job
// past its hold.
func dumpRestoreMPI(t *testing.T, mca []string, oracle bool) {
	t.Helper()
	want := uninterruptedResult(t)
	job := startMPIJob(t, mca, false)
	pids := job.waitStep(t, mpiDumpAfter)
	var before treeView
	if oracle {
		var err error
		if before, err = readTreeView(t, job.pid); err != nil {
			t.Fatalf("read what the kernel shows of the mpirun tree of pid %d: %v", job.pid, err)
		}
	}
	dir := t.TempDir()
	dump(t, job.pid, dir)
	select {
	case <-job.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("mpirun pid %d still runs 10 s after the dump", job.pid)
	}
	waitAllGone(t, pids, "the dump")
	if oracle {
		restore(t, nil, dir, "-d")
		checkTreeView(t, job.pid, before, nil)
		job.releaseHold(t)
		// The restored mpirun is not the test's child: its end is
		// seen by its PID.
		if !waitGone(job.pid, resultTimeout) {
			t.Fatalf("restored mpirun pid %d still runs %v after its release\n%s", job.pid, resultTimeout, job.output())
		}
	} else {
		job.releaseHold(t)
		restore(t, nil, dir)
	}
	if got := job.result(t); got != want {
		t.Fatalf("restored job: %q, uninterrupted: %q\n%s", got, want, job.output())
	}
}

// TestMPIDefaultShmem: with Open MPI's default shared-memory component,
// posix, which keeps an fd on a /dev/shm file it deleted in mpirun and
// every rank, the job is dumped (the deleted file saved once) and
// restored, and ends with the result of an uninterrupted run. (The ranks
// are started with posix_spawn all the same: the default odls gives each a
// pseudo-terminal, whose index the restore needs free, and another
// process on the machine may take it meanwhile.)
func TestMPIDefaultShmem(t *testing.T) {
	needsGocr(t)
	dumpRestoreMPI(t, []string{"--mca", "odls", "pspawn"}, false)
}

// TestMPIRingTCP: as TestMPIRing, with the ranks talking over TCP only
// (btl self,tcp): their loopback connections to each other are dumped,
// and the restore makes them again on the same ports.
func TestMPIRingTCP(t *testing.T) {
	needsGocr(t)
	dumpRestoreMPI(t, append(mpiRestorable, "--mca", "btl", "self,tcp"), false)
}
