//go:build linux

package test

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// processAttrFiles are the /proc/PID files of process attributes the
// restore sets again (man 5 proc); a kernel without one (CONFIG_AUDIT)
// lacks its file. A test's root is restored in gocr's cgroups, which are
// the test's, as the target's were. sessionid is left out: the kernel gives a new one
// whenever the loginuid is set (kernel/auditsc.c audit_set_loginuid).
var processAttrFiles = []string{"oom_score_adj", "coredump_filter", "loginuid", "cgroup"}

// addAttrs records the process attributes /proc shows: the files above
// and the nice of its autogroup (its number is new after a restore).
func addAttrs(v kernelView, base string) error {
	for _, name := range processAttrFiles {
		b, err := os.ReadFile(filepath.Join(base, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		v[name] = strings.TrimSpace(string(b))
	}
	// The default autogroup shows as empty text, of nice 0 (see
	// proc.ReadAutogroupNice).
	b, err := os.ReadFile(filepath.Join(base, "autogroup"))
	if err == nil {
		v["autogroup nice"] = "0"
		if _, nice, ok := strings.Cut(strings.TrimSpace(string(b)), " nice "); ok {
			v["autogroup nice"] = nice
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// addThreadAttrs records a thread's timer slack (/proc/TID/timerslack_ns:
// /proc resolves a TID too) and the NUMA memory policy of its first
// mapping, which is the thread's own unless the mapping has one
// (fs/proc/task_mmu.c show_numa_map).
func addThreadAttrs(v kernelView, base, tid string) error {
	prefix := "task/" + tid + "/"
	b, err := os.ReadFile(filepath.Join("/proc", tid, "timerslack_ns"))
	if err != nil {
		return err
	}
	v[prefix+"timerslack_ns"] = strings.TrimSpace(string(b))
	f, err := os.Open(filepath.Join(base, "task", tid, "numa_maps"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 {
			v[prefix+"numa policy"] = fields[1]
		}
	}
	return sc.Err()
}
