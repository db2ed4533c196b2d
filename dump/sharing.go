//go:build linux

package dump

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// kcmp types (include/uapi/linux/kcmp.h enum kcmp_type).
const (
	kcmpVM      = 1
	kcmpFiles   = 2
	kcmpFS      = 3
	kcmpSighand = 4
)

// What clone(2) lets processes share without being one process (include/
// uapi/linux/kcmp.h types). An address space or signal handlers are
// restored per process, so two processes sharing one would come back with
// two. An fd table or fs information (cwd, root, umask) is shared again
// when the restore can clone each sharing process from one that has it,
// with the flag its own clone had (rebuild): CLONE_FILES and CLONE_FS give
// the child the caller's own table or fs_struct (kernel/fork.c copy_files,
// copy_fs; man 2 clone), and nothing but such a clone makes two processes
// share one (unshare(2) only ends sharing).
var sharedKinds = []struct {
	typ     int
	what    string
	rebuild func(*frozenProc)
}{
	{kcmpVM, "address space (clone CLONE_VM)", nil},
	{kcmpFiles, "fd table (clone CLONE_FILES)", func(fp *frozenProc) { fp.sharesParentFiles = true }},
	{kcmpFS, "cwd, root and umask (clone CLONE_FS)", func(fp *frozenProc) { fp.sharesParentFS = true }},
	{kcmpSighand, "signal handlers (clone CLONE_SIGHAND)", nil},
}

// kcmp compares one kernel object of two processes: 0 the same, 1 and 2 a
// consistent less and greater (man 2 kcmp); -1 if they cannot be compared.
func kcmp(pid1, pid2, typ int) int {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), 0, 0, 0)
	if e != 0 {
		return -1
	}
	return int(r)
}

// checkSharing refuses processes that share an address space, fd table,
// fs information or signal handlers with another process, dumped or its
// parent outside the dump, unless the restore can rebuild the sharing: a
// process and children of its own that share its fd table or fs (marked
// sharesParentFiles, sharesParentFS), where the process itself shares
// neither with its parent (the restore clones each sharing child from the
// one process holding the table; siblings sharing one their parent does
// not, which CLONE_PARENT or a parent's later unshare(2) can make, have
// no member to clone them from). Sorting by kcmp puts the processes
// sharing one object next to each other in n log n comparisons.
func (tr *frozenTree) checkSharing() error {
	var pids []int
	dumped := map[int]*frozenProc{}
	for _, fp := range tr.procs {
		if !fp.zombie {
			pids = append(pids, fp.pid)
			dumped[fp.pid] = fp
		}
	}
	for _, k := range sharedKinds {
		sorted := append([]int(nil), pids...)
		sort.SliceStable(sorted, func(i, j int) bool { return kcmp(sorted[i], sorted[j], k.typ) == 1 })
		for i := 0; i < len(sorted); {
			j := i + 1
			for j < len(sorted) && kcmp(sorted[j-1], sorted[j], k.typ) == 0 {
				j++
			}
			if j-i > 1 {
				if err := rebuildSharing(dumped, sorted[i:j], k.what, k.rebuild); err != nil {
					return err
				}
			}
			i = j
		}
		for _, fp := range tr.procs {
			ppid := fp.stat.PPid
			if fp.zombie || dumped[ppid] != nil || ppid <= 1 {
				continue
			}
			if kcmp(fp.pid, ppid, k.typ) == 0 {
				return fmt.Errorf("pid %d shares its %s with its parent %d, which is not dumped: gocr cannot restore that", fp.pid, k.what, ppid)
			}
		}
	}
	// A process restored by a parent's clone with CLONE_FILES or
	// CLONE_FS keeps that parent's table while it makes its own
	// children: it cannot also hold one they share.
	for _, fp := range tr.procs {
		parent := dumped[fp.stat.PPid]
		if (fp.sharesParentFiles || fp.sharesParentFS) && parent != nil && (parent.sharesParentFiles || parent.sharesParentFS) {
			return fmt.Errorf("pid %d shares its parent %d's fd table or cwd, root and umask, which shares its own parent's: gocr cannot restore that", fp.pid, parent.pid)
		}
	}
	return nil
}

// rebuildSharing marks the members of a group sharing one object for the
// restore to clone with it (rebuild), or refuses the group: one member,
// the owner, has its parent outside the group, and every other member is
// the owner's child.
func rebuildSharing(dumped map[int]*frozenProc, group []int, what string, rebuild func(*frozenProc)) error {
	in := map[int]bool{}
	for _, pid := range group {
		in[pid] = true
	}
	owner := -1
	for _, pid := range group {
		if !in[dumped[pid].stat.PPid] {
			if owner >= 0 || rebuild == nil {
				return fmt.Errorf("pids %d and %d share one %s, which gocr cannot restore", group[0], group[1], what)
			}
			owner = pid
		}
	}
	for _, pid := range group {
		if pid != owner && dumped[pid].stat.PPid != owner {
			return fmt.Errorf("pids %d and %d share one %s, which gocr cannot restore: only a process and children of its own sharing it", dumped[pid].stat.PPid, pid, what)
		}
	}
	for _, pid := range group {
		if pid != owner {
			rebuild(dumped[pid])
		}
	}
	return nil
}
