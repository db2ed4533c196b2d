//go:build linux

package test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The oracle: what the kernel shows of a target process and its threads,
// read before the dump and after the restore and compared, so that state
// no target checks by itself cannot be dropped unseen. docs/STATE.md says
// what is compared and why the rest is not. A target that changes some of
// it on its own while it waits (a counter writing its log, a timer
// ticking) names those keys in cycleOpts.volatile.

// kernelView is that state, flat: key -> what the kernel shows.
type kernelView map[string]string

// stableStatus are the /proc/PID/status lines a restore must give back
// (man 5 proc); the others count time, memory use or context switches.
var stableStatus = []string{
	"Name", "Umask", "Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "SigBlk", "SigIgn", "SigCgt",
	"Threads", "Cpus_allowed_list", "Mems_allowed_list", "THP_enabled",
	"Speculation_Store_Bypass", "SpeculationIndirectBranch",
}

// stableThreadStatus are those that are a thread's own.
var stableThreadStatus = []string{"Name", "SigBlk", "Cpus_allowed_list", "CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"}

// statFields are /proc/PID/stat fields by number (man 5 proc): nice,
// exit_signal, rt_priority, policy.
var statFields = map[string]int{"nice": 19, "exit_signal": 38, "rt_priority": 40, "policy": 41}

var (
	// Inode numbers of anonymous inodes and pipes are new after a
	// restore; what they point at is compared by kind.
	anonInode = regexp.MustCompile(`:\[\d+\]`)
	inoField  = regexp.MustCompile(`\b(ino|sdev):\s*[0-9a-f]+`)
)

func readKernelView(pid int) (kernelView, error) {
	v := kernelView{}
	base := fmt.Sprintf("/proc/%d", pid)
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(base, name))
		return string(b), err
	}
	status, err := read("status")
	if err != nil {
		return nil, err
	}
	addStatus(v, "status/", status, stableStatus)
	stat, err := read("stat")
	if err != nil {
		return nil, err
	}
	// Fields after the comm, which may hold spaces: field 3 is first.
	rest := strings.Fields(stat[strings.LastIndexByte(stat, ')')+2:])
	for name, n := range statFields {
		if n-3 < len(rest) {
			v["stat/"+name] = rest[n-3]
		}
	}
	for _, name := range []string{"limits", "personality", "timers", "cmdline", "environ"} {
		s, err := read(name)
		if err != nil {
			return nil, err
		}
		v[name] = s
	}
	if err := addAttrs(v, base); err != nil {
		return nil, err
	}
	for _, link := range []string{"cwd", "root", "exe"} {
		s, err := os.Readlink(filepath.Join(base, link))
		if err != nil {
			return nil, err
		}
		v[link] = s
	}
	if err := addSmaps(v, base); err != nil {
		return nil, err
	}
	if err := addFds(v, base); err != nil {
		return nil, err
	}
	tasks, err := os.ReadDir(filepath.Join(base, "task"))
	if err != nil {
		return nil, err
	}
	for _, e := range tasks {
		s, err := read(filepath.Join("task", e.Name(), "status"))
		if threadEnded(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		prefix := "task/" + e.Name() + "/"
		addStatus(v, prefix, s, stableThreadStatus)
		if err := addThreadAttrs(v, base, e.Name()); threadEnded(err) {
			for k := range v {
				if strings.HasPrefix(k, prefix) {
					delete(v, k)
				}
			}
		} else if err != nil {
			return nil, err
		}
	}
	return v, nil
}

// threadEnded tells whether err is that of a /proc file of a thread that
// ended after its task directory was listed (ENOENT, or ESRCH from a
// file of an exiting task: fs/proc/base.c). A thread the restore lost
// still shows: its keys are missing after.
func threadEnded(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

func addStatus(v kernelView, prefix, status string, keep []string) {
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, val, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(val)
		}
	}
	for _, k := range keep {
		if val, ok := fields[k]; ok {
			v[prefix+k] = val
		}
	}
}

