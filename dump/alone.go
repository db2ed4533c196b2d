//go:build linux

package dump

import (
	"fmt"

	"github.com/gocr/gocr/proc"
)

// A process dumped alone (Options.Alone, cr_checkpoint --pid) leaves its
// live children out of the dump: restored, it has none of them, as if
// they had ended and been reaped by another. That is exact only where
// nothing of the process lives on in a child: what clone(2) shares
// between them (checkLeftOut) would be restored unshared. Pipes and
// socketpairs to a child are refused by their kinds, like any with an end
// outside the dump (files.Link).

func isZombie(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && st.State == 'Z'
}

// checkLeftOut refuses a process dumped alone that shares its address
// space, fd table, fs information or signal handlers with a child left
// out (a vfork child, a clone(CLONE_FILES) helper).
func (tr *frozenTree) checkLeftOut() error {
	root := tr.procs[0].pid
	dumped := map[int]bool{}
	for _, fp := range tr.procs {
		dumped[fp.pid] = true
	}
	children, err := proc.Children(root)
	if err != nil {
		return fmt.Errorf("pid %d: %w", root, err)
	}
	for _, c := range children {
		if dumped[c] {
			continue
		}
		for _, k := range sharedKinds {
			if kcmp(root, c, k.typ) == 0 {
				return fmt.Errorf("pid %d shares its %s with its child %d, which --pid leaves out: checkpoint the tree instead", root, k.what, c)
			}
		}
	}
	return nil
}
