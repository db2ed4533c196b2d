//go:build linux

package test

// Stopping a test's Slurm cluster (slurm_harness_test.go) so that nothing
// of it is left: no job, no daemon, no slurmstepd or job process, no
// cgroup, no file.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cancelAll cancels every unfinished job and waits until none is left.
func (c *slurmCluster) cancelAll(t *testing.T) {
	t.Helper()
	if err := c.cancelJobs(); err != nil {
		t.Fatalf("slurm: %v\n%s", err, c.logTails())
	}
}

// cancelJobs is cancelAll returning its failure, for stop, which goes on
// after one.
func (c *slurmCluster) cancelJobs() error {
	ids, err := c.command("squeue", "-h", "-o", "%i")
	if err != nil || ids == "" {
		return err
	}
	if _, err := c.command("scancel", strings.Fields(ids)...); err != nil {
		return err
	}
	deadline := time.Now().Add(slurmStopTimeout + slurmKillWait*time.Second)
	for {
		out, err := c.command("squeue", "-h", "-o", "%i %T")
		if err == nil && out == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jobs still there %v after scancel: squeue: %q %v", slurmStopTimeout+slurmKillWait*time.Second, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop cancels every job, stops the daemons (slurmd and slurmctld before
// munged, whom they need to talk), fails t if any process still uses the
// cluster's directory (a slurmstepd or a job's process), kills those by PID,
// removes the cluster's cgroups and its directory.
func (c *slurmCluster) stop(t *testing.T) {
	t.Helper()
	// Every step runs even when one before it failed: t.Error, never
	// t.Fatal, so that no daemon is left behind.
	if c.controllerUp() {
		if err := c.cancelJobs(); err != nil {
			t.Errorf("slurm: %v\n%s", err, c.logTails())
		}
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
	if c.proctrack == "cgroup" {
		c.removeCgroups(t)
	}
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

// removeCgroups removes what slurmd made in each cgroup v1 hierarchy,
// slurm_NODENAME and the uid_, job_ and step_ cgroups below it, deepest
// first: a cgroup is removed with rmdir, its control files with it
// (Documentation/admin-guide/cgroup-v1/cgroups.rst). One that still has a
// process fails t.
func (c *slurmCluster) removeCgroups(t *testing.T) {
	t.Helper()
	tops, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "slurm_"+c.node))
	for _, top := range tops {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil {
				procs, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
				t.Errorf("slurm: remove cgroup %s: %v (processes: %q)", dirs[i], err, strings.Fields(string(procs)))
			}
		}
	}
}