// addSmaps records each mapping's range, protection, offset, path and
// VmFlags (not its device and inode, new for anonymous shared memory).
func addSmaps(v kernelView, base string) error {
	b, err := os.ReadFile(filepath.Join(base, "smaps"))
	if err != nil {
		return err
	}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			cur = "maps/" + f[0]
			v[cur] = f[1] + " " + f[2] + " " + strings.Join(f[5:], " ")
		case len(f) > 0 && f[0] == "VmFlags:" && cur != "":
			// Without "sd": soft-dirty is tracking state, which gocr
			// does not restore (dump/vmflags.go). The kernel marks
			// every new mapping soft-dirty, so a restored one has it
			// where the original had lost it, as the stack does when
			// exec sets its flags (Documentation/admin-guide/mm/
			// soft-dirty.rst); kernels without CONFIG_MEM_SOFT_DIRTY
			// show no "sd" at all.
			v[cur+"/VmFlags"] = strings.Join(slices.DeleteFunc(f[1:], func(s string) bool { return s == "sd" }), " ")
		}
	}
	return nil
}

// addFds records each fd's link (anonymous inode numbers blanked) and its
// fdinfo: flags, position (volatile for a file being written), locks and
// the kind's own lines (inode numbers blanked), without mnt_id and ino.
func addFds(v kernelView, base string) error {
	entries, err := os.ReadDir(filepath.Join(base, "fd"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		key := "fd/" + e.Name()
		link, err := os.Readlink(filepath.Join(base, "fd", e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		v[key] = anonInode.ReplaceAllString(link, ":[]")
		info, err := os.ReadFile(filepath.Join(base, "fdinfo", e.Name()))
		if err != nil {
			continue
		}
		var rest []string
		for _, line := range strings.Split(strings.TrimSpace(string(info)), "\n") {
			k, val, _ := strings.Cut(line, ":")
			val = strings.TrimSpace(val)
			switch k {
			case "pos", "flags":
				v[key+"/"+k] = val
			case "mnt_id", "ino", "eventfd-id", "it_value", "ticks":
				// eventfd-id is a number the kernel hands out
				// system-wide (fs/eventfd.c); nothing sets it. A
				// timerfd's time left and expirations move with
				// time (fs/timerfd.c timerfd_show); its clock,
				// interval and flags are compared.
			case "lock":
				// "1: POSIX ..." numbers locks in list order.
				_, l, _ := strings.Cut(val, ": ")
				rest = append(rest, "lock: "+strings.TrimSpace(l))
			default:
				rest = append(rest, inoField.ReplaceAllString(line, "$1:"))
			}
		}
		sort.Strings(rest)
		v[key+"/info"] = strings.Join(rest, "\n")
	}
	return nil
}

// treeView is the kernelView of every process of a dumped tree, by PID:
// the restore gives each process its PID back, so each is compared with
// itself, and nothing dropped in a child goes unseen.
type treeView map[int]kernelView

// readTreeView reads the view of root and of each of its descendants. A
// zombie shows nothing but that it is one (its fds, maps and links are
// gone: man 5 proc), so that is all it is compared by.
// readSettledTreeView reads the tree's view once two reads 100 ms apart
// agree (at most 5 s), for a job that goes on with work after the step
// the test waited for (a server finishing with a client), which the
// dump would otherwise find done and the view from before not.
func readSettledTreeView(t *testing.T, root int) (treeView, error) {
	t.Helper()
	prev, err := readTreeView(t, root)
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		var cur treeView
		if cur, err = readTreeView(t, root); err == nil && cmp.Equal(cur, prev) {
			return cur, nil
		}
		prev = cur
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the view of pid %d's tree still changed after 5 s", root)
}

func readTreeView(t *testing.T, root int) (treeView, error) {
	t.Helper()
	tv := treeView{}
	for _, e := range treeEntries(t, root) {
		if e.state == "Z" {
			tv[e.pid] = kernelView{"state": "Z"}
			continue
		}
		v, err := readKernelView(e.pid)
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", e.pid, err)
		}
		tv[e.pid] = v
	}
	if len(tv) == 0 {
		return nil, fmt.Errorf("pid %d: no such process", root)
	}
	return tv, nil
}

// checkTreeView compares the view of the tree under root after a restore
// with before, process by process, but for the volatile keys (each a key
// or a key prefix ending in "/"), which apply to every process.
func checkTreeView(t *testing.T, root int, before treeView, volatile []string) {
	t.Helper()
	// A restored thread that was interrupted in a wait returns to it on
	// its own after the release (sigwaitinfo, for one, shows its wait's
	// mask in SigBlk only while inside: kernel/signal.c
	// do_sigtimedwait), so the view is read again until it matches, for
	// a moment; what a restore got wrong stays.
	settleViews(t, func() (treeView, error) { return readTreeView(t, root) }, root, before, volatile)
}

// checkProcessViews is checkTreeView for some processes of a tree only,
// for a tree whose other processes come and go (a shell's short-lived
// children).
func checkProcessViews(t *testing.T, before treeView, volatile []string) {
	t.Helper()
	read := func() (treeView, error) {
		tv := treeView{}
		for pid := range before {
			v, err := readKernelView(pid)
			if err != nil {
				return nil, fmt.Errorf("pid %d: %w", pid, err)
			}
			tv[pid] = v
		}
		return tv, nil
	}
	settleViews(t, read, 0, before, volatile)
}

// readProcessViews reads the view of each of pids, as checkProcessViews
// compares it.
func readProcessViews(t *testing.T, pids ...int) treeView {
	t.Helper()
	tv := treeView{}
	for _, pid := range pids {
		v, err := readKernelView(pid)
		if err != nil {
			t.Fatalf("read what the kernel shows of pid %d: %v", pid, err)
		}
		tv[pid] = v
	}
	return tv
}

// settleViews compares what read returns with before until it matches
// or settleTimeout has passed (see checkTreeView), and fails the test
// with the differences then.
func settleViews(t *testing.T, read func() (treeView, error), root int, before treeView, volatile []string) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		after, err := read()
		if err != nil {
			t.Fatalf("read what the kernel shows of the restored processes: %v", err)
		}
		diffs := treeViewDiffs(root, before, after, volatile)
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range diffs {
				t.Error(d)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settleTimeout is how long checkTreeView waits for a restored tree to
// match the view from before the dump.
const settleTimeout = 3 * time.Second

// treeViewDiffs says how the view after differs from before, one message
// a process.
func treeViewDiffs(root int, before, after treeView, volatile []string) []string {
	drop := func(tv treeView) treeView {
		out := treeView{}
		for pid, v := range tv {
			c := kernelView{}
			for k, val := range v {
				keep := true
				for _, vol := range volatile {
					if k == vol || (strings.HasSuffix(vol, "/") && strings.HasPrefix(k, vol)) {
						keep = false
					}
				}
				if keep {
					c[k] = val
				}
			}
			out[pid] = c
		}
		return out
	}
	b, a := drop(before), drop(after)
	pids := func(tv treeView) []int {
		var ps []int
		for pid := range tv {
			ps = append(ps, pid)
		}
		sort.Ints(ps)
		return ps
	}
	var diffs []string
	if d := cmp.Diff(pids(b), pids(a)); d != "" {
		diffs = append(diffs, fmt.Sprintf("tree of pid %d: other processes after the restore (-before +after):\n%s", root, d))
	}
	for _, pid := range pids(b) {
		if _, ok := a[pid]; !ok {
			continue
		}
		if d := cmp.Diff(b[pid], a[pid]); d != "" {
			diffs = append(diffs, fmt.Sprintf("pid %d: what the kernel shows changed across dump and restore (-before +after):\n%s", pid, d))
		}
	}
	return diffs
}
