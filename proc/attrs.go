//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotShown means the kernel does not show the attribute: the file
// is missing (a kernel without the feature) or reading it fails with
// EINVAL (fs/proc/base.c: /proc/PID/attr/* without an LSM).
var ErrNotShown = errors.New("not shown by this kernel")

// readAttr reads /proc/PID/name trimmed of its newline.
func readAttr(pid int, name string) (string, error) {
	b, err := ReadAll(pidPath(pid, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && Exists(pid) || errors.Is(err, syscall.EINVAL) {
			return "", fmt.Errorf("/proc/%d/%s: %w", pid, name, ErrNotShown)
		}
		return "", wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	return strings.TrimRight(string(b), "\n\x00"), nil
}

func readAttrInt(pid int, name string, base int, bits int) (int64, error) {
	s, err := readAttr(pid, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, base, bits)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/%s: %q is not a number", pid, name, s)
	}
	return n, nil
}

// ReadOomScoreAdj reads /proc/PID/oom_score_adj, -1000..1000 (man 5
// proc_pid_oom_score_adj).
func ReadOomScoreAdj(pid int) (int32, error) {
	n, err := readAttrInt(pid, "oom_score_adj", 10, 16)
	return int32(n), err
}

// ReadCoredumpFilter reads /proc/PID/coredump_filter, a bit mask printed
// in hexadecimal (man 5 core, "Controlling which mappings are written to
// the core dump").
func ReadCoredumpFilter(pid int) (uint32, error) {
	n, err := readAttrInt(pid, "coredump_filter", 16, 33)
	return uint32(n), err
}

// ReadAutogroupNice reads the nice of the process's autogroup from
// /proc/PID/autogroup, "/autogroup-N nice X" (man 7 sched, "The
// autogroup feature"). ErrNotShown: a kernel without
// CONFIG_SCHED_AUTOGROUP.
//
// A process whose line of ancestors never called setsid since boot (a
// batch system's runner may be one) is in init's default autogroup, for
// which the file is empty: proc_sched_autogroup_show_task prints only
// for an autogroup with a task group of its own (kernel/sched/autogroup.c).
// Its nice is 0, and stays 0: the default one's task group is the root
// one, whose weight cannot be changed (sched_group_set_shares in
// kernel/sched/fair.c refuses it).
func ReadAutogroupNice(pid int) (int32, error) {
	s, err := readAttr(pid, "autogroup")
	if err != nil {
		return 0, err
	}
	n, ok := parseAutogroupNice(s)
	if !ok {
		return 0, fmt.Errorf("/proc/%d/autogroup: %q is not \"/autogroup-N nice X\"", pid, s)
	}
	return n, nil
}

// parseAutogroupNice reads the nice from /proc/PID/autogroup's text,
// 0 for the default autogroup's empty one.
func parseAutogroupNice(s string) (int32, bool) {
	if s == "" {
		return 0, true
	}
	_, after, ok := strings.Cut(s, " nice ")
	n, err := strconv.ParseInt(after, 10, 32)
	if !ok || err != nil {
		return 0, false
	}
	return int32(n), true
}

// ReadAuditIds reads /proc/PID/loginuid and /proc/PID/sessionid
// (kernel/audit.c; 4294967295, AUDIT_UID_UNSET, when unset).
// ErrNotShown: a kernel without CONFIG_AUDIT.
func ReadAuditIds(pid int) (loginuid, sessionid uint32, err error) {
	l, err := readAttrInt(pid, "loginuid", 10, 64)
	if err != nil {
		return 0, 0, err
	}
	s, err := readAttrInt(pid, "sessionid", 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return uint32(l), uint32(s), nil
}

// ReadLSMLabel reads /proc/PID/attr/current, the task's LSM security
// label (man 5 proc_pid_attr). ErrNotShown: no LSM that keeps one.
func ReadLSMLabel(pid int) (string, error) {
	return readAttr(pid, "attr/current")
}

// Speculation is a thread's speculation control lines of
// /proc/TID/status (fs/proc/array.c task_seccomp), which show what
// PR_SET_SPECULATION_CTRL set (man 2 PR_SET_SPECULATION_CTRL).
type Speculation struct {
	StoreBypass, IndirectBranch string
}

// ReadSpeculation reads the thread's speculation control lines.
func ReadSpeculation(tid int) (Speculation, error) {
	b, err := readFile(tid, "status")
	if err != nil {
		return Speculation{}, err
	}
	var sp Speculation
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Speculation_Store_Bypass":
			sp.StoreBypass = strings.TrimSpace(v)
		case "SpeculationIndirectBranch":
			sp.IndirectBranch = strings.TrimSpace(v)
		}
	}
	return sp, nil
}

// NumaPolicy is the memory policy /proc/PID/numa_maps shows for one
// mapping: the mapping's own (mbind), else the thread's
// (fs/proc/task_mmu.c show_numa_map; mm/mempolicy.c mpol_to_str).
type NumaPolicy struct {
	Start  uint64
	Policy string
}

