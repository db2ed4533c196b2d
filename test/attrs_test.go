//go:build linux

package test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

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
	}{
		{"keyring", []string{"session keyring"}, func() string {
			if _, err := os.Stat("/proc/keys"); err != nil {
				return "this kernel has no keyrings (CONFIG_KEYS)"
			}
			return ""
		}},
		{"mbind", []string{"NUMA memory policy", "mbind"}, needsNuma},
		{"threadpolicy", []string{"thread", "NUMA memory policy"}, needsNuma},
		{"anonname", []string{"PR_SET_VMA_ANON_NAME"}, func() string {
			// The kernel checks CONFIG_ANON_VMA_NAME before the range
			// (kernel/sys.c prctl_set_vma): EINVAL without it, ENOMEM
			// for an empty range with it.
			if err := unix.Prctl(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, 0, 0, 0); errors.Is(err, unix.EINVAL) {
				return "this kernel cannot name anonymous mappings (CONFIG_ANON_VMA_NAME)"
			}
			return ""
		}},
		{"speculation", []string{"PR_SET_SPECULATION_CTRL"}, func() string {
			// PR_SPEC_PRCTL: a thread may change it (man 2
			// PR_GET_SPECULATION_CTRL).
			v, err := unix.PrctlRetInt(unix.PR_GET_SPECULATION_CTRL, unix.PR_SPEC_STORE_BYPASS, 0, 0, 0)
			if err != nil || v&unix.PR_SPEC_PRCTL == 0 {
				return "this CPU or kernel does not let a thread control speculative store bypass"
			}
			return ""
		}},
		{"cpuid", []string{"CPUID faulting"}, func() string {
			b, err := os.ReadFile("/proc/cpuinfo")
			if err != nil || !strings.Contains(string(b), " cpuid_fault") {
				return "this CPU has no CPUID faulting (cpuinfo flag cpuid_fault)"
			}
			return ""
		}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			if why := c.lacks(); why != "" {
				t.Skip(why)
			}
			tg := startTarget(t, "attrs", c.mode)
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, c.want, nil)
			assertUntouched(t, tg.pid)
			checkResult(t, tg, tg.pid)
		})
	}
}

func needsNuma() string {
	if _, err := os.Stat("/proc/self/numa_maps"); err != nil {
		return "this kernel has no NUMA (CONFIG_NUMA)"
	}
	return ""
}
