//go:build linux

package test

// A one-node Slurm cluster started by hand for a test: munged, slurmctld and
// slurmd from Debian's packages (`make deps` installs them), every file they
// write in one temporary directory, no systemd. startSlurm returns once the
// node is idle; the test's cleanup cancels every job, stops the daemons,
// checks that no process of the cluster or its jobs is left and removes the
// directory.
//
// The configuration (slurm.conf in the directory, written by
// slurm_config_test.go; docs/SLURM.md explains each setting for a site):
//   - the node is this machine, NodeName `hostname -s` (with a suffix under
//     proctrack/cgroup, see startSlurmWith), NodeAddr 127.0.0.1, with the
//     sockets, cores and threads `slurmd -C` reports;
//   - partition low (the default) and partition high on that node, high with
//     the higher PriorityTier, so that a job in high preempts one in low
//     (PreemptType=preempt/partition_prio) by requeueing it
//     (PreemptMode=REQUEUE, JobRequeue=1) after slurmGraceTime;
//   - SlurmctldParameters=preempt_send_user_signal: a job's --signal reaches
//     it as soon as it is picked for preemption;
//   - proctrack/linuxproc by default: a job's processes are the
//     descendants of its slurmstepd. It works the same on any host (cgroup
//     v1, v2 or a container without a writable cgroup tree) and needs no
//     cgroup.conf; and it is the tracking under which gocr's restored
//     processes must be descendants of the job's cr_run. startSlurmWith
//     can choose proctrack/cgroup instead, on cgroup v1 (slurmd's cgroup v2
//     plugin does not run on a host with v1 hierarchies mounted):
//     sites use it, and there a restored process must be in the job's
//     cgroup.
//   - munged with its own key and socket in the directory, running as user
//     munge, so the cluster neither needs nor disturbs a munged of the
//     machine's own; ports chosen free at start, so two clusters (two test
//     runs) on one machine do not meet.
//
// Each daemon runs in the foreground (-D / -F) as a child of the test, so
// the harness holds its PID, waits for its exit and never looks a daemon up
// by name; each also writes its log file in the directory. Stopping, and
// checking that nothing is left, is in slurm_cleanup_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// slurmGraceTime is both partitions' GraceTime, in seconds.
	slurmGraceTime = 5
	// slurmKillWait is KillWait: seconds from SIGTERM to SIGKILL.
	slurmKillWait = 5
	// slurmCredExpire is AuthInfo's cred_expire: a requeued job may start
	// again cred_expire+1 s after it was requeued (slurm.conf(5), AuthInfo).
	slurmCredExpire = 10
	// slurmTimeLimitPeriod is how often slurmctld looks for jobs past their
	// end time, a preempted job's grace time included: PERIODIC_TIMEOUT in
	// src/slurmctld/slurmctld.h, used by _slurmctld_background in
	// src/slurmctld/controller.c. The end-of-grace SIGTERM comes between
	// GraceTime and GraceTime plus this after preemption.
	slurmTimeLimitPeriod = 30 * time.Second

	slurmStartTimeout   = 30 * time.Second
	slurmCommandTimeout = 30 * time.Second
	slurmStopTimeout    = 20 * time.Second
)

// slurmBinaries are the commands the harness runs; `make deps` installs them.
var slurmBinaries = []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel"}

type slurmCluster struct {
	dir       string   // everything the cluster writes
	node      string   // NodeName
	proctrack string   // slurmOptions.proctrack
	env       []string // the environment of every Slurm command and job
	// daemons in start order; stop goes in reverse.
	daemons []*slurmDaemon
}

