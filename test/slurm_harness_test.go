//go:build linux

package test

// A one-node Slurm cluster started by hand for a test: munged, slurmctld and
// slurmd from Debian's packages (`make deps` installs them), every file they
// write in one temporary directory, no systemd. startSlurm returns once the
// node is idle; the test's cleanup cancels every job, stops the daemons,
// checks that no process of the cluster or its jobs is left and removes the
// directory.
//
// The configuration (slurm.conf in the directory; docs/SLURM.md explains
// each setting for a site):
//   - the node is this machine, NodeName `hostname -s`, NodeAddr 127.0.0.1,
//     with the sockets, cores and threads `slurmd -C` reports;
//   - partition low (the default) and partition high on that node, high with
//     the higher PriorityTier, so that a job in high preempts one in low
//     (PreemptType=preempt/partition_prio) by requeueing it
//     (PreemptMode=REQUEUE, JobRequeue=1) after slurmGraceTime;
//   - SlurmctldParameters=preempt_send_user_signal: a job's --signal reaches
//     it as soon as it is picked for preemption;
//   - proctrack/linuxproc: a job's processes are the descendants of its
//     slurmstepd. It works the same on any host (cgroup v1, v2 or a
//     container without a writable cgroup tree), needs no cgroup.conf and
//     leaves nothing under /sys/fs/cgroup; and it is the tracking under which
//     gocr's restored processes must be descendants of the job's cr_run.
//   - munged with its own key and socket in the directory, running as user
//     munge, so the cluster neither needs nor disturbs a munged of the
//     machine's own; ports chosen free at start, so two clusters (two test
//     runs) on one machine do not meet.
//
// Each daemon runs in the foreground (-D / -F) as a child of the test, so
// the harness holds its PID, waits for its exit and never looks a daemon up
// by name; each also writes its log file in the directory.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
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
	dir  string   // everything the cluster writes
	node string   // NodeName
	env  []string // the environment of every Slurm command and job
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

