//go:build linux

package dump

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gocr/gocr/proc"
)

// Where a snapshot cannot be had (snapshot.go): what it would cost in
// memory against the room there is, and which process would adopt it.

// anonBytes is the process's resident anonymous memory, from
// /proc/PID/statm: resident less shared (file and shmem) pages (man 5
// proc_pid_statm). It is what a snapshot can cost at most: each page is
// copied at most once, when the process first writes it.
func anonBytes(pid int) uint64 {
	b, err := proc.ReadAll(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0
	}
	res, err1 := strconv.ParseUint(f[1], 10, 64)
	shared, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || shared > res {
		return 0
	}
	return (res - shared) * pageSize
}

// whyNoSnapshot says why the process cannot be snapshotted, or "".
//   - A child subreaper, the process or one of its ancestors in the dump,
//     would adopt the snapshot process when the fork child that made it
//     exits (kernel/exit.c find_new_reaper walks up from the fork child's
//     parent): the job would see a child of its own.
//   - The pages the job writes while the snapshot holds the old ones are
//     copies, charged to the job's memory cgroup (mm/memory.c wp_page_copy,
//     mem_cgroup_charge): where a memory cgroup's limit, or the machine's
//     available memory, leaves less room than the job's anonymous memory,
//     the snapshot could push the job into an OOM killer.
//
// room is whyNoRoom(pid), read beside the tracer thread (beside.go).
func whyNoSnapshot(ctx context.Context, pid int, sr *subreapers, room func() string) (string, error) {
	adopter, err := sr.adopter(ctx, pid)
	if err != nil {
		return "", err
	}
	if adopter == pid {
		return "it is a child subreaper, which would adopt the snapshot process", nil
	}
	if adopter != 0 {
		return fmt.Sprintf("pid %d of the dump, a child subreaper, would adopt the snapshot process", adopter), nil
	}
	if room == nil {
		return whyNoRoom(pid), nil
	}
	return room(), nil
}

// whyNoRoom says why the snapshot of pid would not fit, or "".
func whyNoRoom(pid int) string {
	need := anonBytes(pid)
	if avail, err := memAvailable(); err != nil {
		return fmt.Sprintf("the memory available is unknown: %v", err)
	} else if avail < need {
		return fmt.Sprintf("%d bytes of memory are available, the snapshot may need %d", avail, need)
	}
	room, where, err := memcgRoom(pid)
	if err != nil {
		return fmt.Sprintf("its memory cgroup's room is unknown: %v", err)
	}
	if where != "" && room < need {
		return fmt.Sprintf("memory cgroup %s has %d bytes free below its limit, the snapshot may need %d", where, room, need)
	}
	return ""
}

// memAvailable is MemAvailable of /proc/meminfo: what the kernel
// estimates can be allocated without swapping (man 5 proc_meminfo).
func memAvailable() (uint64, error) {
	b, err := proc.ReadAll("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable line")
}

// memcgRoom is the least room left below a memory limit in the process's
// memory cgroup and its ancestors, and the cgroup that has it; "" where
// none has a limit. cgroup v2 shows memory.max and memory.current
// (Documentation/admin-guide/cgroup-v2.rst), v1 memory.limit_in_bytes
// and memory.usage_in_bytes (cgroup-v1/memory.rst), each hierarchy
// mounted under /sys/fs/cgroup as systemd and Debian do.
func memcgRoom(pid int) (uint64, string, error) {
	b, err := proc.ReadAll(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, "", err
	}
	var least uint64
	var where string
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controllers:path (man 7 cgroups)
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var root, maxName, curName string
		switch {
		case f[0] == "0" && f[1] == "":
			root, maxName, curName = "/sys/fs/cgroup", "memory.max", "memory.current"
		case slices.Contains(strings.Split(f[1], ","), "memory"):
			root, maxName, curName = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		for p := filepath.Join(root, f[2]); ; p = filepath.Dir(p) {
			room, limited, err := cgroupRoom(p, maxName, curName)
			if err != nil {
				return 0, "", err
			}
			if limited && (where == "" || room < least) {
				least, where = room, p
			}
			if p == root || !strings.HasPrefix(p, root) {
				break
			}
		}
	}
	return least, where, nil
}

// noLimit is where a v1 limit means none: the kernel shows "no limit" as
// the largest page-aligned counter (PAGE_COUNTER_MAX), above 2^62.
const noLimit = 1 << 62

// cgroupRoom reads one cgroup's memory limit and use; limited is false
// where it has none (or no such files: not that hierarchy's).
func cgroupRoom(dir, maxName, curName string) (room uint64, limited bool, err error) {
	max, err := os.ReadFile(filepath.Join(dir, maxName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(max))
	if s == "max" {
		return 0, false, nil
	}
	limit, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, maxName, err)
	}
	if limit >= noLimit {
		return 0, false, nil
	}
	cur, err := os.ReadFile(filepath.Join(dir, curName))
	if err != nil {
		return 0, false, err
	}
	used, err := strconv.ParseUint(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, curName, err)
	}
	if limit > used {
		room = limit - used
	}
	return room, true, nil
}

// subreapers says which of the dumped processes are child subreapers,
// each known once its parasite has read its state (or failed to).
type subreapers struct {
	parent map[int]int // the dumped processes' parents
	known  map[int]chan struct{}
	mu     sync.Mutex
	is     map[int]bool
}

func newSubreapers(states []*state) *subreapers {
	sr := &subreapers{parent: map[int]int{}, known: map[int]chan struct{}{}, is: map[int]bool{}}
	for _, st := range states {
		pid := int(st.task.Pid)
		sr.parent[pid] = int(st.task.Ppid)
		sr.known[pid] = make(chan struct{})
		if st.mm == nil {
			// A zombie adopts nothing: its children went on its exit.
			sr.set(pid, false)
		}
	}
	return sr
}

// set records once whether pid is a child subreaper; unknown counts as
// one.
func (sr *subreapers) set(pid int, is bool) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	select {
	case <-sr.known[pid]:
	default:
		sr.is[pid] = is
		close(sr.known[pid])
	}
}

// adopter is the dumped process that would adopt an orphan of pid's: pid
// itself or its nearest ancestor in the dump that is a child subreaper,
// or 0. It waits until each one's flag is known: every ancestor's
// capture started before pid's (captureAll goes down the tree in order).
func (sr *subreapers) adopter(ctx context.Context, pid int) (int, error) {
	if sr == nil {
		return 0, fmt.Errorf("no subreaper flags for pid %d", pid)
	}
	for p := pid; ; p = sr.parent[p] {
		ch, in := sr.known[p]
		if !in {
			return 0, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		sr.mu.Lock()
		is := sr.is[p]
		sr.mu.Unlock()
		if is {
			return p, nil
		}
	}
}