type slurmDaemon struct {
	name string
	cmd  *exec.Cmd
	out  string // its stdout and stderr
	log  string // its log file
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// slurmOptions are what a test may choose about its cluster.
type slurmOptions struct {
	// proctrack is how slurmd tracks a job's processes, the ProctrackType
	// plugin: "linuxproc" (the default) or "cgroup" (cgroup v1: freezer,
	// no resource constraint).
	proctrack string
}

// startSlurm starts a one-node cluster with proctrack/linuxproc for t and
// stops it in t's cleanup. It skips t when not root or when Slurm or munge
// is not installed.
func startSlurm(t *testing.T) *slurmCluster {
	t.Helper()
	return startSlurmWith(t, slurmOptions{})
}

// startSlurmWith is startSlurm with options. With proctrack "cgroup" it
// skips t when the machine has no cgroup v1 freezer hierarchy, and the node
// is named `hostname -s`-gocrXXXXXX: slurmd puts its cgroups under
// slurm_NODENAME in every hierarchy, and job IDs start at 1 in every
// cluster, so a name of its own keeps two clusters' jobs apart.
func startSlurmWith(t *testing.T, opts slurmOptions) *slurmCluster {
	t.Helper()
	if opts.proctrack == "" {
		opts.proctrack = "linuxproc"
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: slurmd runs jobs as their user and munged starts as user munge")
	}
	for _, b := range slurmBinaries {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs Slurm and munge (`make deps` installs Debian's slurmctld, slurmd, slurm-client and munge): %v", err)
		}
	}
	mungeUser, err := user.Lookup("munge")
	if err != nil {
		t.Skipf("needs the user munge that Debian's munge package creates (`make deps`): %v", err)
	}
	node := shortHostname(t)
	switch opts.proctrack {
	case "linuxproc":
	case "cgroup":
		needsCgroupV1Freezer(t)
		node += "-gocr" + randomHex(t, 3)
	default:
		t.Fatalf("slurm: unknown proctrack %q", opts.proctrack)
	}
	dir, err := os.MkdirTemp("", "gocr-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	// munged, running as munge, must reach its directory inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &slurmCluster{dir: dir, node: node, proctrack: opts.proctrack}
	t.Cleanup(func() { c.stop(t) })
	c.env = append(withoutSlurmEnv(os.Environ()), "SLURM_CONF="+c.path("slurm.conf"))

	socket := c.startMunged(t, mungeUser)
	c.writeConfig(t, socket)
	if c.proctrack == "cgroup" {
		c.writeCgroupConfig(t)
	}
	ctld := c.startDaemon(t, "slurmctld", nil, "slurmctld", "-D", "-f", c.path("slurm.conf"))
	ctld.log = c.path("slurmctld.log")
	slurmd := c.startDaemon(t, "slurmd", nil, "slurmd", "-D", "-N", c.node, "-f", c.path("slurm.conf"))
	slurmd.log = c.path("slurmd.log")

	start := time.Now()
	c.waitFor(t, slurmStartTimeout, "node "+c.node+" idle", func() (bool, string) {
		out, err := c.command("sinfo", "-h", "-n", c.node, "-o", "%T")
		return err == nil && out == "idle", fmt.Sprintf("sinfo: %q %v", out, err)
	})
	t.Logf("slurm: node %s idle %v after slurmctld started (cluster in %s)", c.node, time.Since(start).Round(time.Millisecond), dir)
	return c
}

func (c *slurmCluster) path(name string) string { return filepath.Join(c.dir, name) }

// startMunged starts munged as user munge with a fresh key, and returns its
// socket once it exists.
func (c *slurmCluster) startMunged(t *testing.T, u *user.User) string {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	mdir := c.path("munge")
	// munged refuses a socket directory that others cannot search
	// ("execute permissions for all required") or may write.
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 1024)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(mdir, "munge.key")
	if err := os.WriteFile(keyPath, key, 0o400); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mdir, keyPath} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(mdir, "munge.socket")
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	c.startDaemon(t, "munged", cred, "munged", "-F",
		"--socket="+socket, "--key-file="+keyPath,
		"--log-file="+filepath.Join(mdir, "munged.log"),
		"--pid-file="+filepath.Join(mdir, "munged.pid"),
		"--seed-file="+filepath.Join(mdir, "munged.seed"))
	c.waitFor(t, slurmStartTimeout, "munged's socket "+socket, func() (bool, string) {
		_, err := os.Stat(socket)
		return err == nil, fmt.Sprint(err)
	})
	return socket
}

