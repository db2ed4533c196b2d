//go:build linux

package restorer

import (
	"fmt"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/testhook"
)

// Memory a child shared with its parent since fork (Vma.fork_shared,
// dump/forkshared.go) is shared again: fork(2) gives a child the pages
// of its parent's private mappings copy on write (mm/memory.c
// copy_page_range), so a process maps such a mapping and reads its own
// pages in before it forks its children (RST_VMA_STAGE): in its place
// where that is free while the restorer runs, else at a stage address,
// where no mapping of any process of the tree lies. Each child finds it
// where its parent's plan says (RST_VMA_INHERIT), drops the pages that are not its
// parent's (MADV_DONTNEED: private anonymous memory then reads as zeros,
// man 2 madvise), which a child that has children of its own passes on
// as it is, and reads its own pages in. When every process restores its
// memory, it moves these mappings to their places first (mremap moves
// the page tables, not the pages: mm/mremap.c move_page_tables) and
// unmaps the rest around them (restorer/c/restorer.c stage_memory,
// restore_memory). Stage addresses keep the offset in a 2 MiB extent, so
// that huge pages move whole. A mapping that had to be moved keeps the
// page offset of its stage (mm/mremap.c), as one kept apart does
// (restorer.c map_apart): the heap, then, grows with brk as a mapping of
// its own (mm/mmap.c do_brk_flags), not in place.

const hugeExtent = 2 << 20

// planForkShared marks the mappings of every plan that are shared with
// a parent or a child, gives each family of them (a mapping and the
// mappings inherited from it) its stage address, and checks that the
// parent's page images hold every page a child leaves to it.
func planForkShared(procs []*proc) error {
	type family struct {
		members []*rstVma
		start   uint64 // its mapping's
		len     uint64
	}
	var families []*family
	familyOf := map[*rstVma]*family{}
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		var covered [][2]uint64 // the parent's pages, merged, in address order
		for i, v := range pr.mm.Vmas {
			if len(v.ForkShared) == 0 {
				continue
			}
			what := fmt.Sprintf("pid %d: mapping %#x-%#x", pr.task.Pid, v.Start, v.End)
			if pr.parent == nil || pr.parent.plan == nil {
				return fmt.Errorf("%s shares pages with a parent not in the dump", what)
			}
			j := findVmaIndex(pr.parent.mm.Vmas, v.Start)
			cv := &pr.plan.vmas[i]
			if j < 0 || pr.parent.mm.Vmas[j].Start != v.Start || pr.parent.mm.Vmas[j].End != v.End {
				return fmt.Errorf("%s shares pages with its parent %d, which has no such mapping", what, pr.parent.task.Pid)
			}
			pv := &pr.parent.plan.vmas[j]
			if cv.Kind != rstVmaAnonPrivate || pv.Kind != rstVmaAnonPrivate || cv.Prot != pv.Prot ||
				cv.MapProt != pv.MapProt || cv.MmapFlags != pv.MmapFlags || cv.MapProt&unix.PROT_WRITE == 0 ||
				cv.MmapFlags&unix.MAP_GROWSDOWN != 0 {
				return fmt.Errorf("%s shares pages with its parent %d's, but the two are not the same kind of private anonymous mapping", what, pr.parent.task.Pid)
			}
			if covered == nil {
				covered = parentPages(pr.parent)
			}
			prev := v.Start
			for _, s := range v.ForkShared {
				if s.NrPages == 0 || s.Vaddr%pageSize != 0 || s.Vaddr < prev || s.NrPages > (v.End-s.Vaddr)/pageSize {
					return fmt.Errorf("%s: bad shared pages %#x+%d", what, s.Vaddr, s.NrPages)
				}
				prev = s.Vaddr + s.NrPages*pageSize
				if !insideRuns(covered, s.Vaddr, prev) {
					return fmt.Errorf("%s: pages %#x-%#x are its parent %d's, whose page images do not hold them", what, s.Vaddr, prev, pr.parent.task.Pid)
				}
				pr.plan.forkShared = append(pr.plan.forkShared, rstSpan{Vaddr: s.Vaddr, NrPages: s.NrPages})
			}
			// A mapping a child inherited and passes on to its own
			// children is one family: each gets it after its parent's
			// pages are in.
			f := familyOf[pv]
			if f == nil {
				f = &family{members: []*rstVma{pv}, start: v.Start, len: v.End - v.Start}
				families = append(families, f)
				familyOf[pv] = f
				pv.Flags |= rstVmaStage
				if _, ok := testhook.Int(testhook.ForkSharedAtStage); ok {
					pv.Flags |= rstVmaAtStage
				}
			}
			if familyOf[cv] != nil {
				return fmt.Errorf("%s is inherited twice", what)
			}
			f.members = append(f.members, cv)
			familyOf[cv] = f
			cv.Flags |= rstVmaInherit
		}
	}
	if len(families) == 0 {
		return nil
	}
	var size uint64
	for _, f := range families {
		size += stageRoom(f.start, f.len)
	}
	base, err := stageBase(procs, size)
	if err != nil {
		return err
	}
	for _, f := range families {
		stage := base + f.start%hugeExtent
		for _, m := range f.members {
			m.Stage = stage
		}
		base += stageRoom(f.start, f.len)
	}
	// Pages of staged mappings are read in at the stage address, before
	// the children are forked; a child's own pages in a mapping it
	// inherits go to small pages, which keeps the parent's huge pages
	// there shared (a collapse would copy every page of the extent).
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		for k := range pr.plan.pages {
			rp := &pr.plan.pages[k]
			i := findVmaIndex(pr.mm.Vmas, rp.Vaddr)
			if i < 0 || pr.plan.vmas[i].Flags == 0 {
				continue
			}
			rp.Flags |= rstPagesStaged
			if pr.plan.vmas[i].Flags&rstVmaInherit != 0 {
				rp.Flags &^= rstPagesHuge
			}
		}
	}
	return nil
}

