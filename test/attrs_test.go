//go:build linux

package test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAttributes: a process's oom_score_adj, coredump_filter, autogroup
// nice, audit loginuid, THP disable, process-wide KSM, futex hash size and
// mlockall(MCL_FUTURE|MCL_ONFAULT), and each thread's I/O priority,
// timer slack, memory-error policy, TSC mode and NUMA memory policy come
// back as they were (the target checks each in the thread it belongs
// to; the oracle compares THP_enabled).
func TestAttributes(t *testing.T) {
	needsRoot(t)
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Skip("this kernel has no autogroups (CONFIG_SCHED_AUTOGROUP), which the attrs target sets")
	}
	if _, err := os.Stat("/proc/self/loginuid"); err != nil {
		t.Skip("this kernel has no audit (CONFIG_AUDIT), whose loginuid the attrs target sets")
	}
	if _, err := os.Stat("/proc/self/numa_maps"); err != nil {
		t.Skip("this kernel has no NUMA (CONFIG_NUMA), whose memory policy the attrs target sets")
	}
	if err := unix.Prctl(unix.PR_GET_MEMORY_MERGE, 0, 0, 0, 0); errors.Is(err, unix.EINVAL) {
		t.Skip("this kernel has no KSM (CONFIG_KSM), which the attrs target turns on")
	}
	tg := startTarget(t, "attrs")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestAttributeRefusals: attributes gocr does not restore are refused at
// the dump in one line naming them, and the process runs on as it was.
func TestAttributeRefusals(t *testing.T) {
	needsGocr(t)
	for _, c := range []struct {
		mode string
		want []string
		// lacks says why this machine cannot set the attribute up, or "".
		lacks func() string
		// leave: dumped with --leave-running, whose snapshot answers
		// what the frozen process is not asked (the NUMA policies).
		leave bool
	}{
		{"keyring", []string{"session keyring"}, needsKeys, false},
		{"threadkeyring", []string{"thread keyring"}, needsKeys, false},
		{"mbind", []string{"NUMA memory policy", "mbind"}, needsNuma, false},
		{"threadpolicy", []string{"thread", "NUMA memory policy"}, needsNuma, false},
		{"mbind", []string{"NUMA memory policy", "mbind"}, needsNuma, true},
		{"threadpolicy", []string{"thread", "NUMA memory policy"}, needsNuma, true},
		{"anonname", []string{"PR_SET_VMA_ANON_NAME"}, func() string {
			// The kernel checks CONFIG_ANON_VMA_NAME before the range
			// (kernel/sys.c prctl_set_vma): EINVAL without it, ENOMEM
			// for an empty range with it.
			if err := unix.Prctl(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, 0, 0, 0); errors.Is(err, unix.EINVAL) {
				return "this kernel cannot name anonymous mappings (CONFIG_ANON_VMA_NAME)"
			}
			return ""
		}, false},
		{"speculation", []string{"PR_SET_SPECULATION_CTRL"}, func() string {
			// PR_SPEC_PRCTL: a thread may change it (man 2
			// PR_GET_SPECULATION_CTRL).
			v, err := unix.PrctlRetInt(unix.PR_GET_SPECULATION_CTRL, unix.PR_SPEC_STORE_BYPASS, 0, 0, 0)
			if err != nil || v&unix.PR_SPEC_PRCTL == 0 {
				return "this CPU or kernel does not let a thread control speculative store bypass"
			}
			return ""
		}, false},
		{"sud", []string{"syscall user dispatch"}, func() string {
			// Linux 6.11 reads it back (PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG).
			var uts unix.Utsname
			unix.Uname(&uts)
			if !kernelAtLeast(unix.ByteSliceToString(uts.Release[:]), 6, 11) {
				return "this kernel cannot read syscall user dispatch back (Linux 6.11)"
			}
			return ""
		}, false},
		{"cpuid", []string{"CPUID faulting"}, func() string {
			b, err := os.ReadFile("/proc/cpuinfo")
			if err != nil || !strings.Contains(string(b), " cpuid_fault") {
				return "this CPU has no CPUID faulting (cpuinfo flag cpuid_fault)"
			}
			return ""
		}, false},
	} {
		name := c.mode
		args := []string{"dump", "-t", "", "-D", ""}
		if c.leave {
			name += "/leave-running"
			args = append(args, "--leave-running")
		}
		t.Run(name, func(t *testing.T) {
			if why := c.lacks(); why != "" {
				t.Skip(why)
			}
			tg := startTarget(t, "attrsrefused", c.mode)
			args := slices.Clone(args)
			args[2], args[4] = strconv.Itoa(tg.pid), t.TempDir()
			r := runGocr(t, nil, args...)
			assertRefused(t, r, c.want, nil)
			assertUntouched(t, tg.pid)
			checkResult(t, tg, tg.pid)
		})
	}
}

