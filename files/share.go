//go:build linux

package files

import (
	"sort"

	"golang.org/x/sys/unix"
)

// kcmpFile is KCMP_FILE (include/uapi/linux/kcmp.h): compare two fds'
// open file descriptions.
const kcmpFile = 0

// compareOpenFiles orders two fds by their open file description: kcmp
// returns 0 for the same description (dup, fork, `>log 2>&1`: one offset,
// one set of status flags), 1 and 2 for a consistent less and greater
// (man 2 kcmp), so descriptions can be sorted.
func compareOpenFiles(a, b Ref) int {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a.Pid), uintptr(b.Pid), kcmpFile, uintptr(a.Fd.Fd), uintptr(b.Fd.Fd), 0)
	switch {
	case e != 0:
		return 2 // not comparable: treat as different
	case r == 0:
		return 0
	case r == 1:
		return -1
	}
	return 1
}

// linkShared points every fd at the first fd (in dump order) with the same
// open file description. Sorting by description costs n log n kcmp calls
// where comparing every pair would cost n².
func linkShared(refs []Ref) {
	if len(refs) < 2 {
		return
	}
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return compareOpenFiles(refs[idx[i]], refs[idx[j]]) < 0 })
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && compareOpenFiles(refs[idx[start]], refs[idx[end]]) == 0 {
			end++
		}
		owner := idx[start]
		for _, k := range idx[start:end] {
			owner = min(owner, k)
		}
		for _, k := range idx[start:end] {
			if k != owner {
				refs[k].Fd.SharedWith, refs[k].Fd.SharedPid = refs[owner].Fd.Fd, int32(refs[owner].Pid)
			}
		}
		start = end
	}
}