// stageRoom is what a mapping takes at its stage: from the start of its
// first 2 MiB extent to the end of its last, and an extent between it and
// the next, so that no two stages meet and merge.
func stageRoom(start, length uint64) uint64 {
	return (start%hugeExtent+length+hugeExtent-1)&^(hugeExtent-1) + hugeExtent
}

// stageBase finds size bytes, 2 MiB aligned, that no mapping of any
// process of the tree uses: three quarters into the largest gap between
// them, away from where the restorer's holes are proposed (half and a
// third into a gap, room.go) and from the gap's edges, where the
// restorer's own mappings are likelier.
func stageBase(procs []*proc, size uint64) (uint64, error) {
	const low, high = 1 << 32, 0x7ffffffff000 - (1 << 30)
	var all []*gocrpb.Vma
	for _, pr := range procs {
		if pr.mm != nil {
			all = append(all, pr.mm.Vmas...)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Start < all[j].Start })
	var best [2]uint64
	prev := uint64(low)
	for _, v := range append(all, &gocrpb.Vma{Start: high, End: high}) {
		if end := min(v.Start, high); end > prev && end-prev > best[1]-best[0] {
			best = [2]uint64{prev, end}
		}
		prev = max(prev, v.End)
	}
	n := best[1] - best[0]
	if n < 4*size {
		return 0, fmt.Errorf("no room in the address space to map the %d MiB the processes share since fork", size>>20)
	}
	base := (best[0] + n/4*3) &^ (hugeExtent - 1)
	if base+size > best[1]-hugeExtent {
		base = (best[0] + n/2) &^ (hugeExtent - 1)
	}
	return base, nil
}

// parentPages lists the pages a process has when it forks its children,
// as merged runs [start, end) in address order: those of its page images
// and those it shares with its own parent (checked when it was planned).
func parentPages(pr *proc) [][2]uint64 {
	var rs [][2]uint64
	for _, r := range pr.ranges {
		rs = append(rs, [2]uint64{r.Vaddr, r.Vaddr + r.NrPages*pageSize})
	}
	for _, s := range pr.plan.forkShared {
		rs = append(rs, [2]uint64{s.Vaddr, s.Vaddr + s.NrPages*pageSize})
	}
	slices.SortFunc(rs, func(a, b [2]uint64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// insideRuns says whether [start, end) lies inside one of the merged runs.
func insideRuns(rs [][2]uint64, start, end uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] > start })
	return i < len(rs) && rs[i][0] <= start && end <= rs[i][1]
}
