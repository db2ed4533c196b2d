//go:build linux

package dump

import (
	"fmt"
	"os"
	"slices"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// A snapshot dump reads smaps before the freeze. /proc/PID/smaps walks
// every page table to count what each mapping holds
// (fs/proc/task_mmu.c show_smap): about 15 ms per GiB here, more under
// load, which a frozen job would wait for while it is only read for the
// mappings' flags. /proc/PID/maps, read while frozen, shows the layout
// without walking anything; the snapshot process shows the flags at the
// instant of the fork, which must then be the ones read before
// (checkFlagsBefore), or the dump fails. The flags are read while frozen
// after all where the snapshot cannot vouch for them: a mapping fork
// leaves out (MADV_DONTFORK), or locked memory (fork does not inherit
// mlock: mm/mmap.c dup_mmap clears VM_LOCKED_MASK).

// preReadMaps is each process's smaps, read before the freeze.
type preReadMaps map[int][]proc.Mapping

// preReadTree reads the smaps of root and its descendants as they are
// now. A process it misses has its smaps read while frozen.
func preReadTree(root int) preReadMaps {
	pre := preReadMaps{}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		if ms, err := proc.ReadMaps(pids[i]); err == nil {
			pre[pids[i]] = ms
		}
		children, _ := proc.Children(pids[i])
		pids = append(pids, children...)
	}
	return pre
}

// mapsAtFreeze returns the frozen process's mappings with their flags,
// and whether the flags are the ones read before the freeze (still to be
// checked against the instant's). status is the process's
// /proc/PID/status, read while it is frozen.
func (pre preReadMaps) mapsAtFreeze(pid int, status *proc.Status) ([]proc.Mapping, bool, error) {
	before, ok := pre[pid]
	if ok {
		if !status.HasVmLck {
			return nil, false, fmt.Errorf("/proc/%d/status has no VmLck line", pid)
		}
		now, err := readPlainMaps(pid)
		if err != nil {
			return nil, false, err
		}
		if status.VmLck == 0 && sameLayout(before, now) && !slices.ContainsFunc(before, func(m proc.Mapping) bool {
			return m.HasVmFlag("dc") || m.HasVmFlag("lo")
		}) {
			return before, true, nil
		}
	}
	ms, err := proc.ReadMaps(pid)
	return ms, false, err
}

func readPlainMaps(pid int) ([]proc.Mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := proc.ParseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/maps: %w", pid, err)
	}
	return ms, nil
}

// sameLayout says whether two readings show the same mappings, flags
// aside.
func sameLayout(a, b []proc.Mapping) bool {
	return slices.EqualFunc(a, b, func(x, y proc.Mapping) bool {
		x.VmFlags, y.VmFlags = nil, nil
		return x.Start == y.Start && x.End == y.End && x.Prot == y.Prot && x.Shared == y.Shared &&
			x.Offset == y.Offset && x.Major == y.Major && x.Minor == y.Minor && x.Inode == y.Inode &&
			x.Path == y.Path && x.Deleted == y.Deleted
	})
}

// checkFlagsBefore compares the flags mm holds, read before the freeze,
// with those at the instant: smaps of the process still frozen, or of
// its snapshot (whose mappings are the process's at the fork, but for
// gocr's region; locked and MADV_DONTFORK memory never comes here:
// mapsAtFreeze).
func checkFlagsBefore(mm *gocrpb.Mm, now []proc.Mapping) error {
	at := make(map[uint64]proc.Mapping, len(now))
	for _, m := range now {
		at[m.Start] = m
	}
	for _, v := range mm.Vmas {
		m, ok := at[v.Start]
		if !ok || m.End != v.End {
			return fmt.Errorf("mapping %s changed while gocr froze the process: dump again", vmaName(v))
		}
		if !sameFlags(v.VmFlags, m.VmFlags) {
			return fmt.Errorf("mapping %s changed its flags from %v to %v while gocr froze the process: dump again", vmaName(v), v.VmFlags, m.VmFlags)
		}
	}
	return nil
}

func sameFlags(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
