//go:build linux

package dump

import (
	"slices"
	"strings"
	"testing"
)

// TestRebuildSharing: a group sharing one fd table is rebuilt when one
// member, the owner, has its parent outside the group and every other
// member is its child; otherwise, or for a kind that cannot be rebuilt,
// it is refused.
func TestRebuildSharing(t *testing.T) {
	// 10 is the root; 11, 12 its children; 13 a child of 11.
	tree := func() map[int]*frozenProc {
		m := map[int]*frozenProc{}
		for pid, ppid := range map[int]int{10: 1, 11: 10, 12: 10, 13: 11} {
			fp := &frozenProc{pid: pid}
			fp.stat.PPid = ppid
			m[pid] = fp
		}
		return m
	}
	mark := func(fp *frozenProc) { fp.sharesParentFiles = true }
	for _, c := range []struct {
		name    string
		group   []int
		rebuild func(*frozenProc)
		marked  []int
		refused string
	}{
		{"parent and children", []int{12, 10, 11}, mark, []int{11, 12}, ""},
		{"siblings", []int{11, 12}, mark, nil, "pids 11 and 12 share one fd table"},
		{"grandchild", []int{10, 11, 13}, mark, nil, "pids 11 and 13 share one fd table"},
		{"not rebuilt", []int{10, 11}, nil, nil, "pids 10 and 11 share one fd table"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := tree()
			err := rebuildSharing(m, c.group, "fd table", c.rebuild)
			if c.refused != "" {
				if err == nil || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("got %v, want an error with %q", err, c.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var marked []int
			for _, pid := range []int{10, 11, 12, 13} {
				if m[pid].sharesParentFiles {
					marked = append(marked, pid)
				}
			}
			if !slices.Equal(marked, c.marked) {
				t.Fatalf("marked %v, want %v", marked, c.marked)
			}
		})
	}
}