func needsKeys() string {
	if _, err := os.Stat("/proc/keys"); err != nil {
		return "this kernel has no keyrings (CONFIG_KEYS)"
	}
	return ""
}

func needsNuma() string {
	if _, err := os.Stat("/proc/self/numa_maps"); err != nil {
		return "this kernel has no NUMA (CONFIG_NUMA)"
	}
	return ""
}

// TestCgroups: a process in cgroups below its root's comes back in the
// same cgroups below the restore's, made again when they are gone: here
// a child in a cgroup v1 pids cgroup and in a cgroup v2 one, both removed
// between the dump and the restore.
func TestCgroups(t *testing.T) {
	needsGocr(t)
	var dirs []string
	for _, h := range []struct{ controllers, fstype string }{{"pids", "cgroup"}, {"", "cgroup2"}} {
		if dir := subCgroup(t, h.controllers, h.fstype); dir != "" {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		t.Skip("needs a cgroup v1 pids hierarchy or a cgroup v2 one mounted, to put a child in a cgroup of its own")
	}
	tg := startTarget(t, "cgroups", dirs...)
	pids := trackTree(t, tg.pid)
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of the tree of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	for _, d := range dirs {
		removeCgroup(t, d)
	}
	pid := restoreDetached(t, tg, dir, nil)
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the restore did not make cgroup %s again: %v", d, err)
		}
	}
	checkTreeView(t, pid, before, nil)
	checkResult(t, tg, pid)
}

// subCgroup makes a cgroup below the test's own in the hierarchy of the
// given controllers ("" for cgroup v2) mounted with fstype, and removes
// it at cleanup; "" if there is no such hierarchy here.
func subCgroup(t *testing.T, controllers, fstype string) string {
	t.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	found := false
	for _, line := range strings.Split(string(own), "\n") {
		_, rest, _ := strings.Cut(line, ":")
		ctl, p, ok := strings.Cut(rest, ":")
		if ok && ctl == controllers {
			path, found = p, true
		}
	}
	if !found {
		return ""
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 0 || sep+3 >= len(f) || f[sep+1] != fstype || f[3] != "/" {
			continue
		}
		if controllers != "" && !slices.Contains(strings.Split(f[sep+3], ","), controllers) {
			continue
		}
		dir := filepath.Join(f[4], path, "gocr-attrs-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Logf("cannot make cgroup %s: %v", dir, err)
			return ""
		}
		t.Cleanup(func() { removeCgroup(t, dir) })
		return dir
	}
	return ""
}

// removeCgroup removes an empty cgroup, waiting while the processes that
// were in it are still exiting (rmdir fails with EBUSY until then,
// Documentation/admin-guide/cgroup-v1/cgroups.rst).
func removeCgroup(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(pidGoneTimeout)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCgroupOutsideRootRefused: a process in a cgroup outside its root's
// could only come back in the restore's, so the dump refuses it, naming
// the cgroup, and the processes run on.
func TestCgroupOutsideRootRefused(t *testing.T) {
	needsGocr(t)
	dir := subCgroup(t, "pids", "cgroup")
	if dir == "" {
		if dir = subCgroup(t, "", "cgroup2"); dir == "" {
			t.Skip("needs a cgroup v1 pids hierarchy or a cgroup v2 one mounted, to move the root into a cgroup of its own")
		}
	}
	tg := startTarget(t, "cgroups")
	trackTree(t, tg.pid)
	// Only the root moves (cgroup.procs takes one process); its child
	// stays in the cgroup above.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(tg.pid)), 0); err != nil {
		t.Fatalf("move pid %d into cgroup %s: %v", tg.pid, dir, err)
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"cgroup", "outside its root's"}, nil)
	assertUntouched(t, tg.pid)
	checkResult(t, tg, tg.pid)
}

// kernelAtLeast tells whether release (uname -r) is major.minor or later.
func kernelAtLeast(release string, major, minor int) bool {
	var maj, min int
	fmt.Sscanf(release, "%d.%d", &maj, &min)
	return maj > major || maj == major && min >= minor
}
