//go:build linux

package test

// The configuration of a test's Slurm cluster (slurm_harness_test.go):
// slurm.conf, cgroup.conf under proctrack/cgroup, and what they are made
// from (this machine's name and CPUs, free ports).

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

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
SlurmctldHost=%[11]s(127.0.0.1)
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
ProctrackType=proctrack/%[10]s
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
`, c.node, ports[0], ports[1], mungeSocket, slurmCredExpire, c.dir, slurmKillWait, hw, slurmGraceTime, c.proctrack, shortHostname(t))
	if err := os.WriteFile(c.path("slurm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCgroupConfig writes cgroup.conf, which Slurm reads from
// slurm.conf's directory: cgroup v1, used only to track processes.
func (c *slurmCluster) writeCgroupConfig(t *testing.T) {
	t.Helper()
	conf := "CgroupPlugin=cgroup/v1\nCgroupMountpoint=" + cgroupRoot + "\n" +
		"ConstrainCores=no\nConstrainRAMSpace=no\nConstrainSwapSpace=no\nConstrainDevices=no\n"
	if err := os.WriteFile(c.path("cgroup.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

const cgroupRoot = "/sys/fs/cgroup"

// needsCgroupV1Freezer skips t unless a cgroup v1 freezer hierarchy is
// mounted at /sys/fs/cgroup/freezer, which proctrack/cgroup uses
// (slurmd's cgroup/v1 plugin).
func needsCgroupV1Freezer(t *testing.T) {
	t.Helper()
	var st syscall.Statfs_t
	path := cgroupRoot + "/freezer"
	// CGROUP_SUPER_MAGIC, include/uapi/linux/magic.h: a cgroup v1
	// hierarchy (v2 is CGROUP2_SUPER_MAGIC).
	const cgroupSuperMagic = 0x27e0eb
	if err := syscall.Statfs(path, &st); err != nil || st.Type != cgroupSuperMagic {
		t.Skipf("needs a cgroup v1 freezer hierarchy at %s for proctrack/cgroup (statfs: type %#x, %v)", path, st.Type, err)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
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
