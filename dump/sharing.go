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

// What clone(2) lets processes share without being one process: each is
// restored per process, so two processes sharing one would come back with
// two. kcmp(2) tells whether two processes share it (include/uapi/linux/
// kcmp.h types).
var sharedKinds = []struct {
	typ  int
	what string
}{
	{kcmpVM, "address space (clone CLONE_VM)"},
	{kcmpFiles, "fd table (clone CLONE_FILES)"},
	{kcmpFS, "cwd, root and umask (clone CLONE_FS)"},
	{kcmpSighand, "signal handlers (clone CLONE_SIGHAND)"},
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
// parent outside the dump: sorting by kcmp finds the pairs among the
// dumped ones in n log n comparisons.
func (tr *frozenTree) checkSharing() error {
	var pids []int
	dumped := map[int]bool{}
	for _, fp := range tr.procs {
		if !fp.zombie {
			pids = append(pids, fp.pid)
			dumped[fp.pid] = true
		}
	}
	for _, k := range sharedKinds {
		sorted := append([]int(nil), pids...)
		sort.SliceStable(sorted, func(i, j int) bool { return kcmp(sorted[i], sorted[j], k.typ) == 1 })
		for i := 1; i < len(sorted); i++ {
			if kcmp(sorted[i-1], sorted[i], k.typ) == 0 {
				return fmt.Errorf("pids %d and %d share one %s, which gocr cannot restore", sorted[i-1], sorted[i], k.what)
			}
		}
		for _, fp := range tr.procs {
			ppid := fp.stat.PPid
			if fp.zombie || dumped[ppid] || ppid <= 1 {
				continue
			}
			if kcmp(fp.pid, ppid, k.typ) == 0 {
				return fmt.Errorf("pid %d shares its %s with its parent %d, which is not dumped: gocr cannot restore that", fp.pid, k.what, ppid)
			}
		}
	}
	return nil
}