// ReadNumaPolicies reads /proc/PID/task/TID/numa_maps, the policy of
// each mapping as thread tid sees it; at most max mappings if max > 0
// (the kernel walks each mapping's pages to count them, so reading one
// line costs less than reading all). ErrNotShown: a kernel without
// CONFIG_NUMA.
func ReadNumaPolicies(pid, tid, max int) ([]NumaPolicy, error) {
	name := "task/" + strconv.Itoa(tid) + "/numa_maps"
	f, err := os.Open(pidPath(pid, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && Exists(tid) {
			return nil, fmt.Errorf("/proc/%d/%s: %w", pid, name, ErrNotShown)
		}
		return nil, wrapErr(pid, "open /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	defer f.Close()
	var r io.Reader = f
	if max > 0 {
		// A read makes the kernel print as many mappings as fill it
		// (fs/seq_file.c seq_read_iter), each a walk of its pages.
		r = smallReads{f, 256}
	}
	out, err := ParseNumaPolicies(r, max)
	if err != nil {
		return nil, wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/"+name, err)
	}
	return out, nil
}

// smallReads reads at most n bytes at a time from a seq_file: less than
// one mapping's text, so that the kernel prints no mapping before the
// reader asks for it (ReadVmFlagsAt).
type smallReads struct {
	r io.Reader
	n int
}

func (s smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }

// ParseNumaPolicies parses numa_maps lines, "ADDRESS POLICY KEY=VALUE..."
// (man 7 numa). A policy may hold a space ("prefer (many):0-1"), so it
// runs up to the first word, other than its own parts, that is a
// key=value pair or one of the flags the kernel prints without a value
// (heap, stack, huge).
func ParseNumaPolicies(r io.Reader, max int) ([]NumaPolicy, error) {
	var out []NumaPolicy
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		words := bytes.Fields(sc.Bytes())
		if len(words) < 2 {
			return nil, fmt.Errorf("numa_maps line %q: no policy", sc.Text())
		}
		start, err := strconv.ParseUint(string(words[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("numa_maps line %q: bad address", sc.Text())
		}
		policy := string(words[1])
		for _, w := range words[2:] {
			if bytes.IndexByte(w, '=') >= 0 && w[0] != '(' {
				break
			}
			if s := string(w); s == "heap" || s == "stack" || s == "huge" {
				break
			}
			policy += " " + string(w)
		}
		out = append(out, NumaPolicy{Start: start, Policy: policy})
		if max > 0 && len(out) == max {
			break
		}
	}
	return out, sc.Err()
}

// ReadVmFlagsAt reads the smaps VmFlags of the mapping that starts at
// start. smaps is read only as far as that mapping, in reads smaller
// than one mapping's entry: the kernel walks a mapping's page tables as
// it prints its entry (fs/proc/task_mmu.c show_smap), and prints the
// next entry only once the previous one is read and more is asked for
// (fs/seq_file.c seq_read_iter). So only the mappings up to start, and
// the one after it (printed by the read that finishes start's), are
// walked, whatever comes after.
func ReadVmFlagsAt(pid int, start uint64) ([]string, error) {
	f, err := os.Open(pidPath(pid, "smaps"))
	if err != nil {
		return nil, wrapErr(pid, "open /proc/"+strconv.Itoa(pid)+"/smaps", err)
	}
	defer f.Close()
	flags, err := vmFlagsAt(smallReads{f, 512}, start)
	if err != nil {
		return nil, wrapErr(pid, "read /proc/"+strconv.Itoa(pid)+"/smaps", err)
	}
	if flags == nil {
		return nil, fmt.Errorf("/proc/%d/smaps has no VmFlags for a mapping at %#x", pid, start)
	}
	return flags, nil
}

// vmFlagsAt reads smaps text up to the VmFlags line of the entry of the
// mapping at start, and no further; nil if it has none.
func vmFlagsAt(r io.Reader, start uint64) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		// An entry starts with its mapping's maps line, "START-END ...";
		// its other lines are "Key: value".
		addr, _, ok := strings.Cut(line, "-")
		if ok && !strings.Contains(addr, ":") {
			if a, err := strconv.ParseUint(addr, 16, 64); err == nil {
				if in || a > start {
					break
				}
				in = a == start
				continue
			}
		}
		if !in {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			return append([]string{}, strings.Fields(rest)...), nil
		}
	}
	return nil, sc.Err()
}

// CgroupLine is one line of /proc/PID/cgroup, "ID:CONTROLLERS:PATH"
// (man 7 cgroups): a hierarchy's controllers (or "name=NAME", or "" for
// cgroup v2) and the process's cgroup in it.
type CgroupLine struct {
	Controllers, Path string
}

// ReadCgroups reads /proc/PID/task/TID/cgroup.
func ReadCgroups(pid, tid int) ([]CgroupLine, error) {
	name := "task/" + strconv.Itoa(tid) + "/cgroup"
	b, err := readFile(pid, name)
	if err != nil {
		return nil, err
	}
	return ParseCgroups(b)
}

// ParseCgroups parses /proc/PID/cgroup. A path may hold ':', so each line
// is cut at its first two.
func ParseCgroups(b []byte) ([]CgroupLine, error) {
	var out []CgroupLine
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		_, rest, ok1 := strings.Cut(line, ":")
		ctl, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("cgroup line %q is not ID:CONTROLLERS:PATH", line)
		}
		out = append(out, CgroupLine{Controllers: ctl, Path: path})
	}
	return out, nil
}
