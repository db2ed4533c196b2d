//go:build linux

package restorer

import (
	"testing"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// A cgroup is found under the mount of its hierarchy: v1 by its
// controllers, whichever order the mount lists them in, v2 by type, and a
// mount of a cgroup below the root by its root.
func TestCgroupDir(t *testing.T) {
	mounts := []procfs.Mount{
		{Root: "/", MountPoint: "/sys/fs/cgroup/cpu,cpuacct", FsType: "cgroup", SuperOptions: "rw,cpuacct,cpu"},
		{Root: "/", MountPoint: "/sys/fs/cgroup/pids", FsType: "cgroup", SuperOptions: "rw,pids"},
		{Root: "/", MountPoint: "/sys/fs/cgroup/systemd", FsType: "cgroup", SuperOptions: "rw,xattr,name=systemd"},
		{Root: "/job", MountPoint: "/mnt/unified", FsType: "cgroup2", SuperOptions: "rw,nsdelegate"},
	}
	known := map[string]bool{"cpu": true, "cpuacct": true, "pids": true, "memory": true}
	for _, c := range []struct{ controllers, path, want string }{
		{"cpu,cpuacct", "/a/b", "/sys/fs/cgroup/cpu,cpuacct/a/b"},
		{"pids", "/x", "/sys/fs/cgroup/pids/x"},
		{"name=systemd", "/u", "/sys/fs/cgroup/systemd/u"},
		{"", "/job/step", "/mnt/unified/step"},
	} {
		got, err := cgroupDir(mounts, known, c.controllers, c.path)
		if err != nil || got != c.want {
			t.Errorf("cgroupDir(%q, %q) = %q, %v; want %q", c.controllers, c.path, got, err, c.want)
		}
	}
	for _, c := range []struct{ controllers, path string }{
		{"cpu", "/a"},      // no mount of cpu alone
		{"memory", "/a"},   // no memory mount
		{"", "/other/one"}, // outside the v2 mount's root
	} {
		if got, err := cgroupDir(mounts, known, c.controllers, c.path); err == nil {
			t.Errorf("cgroupDir(%q, %q) = %q, want an error", c.controllers, c.path, got)
		}
	}
}

// Processes in their root's cgroups stay where the restore creates them,
// also when that is a hierarchy's root "/": no move, nothing made.
func TestPlanCgroupsAtRoot(t *testing.T) {
	cgs := []*gocrpb.Cgroup{{Controllers: "pids", Path: "/"}, {Controllers: "", Path: "/"}}
	var procs []*proc
	for _, pid := range []int32{10, 11} {
		procs = append(procs, &proc{task: &gocrpb.Task{Pid: pid, Attrs: &gocrpb.ProcessAttrs{Cgroups: cgs}},
			plan: &plan{strOff: map[string]uint32{}}})
	}
	undo, err := planCgroups(procs)
	if err != nil {
		t.Fatal(err)
	}
	defer undo()
	for _, pr := range procs {
		if len(pr.plan.calls) != 0 {
			t.Errorf("pid %d: calls %q, want none", pr.task.Pid, pr.plan.callNames)
		}
	}
}
