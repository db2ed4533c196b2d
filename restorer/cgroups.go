//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	procfs "github.com/gocr/gocr/proc"
)

// Cgroups come back relative to the dump's root (dump/cgroups.go): the
// root in the restore's own cgroups, as every process the restorer
// clones starts there (man 7 cgroups: a child is created in its
// parent's), and a process that was in a cgroup below the root's in the
// same cgroup below the restore's, made if missing, as CRIU makes the
// cgroups it restores. Each such process moves itself there first thing,
// before it forks its children or maps its memory, so that they and its
// pages are in and charged to its own cgroup (restorer.c restore_cgroup;
// writing 0 to cgroup.procs moves the writer, Documentation/admin-guide/
// cgroup-v2.rst and cgroup-v1/cgroups.rst). A restore in a batch job's
// cgroup thus keeps the whole job inside that job.

// planCgroups adds each process's move into its cgroups to its plan and
// makes the cgroups that are missing. undo removes those it made.
func planCgroups(procs []*proc) (undo func(), err error) {
	var made []string
	undo = func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	root := procs[0].task.Attrs
	if root == nil || len(root.Cgroups) == 0 {
		return undo, nil
	}
	self := os.Getpid()
	own, err := procfs.ReadCgroups(self, self)
	if err != nil {
		return undo, err
	}
	ownPath := map[string]string{}
	for _, l := range own {
		ownPath[l.Controllers] = l.Path
	}
	rootPath := map[string]string{}
	for _, cg := range root.Cgroups {
		rootPath[cg.Controllers] = cg.Path
		if p, ok := ownPath[cg.Controllers]; ok && p != cg.Path {
			fmt.Fprintf(os.Stderr, "gocr: the job runs in the restore's cgroup %s:%s, not the %s it was dumped in\n", hierarchyName(cg.Controllers), p, cg.Path)
		}
	}
	var mounts []procfs.Mount
	var known map[string]bool
	for _, pr := range procs {
		if pr.plan == nil || pr.task.Attrs == nil {
			continue
		}
		for _, cg := range pr.task.Attrs.Cgroups {
			base, ok := rootPath[cg.Controllers]
			if ok && cg.Path == base {
				continue // where the restore puts it
			}
			if !ok || !strings.HasPrefix(cg.Path, strings.TrimSuffix(base, "/")+"/") {
				return undo, fmt.Errorf("restore pid %d: its cgroup %s:%s is not below its root's (%s)", pr.task.Pid, hierarchyName(cg.Controllers), cg.Path, base)
			}
			rel := strings.TrimPrefix(cg.Path, strings.TrimSuffix(base, "/"))
			mine, ok := ownPath[cg.Controllers]
			if !ok {
				return undo, fmt.Errorf("restore pid %d: it was in cgroup %s:%s, and the restore is in no %s hierarchy", pr.task.Pid, hierarchyName(cg.Controllers), cg.Path, hierarchyName(cg.Controllers))
			}
			if mounts == nil {
				if mounts, err = procfs.ReadMounts(self); err != nil {
					return undo, err
				}
				if known, err = knownControllers(); err != nil {
					return undo, err
				}
			}
			dir, err := cgroupDir(mounts, known, cg.Controllers, path.Join(mine, rel))
			if err != nil {
				return undo, fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
			}
			if made, err = makeDirs(dir, made); err != nil {
				return undo, classed(Environment, fmt.Errorf("restore pid %d: make cgroup %s: %w", pr.task.Pid, dir, err))
			}
			pr.plan.calls = append(pr.plan.calls, rstCall{Op: rstCallCgroup,
				Args: [6]uint64{uint64(pr.plan.str(dir + "/cgroup.procs"))}})
			pr.plan.callNames = append(pr.plan.callNames, "cgroup "+dir)
		}
	}
	return undo, nil
}

func hierarchyName(controllers string) string {
	if controllers == "" {
		return "cgroup2"
	}
	return controllers
}

// cgroupDir finds where the cgroup p of a hierarchy is in gocr's mounts:
// under a cgroup2 mount for controllers "", else under the cgroup v1
// mount whose options name exactly those controllers (man 7 cgroups), of
// the kernel's known ones (/proc/cgroups) or "name=NAME".
func cgroupDir(mounts []procfs.Mount, known map[string]bool, controllers, p string) (string, error) {
	want := strings.Split(controllers, ",")
	slices.Sort(want)
	for _, m := range mounts {
		switch {
		case controllers == "" && m.FsType == "cgroup2":
		case controllers != "" && m.FsType == "cgroup":
			var have []string
			for _, o := range strings.Split(m.SuperOptions, ",") {
				if known[o] || strings.HasPrefix(o, "name=") {
					have = append(have, o)
				}
			}
			slices.Sort(have)
			if !slices.Equal(have, want) {
				continue
			}
		default:
			continue
		}
		// A mount of a cgroup below the hierarchy's root shows that
		// cgroup as its root.
		if !strings.HasPrefix(p+"/", strings.TrimSuffix(m.Root, "/")+"/") {
			continue
		}
		return path.Join(m.MountPoint, strings.TrimPrefix(p, m.Root)), nil
	}
	return "", fmt.Errorf("no mount of cgroup hierarchy %s shows %s", hierarchyName(controllers), p)
}

// knownControllers are the cgroup v1 controllers of this kernel, the
// first column of /proc/cgroups (man 7 cgroups).
func knownControllers() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			known[f[0]] = true
		}
	}
	return known, nil
}

// makeDirs makes dir and its missing parents, adding each it made to
// made.
func makeDirs(dir string, made []string) ([]string, error) {
	if _, err := os.Stat(dir); err == nil {
		return made, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return made, err
	}
	made, err := makeDirs(path.Dir(dir), made)
	if err != nil {
		return made, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return made, err
	}
	return append(made, dir), nil
}