// startSlurm starts a one-node cluster for t and stops it in t's cleanup.
// It skips t when not root or when Slurm or munge is not installed.
func startSlurm(t *testing.T) *slurmCluster {
	t.Helper()
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
	dir, err := os.MkdirTemp("", "gocr-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	// munged, running as munge, must reach its directory inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &slurmCluster{dir: dir, node: shortHostname(t)}
	t.Cleanup(func() { c.stop(t) })
	c.env = append(withoutSlurmEnv(os.Environ()), "SLURM_CONF="+c.path("slurm.conf"))

	socket := c.startMunged(t, mungeUser)
	c.writeConfig(t, socket)
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

func (c *slurmCluster) writeConfig(t *testing.T, mungeSocket string) {
	t.Helper()
	hw := slurmdHardware(t)
	ports := freePorts(t, 2)
	// An empty plugin stack: the machine's /etc/slurm/plugstack.conf is not
	// this cluster's.
	if err := os.WriteFile(c.path("plugstack.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"state", "spool"} {
		if err := os.Mkdir(c.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`ClusterName=gocrtest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmUser=root
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[4]s,cred_expire=%[5]d
StateSaveLocation=%[6]s/state
SlurmdSpoolDir=%[6]s/spool
SlurmctldPidFile=%[6]s/slurmctld.pid
SlurmdPidFile=%[6]s/slurmd.pid
SlurmctldLogFile=%[6]s/slurmctld.log
SlurmdLogFile=%[6]s/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=debug
PlugStackConfig=%[6]s/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
KillWait=%[7]d
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=%[1]s NodeAddr=127.0.0.1 %[8]s State=UNKNOWN
PartitionName=low Nodes=%[1]s Default=YES PriorityTier=1 GraceTime=%[9]d MaxTime=INFINITE State=UP
PartitionName=high Nodes=%[1]s PriorityTier=10 GraceTime=%[9]d MaxTime=INFINITE State=UP
`, c.node, ports[0], ports[1], mungeSocket, slurmCredExpire, c.dir, slurmKillWait, hw, slurmGraceTime)
	if err := os.WriteFile(c.path("slurm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// slurmdHardware is the node's CPU layout as `slurmd -C` reports it
// (CPUs=... Boards=... SocketsPerBoard=... CoresPerSocket=...
// ThreadsPerCore=...), without RealMemory: memory is not scheduled here.
func slurmdHardware(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("slurmd", "-C").Output()
	if err != nil {
		t.Fatalf("slurmd -C: %v", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	var keep []string
	for _, f := range strings.Fields(line) {
		k, _, _ := strings.Cut(f, "=")
		switch k {
		case "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore":
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		t.Fatalf("slurmd -C printed no CPU layout: %q", out)
	}
	return strings.Join(keep, " ")
}

func shortHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := strings.Cut(h, ".")
	return short
}

// freePorts returns n TCP ports that were free on 127.0.0.1 a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
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

// cancelAll cancels every unfinished job and waits until none is left.
func (c *slurmCluster) cancelAll(t *testing.T) {
	t.Helper()
	ids := c.squeue(t)
	if len(ids) == 0 {
		return
	}
	c.scancel(t, ids...)
	c.waitFor(t, slurmStopTimeout+slurmKillWait*time.Second, "no job left", func() (bool, string) {
		out, err := c.command("squeue", "-h", "-o", "%i %T")
		return err == nil && out == "", fmt.Sprintf("squeue: %q %v", out, err)
	})
}

// stop cancels every job, stops the daemons (slurmd and slurmctld before
// munged, whom they need to talk), fails t if any process still uses the
// cluster's directory (a slurmstepd or a job's process), kills those by PID
// and removes the directory.
func (c *slurmCluster) stop(t *testing.T) {
	t.Helper()
	if len(c.daemons) > 0 && c.controllerUp() {
		c.cancelAll(t)
	}
	for i := len(c.daemons) - 1; i >= 0; i-- {
		d := c.daemons[i]
		if d.name == "munged" {
			c.waitProcessesGone(t) // slurmstepds talk to munged until they end
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(slurmStopTimeout):
			t.Errorf("slurm: %s did not end %v after SIGTERM; killing it\n%s", d.name, slurmStopTimeout, tail(d.out, 15))
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	c.waitProcessesGone(t)
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("slurm: remove %s: %v", c.dir, err)
	}
}

func (c *slurmCluster) controllerUp() bool {
	for _, d := range c.daemons {
		if d.name == "slurmctld" {
			select {
			case <-d.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

// waitProcessesGone waits for every process but the daemons the harness
// still runs that has its working directory, an open file, or SLURM_CONF in
// the cluster's directory to end; after slurmStopTimeout it fails t and
// kills them by PID.
func (c *slurmCluster) waitProcessesGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(slurmStopTimeout)
	for {
		left := c.clusterProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("slurm: processes left after the cluster stopped, killing them: %v", left)
			for pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			deadline = time.Now().Add(slurmStopTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterProcesses maps the PID of every process using the cluster's
// directory, other than a running daemon of the harness, to its command line.
func (c *slurmCluster) clusterProcesses() map[int]string {
	mine := map[int]bool{os.Getpid(): true}
	for _, d := range c.daemons {
		select {
		case <-d.done:
		default:
			mine[d.cmd.Process.Pid] = true
		}
	}
	entries, _ := os.ReadDir("/proc")
	found := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || mine[pid] {
			continue
		}
		if c.usesDir(pid) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			found[pid] = strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func (c *slurmCluster) usesDir(pid int) bool {
	in := func(p string) bool { return p == c.dir || strings.HasPrefix(p, c.dir+"/") }
	base := fmt.Sprintf("/proc/%d", pid)
	if cwd, err := os.Readlink(base + "/cwd"); err == nil && in(cwd) {
		return true
	}
	fds, _ := os.ReadDir(base + "/fd")
	for _, fd := range fds {
		if p, err := os.Readlink(base + "/fd/" + fd.Name()); err == nil && in(p) {
			return true
		}
	}
	environ, _ := os.ReadFile(base + "/environ")
	return bytes.Contains(environ, []byte("\x00SLURM_CONF="+c.path("slurm.conf")+"\x00")) ||
		bytes.HasPrefix(environ, []byte("SLURM_CONF="+c.path("slurm.conf")+"\x00"))
}
