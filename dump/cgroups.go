//go:build linux

package dump

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// Cgroups are restored relative to the dump's root process: the root
// lives in the cgroups of the restore that recreates it (a batch job's
// step, a service's), as its session and group are the restore's when
// led outside the dump; a process in a cgroup below the root's comes back
// in the same cgroup below the restore's (restorer/cgroups.go). So a
// process in a cgroup outside its root's could not come back where it
// was: it is refused.

// collectCgroups reads the process's cgroups and refuses a thread in
// other cgroups than its process (cgroup v1 moves threads one by one,
// man 7 cgroups; a restored thread is created in its process's).
func collectCgroups(pid int, tids []int) ([]*gocrpb.Cgroup, error) {
	lines, err := proc.ReadCgroups(pid, pid)
	if err != nil {
		return nil, err
	}
	for _, tid := range tids[1:] {
		own, err := proc.ReadCgroups(pid, tid)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(own, lines) {
			return nil, fmt.Errorf("thread %d is in other cgroups than its process: a thread's own cgroup is not restored", tid)
		}
	}
	var out []*gocrpb.Cgroup
	for _, l := range lines {
		out = append(out, &gocrpb.Cgroup{Controllers: l.Controllers, Path: l.Path})
	}
	return out, nil
}

// checkCgroups refuses a process whose cgroup in some hierarchy is not
// its root's or below it. states[0] is the root.
func checkCgroups(states []*state) error {
	root := states[0].task.Attrs
	if root == nil {
		return nil
	}
	base := map[string]string{}
	for _, cg := range root.Cgroups {
		base[cg.Controllers] = cg.Path
	}
	for _, st := range states[1:] {
		if st.task.Attrs == nil {
			continue // a zombie
		}
		for _, cg := range st.task.Attrs.Cgroups {
			b, ok := base[cg.Controllers]
			if !ok {
				return fmt.Errorf("dump pid %d: it is in cgroup hierarchy %q, which its root %d is not", st.task.Pid, cg.Controllers, states[0].task.Pid)
			}
			if !under(cg.Path, b) {
				return fmt.Errorf("dump pid %d: its cgroup %s:%s is outside its root's (%s): it would come back in the restore's cgroup, not its own", st.task.Pid, cg.Controllers, cg.Path, b)
			}
		}
	}
	return nil
}

// under tells whether cgroup path p is base or below it.
func under(p, base string) bool {
	return p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")
}
