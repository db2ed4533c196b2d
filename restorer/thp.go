//go:build linux

package restorer

import (
	"cmp"
	"slices"
	"sort"
	"sync"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// hugePageSize is the size of a PMD-mapped transparent huge page on
// x86-64 (HPAGE_PMD_SIZE), the only size the restorer makes: its C side
// writes one byte per 2 MiB (restorer/c/restorer.c prepare_huge).
const hugePageSize = 2 << 20

// hugePagesAllowed reports whether this machine lets anonymous memory be
// backed by PMD-size transparent huge pages at all (procfs.THPMode is not
// "never" or none). MADV_COLLAPSE, which the restorer uses, would ignore
// "never" (mm/khugepaged.c madvise_collapse checks the VMA without the
// sysfs settings), but a job restored on a machine whose administrator
// turned huge pages off should not get them from gocr.
var hugePagesAllowed = sync.OnceValue(func() bool {
	mode := procfs.THPMode()
	return mode == "always" || mode == "madvise"
})

// markHugeExtents gives huge pages back where the dumped process had
// them. In each private anonymous mapping that had some (smaps
// AnonHugePages), every 2 MiB-aligned extent whose pages are all in the
// page image gets a huge page before its data is read in: the runs over
// such extents are split off and flagged, and the restorer makes a huge
// page of each extent a flagged run touches (restorer/c/restorer.c
// prepare_huge). An extent may be read by two runs of two page streams
// (a dump cuts its streams anywhere), each flagged; the kernel's
// collapse then copies whatever either has read so far. A huge page
// holds such an extent in exactly the memory its small pages would, and
// the mapping gets at least the huge pages it had: each was a whole
// extent of present, dumped pages. Extents only partly dumped stay small
// pages.
//
// The mapping's flags stay the dumped ones: MADV_HUGEPAGE would set
// VM_HUGEPAGE ("hg"), which nothing but MADV_NOHUGEPAGE clears again,
// and that sets VM_NOHUGEPAGE ("nh") instead (mm/khugepaged.c
// hugepage_madvise), so the restorer uses MADV_COLLAPSE, which leaves
// them alone.
func (p *plan) markHugeExtents(vmas []*gocrpb.Vma, allowed bool) {
	if !allowed {
		return
	}
	// The spans of address-contiguous pages in mappings that had huge
	// pages, whichever stream holds them. newPlan checked that every
	// run lies inside one mapping, so a span never leaves it either,
	// and neither do its extents, as a huge page must
	// (include/linux/huge_mm.h thp_vma_suitable_order).
	type span struct{ start, end uint64 }
	var spans []span
	eligible := func(r rstPages) bool {
		v := findVma(vmas, r.Vaddr)
		return v != nil && v.Kind == gocrpb.VmaKind_VMA_ANON_PRIVATE && v.AnonHugeBytes > 0
	}
	for _, r := range p.pages {
		if eligible(r) {
			spans = append(spans, span{r.Vaddr, r.Vaddr + r.NrPages*pageSize})
		}
	}
	if len(spans) == 0 {
		return
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.start == last.end && findVma(vmas, s.start) == findVma(vmas, last.start) {
			last.end = s.end
		} else {
			merged = append(merged, s)
		}
	}

	var out []rstPages
	for _, r := range p.pages {
		if !eligible(r) {
			out = append(out, r)
			continue
		}
		start, end := r.Vaddr, r.Vaddr+r.NrPages*pageSize
		i, found := slices.BinarySearchFunc(merged, start, func(s span, a uint64) int {
			if s.end <= a {
				return -1
			}
			if s.start > a {
				return 1
			}
			return 0
		})
		if !found {
			// Only runs that overlap another (an image newPlan
			// took but no dump writes) miss their span.
			out = append(out, r)
			continue
		}
		sp := merged[i]
		// The span's whole extents, within this run.
		hStart := min(max((sp.start+hugePageSize-1)&^(hugePageSize-1), start), end)
		hEnd := max(min(sp.end&^(hugePageSize-1), end), start)
		if hStart >= hEnd {
			out = append(out, r)
			continue
		}
		piece := func(from, to uint64, flags uint32) {
			if from < to {
				out = append(out, rstPages{Vaddr: from, NrPages: (to - from) / pageSize,
					FileOff: r.FileOff + (from - start), Stream: r.Stream, Flags: flags, File: r.File})
			}
		}
		piece(start, hStart, 0)
		piece(hStart, hEnd, rstPagesHuge)
		piece(hEnd, end, 0)
	}
	p.pages = out
}

// planHugeFaults has the huge pages of a mapping that had MADV_HUGEPAGE
// ("hg") made by faults rather than collapses, where every run in it is
// whole extents (markHugeExtents flagged them all): the restorer gives
// it the flag before it reads the pages rather than after, so that the
// byte prepare_huge writes first in each extent faults a huge page,
// zeroed under the mapping's own lock, and the streams' threads fault
// theirs at once (mm/memory.c lock_vma_under_rcu, mm/huge_memory.c
// do_huge_pmd_anonymous_page); MADV_COLLAPSE then finds the extent
// already a huge page and leaves it (mm/khugepaged.c madvise_collapse,
// SCAN_PMD_MAPPED). A collapse that has work zeroes and copies its huge
// page holding the address space's mmap lock for writing
// (collapse_huge_page), so two streams' collapses take turns; one is
// still made where the extent has a page table already (map_apart's
// first page). The flag is the dumped one either way. In a mapping with
// an extent only partly dumped, its read would fault a huge page there
// too and make present what was absent, so such a mapping gets the flag
// after its pages, as before. It runs once the runs are final (staged
// mappings are read elsewhere).
func (p *plan) planHugeFaults() {
	// By mapping: whether it may, and then whether its runs are all
	// whole extents (the runs are in no order: chain.go appends).
	byFault := make([]bool, len(p.vmas))
	for i, v := range p.vmas {
		byFault[i] = v.Kind == rstVmaAnonPrivate && v.Madv&rstMadvHugepage != 0 && v.Flags == 0
	}
	seen := make([]bool, len(p.vmas))
	for _, r := range p.pages {
		i := sort.Search(len(p.vmas), func(i int) bool { return p.vmas[i].End > r.Vaddr })
		if i < len(p.vmas) && p.vmas[i].Start <= r.Vaddr {
			seen[i] = true
			byFault[i] = byFault[i] && r.Flags == rstPagesHuge
		}
	}
	for i := range p.vmas {
		if byFault[i] && seen[i] {
			p.vmas[i].Madv |= rstMadvHugepageFirst
		}
	}
}