// withoutSlurmEnv drops SLURM_* variables, so that a test run inside a Slurm
// job talks to its own cluster only.
func withoutSlurmEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "SLURM_") {
			out = append(out, e)
		}
	}
	return out
}

func (c *slurmCluster) startDaemon(t *testing.T, name string, attr *syscall.SysProcAttr, argv ...string) *slurmDaemon {
	t.Helper()
	d := &slurmDaemon{name: name, out: c.path(name + ".out"), done: make(chan struct{})}
	f, err := os.Create(d.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Dir = c.dir
	d.cmd.Env = c.env
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.SysProcAttr = attr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	c.daemons = append(c.daemons, d)
	return d
}

// waitFor polls cond until it holds; it fails t after timeout, or at once
// when a daemon has exited, with cond's last word and the daemons' logs.
func (c *slurmCluster) waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		for _, d := range c.daemons {
			select {
			case <-d.done:
				t.Fatalf("slurm: %s exited (%v) while waiting for %s; last: %s\n%s", d.name, d.err, what, last, c.logTails())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("slurm: no %s after %v; last: %s\n%s", what, timeout, last, c.logTails())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTails is the last lines of every daemon's output and log.
func (c *slurmCluster) logTails() string {
	var b strings.Builder
	for _, d := range c.daemons {
		for _, p := range []string{d.out, d.log} {
			if p != "" {
				fmt.Fprintf(&b, "--- %s:\n%s", p, tail(p, 15))
			}
		}
	}
	return b.String()
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// command runs a Slurm command against the cluster and returns its stdout
// without surrounding space.
func (c *slurmCluster) command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), slurmCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (c *slurmCluster) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := c.command(name, args...)
	if err != nil {
		t.Fatalf("slurm: %v\n%s", err, c.logTails())
	}
	return out
}

// sbatch runs sbatch with args (options, then the script) for a job
// working in the cluster's directory, and returns the job ID.
func (c *slurmCluster) sbatch(t *testing.T, args ...string) string {
	t.Helper()
	id := c.run(t, "sbatch", append([]string{"--parsable", "--chdir=" + c.dir}, args...)...)
	id, _, _ = strings.Cut(id, ";") // --parsable: "jobid[;cluster]"
	return id
}

func (c *slurmCluster) scontrol(t *testing.T, args ...string) string {
	t.Helper()
	return c.run(t, "scontrol", args...)
}

func (c *slurmCluster) scancel(t *testing.T, args ...string) {
	t.Helper()
	c.run(t, "scancel", args...)
}

// squeue lists the IDs of the jobs not yet finished.
func (c *slurmCluster) squeue(t *testing.T) []string {
	t.Helper()
	return strings.Fields(c.run(t, "squeue", "-h", "-o", "%i"))
}

// job is `scontrol show job ID` as a map, e.g. job["JobState"] = "RUNNING",
// job["Restarts"] = "1".
func (c *slurmCluster) job(id string) (map[string]string, error) {
	out, err := c.command("scontrol", "-o", "show", "job", id)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, f := range strings.Fields(out) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// waitJob waits until job id is in state with at least restarts restarts,
// and returns what scontrol shows of it then.
func (c *slurmCluster) waitJob(t *testing.T, id, state string, restarts int, timeout time.Duration) map[string]string {
	t.Helper()
	var job map[string]string
	c.waitFor(t, timeout, fmt.Sprintf("job %s %s with %d restarts", id, state, restarts), func() (bool, string) {
		j, err := c.job(id)
		if err != nil {
			return false, err.Error()
		}
		job = j
		n, _ := strconv.Atoi(j["Restarts"])
		return j["JobState"] == state && n >= restarts,
			fmt.Sprintf("JobState=%s Reason=%s Restarts=%s", j["JobState"], j["Reason"], j["Restarts"])
	})
	return job
}
