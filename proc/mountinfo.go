//go:build linux

package proc

import (
	"fmt"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (man 5 proc_pid_mountinfo),
// without what differs between copies of one mount in two namespaces
// (the mount IDs and the propagation fields).
type Mount struct {
	Dev        string // major:minor of the file system
	Root       string // the directory of the file system mounted
	MountPoint string
	Options    string // per-mount options
	FsType     string
	Source     string
	// SuperOptions are the file system's own options (for a cgroup v1
	// hierarchy, its controllers).
	SuperOptions string
}

// ReadMounts reads the mounts of pid's mount namespace.
func ReadMounts(pid int) ([]Mount, error) {
	b, err := ReadAll(pidPath(pid, "mountinfo"))
	if err != nil {
		return nil, wrapErr(pid, "read mountinfo", err)
	}
	return ParseMounts(string(b))
}

// ParseMounts parses mountinfo text: six fields, optional fields up to a
// lone "-", then the file system type, the source and the super block
// options.
func ParseMounts(s string) ([]Mount, error) {
	var out []Mount
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed", i+1)
		}
		m := Mount{Dev: f[2], Root: f[3], MountPoint: f[4], Options: f[5], FsType: f[sep+1], Source: f[sep+2]}
		if sep+3 < len(f) {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// MountIDs reads the mount IDs of pid's mount namespace, the first
// field of each mountinfo line (man 5 proc_pid_mountinfo). A file on a
// mount missing from them is on one no path reaches: an internal mount
// (a POSIX message queue's) or a detached one (open_tree, fsmount).
func MountIDs(pid int) (map[int]bool, error) {
	b, err := ReadAll(pidPath(pid, "mountinfo"))
	if err != nil {
		return nil, wrapErr(pid, "read mountinfo", err)
	}
	ids := map[int]bool{}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		id, _, _ := strings.Cut(line, " ")
		n, ok := decIntN([]byte(id))
		if !ok {
			return nil, fmt.Errorf("mountinfo line %d: malformed mount ID %q", i+1, id)
		}
		ids[n] = true
	}
	return ids, nil
}
