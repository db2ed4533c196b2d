//go:build linux

package restorer

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/gocrpb"
)

func TestMarkHugeExtents(t *testing.T) {
	const mib = 1 << 20
	base := uint64(0x7f0000000000) // 2 MiB-aligned
	vmas := []*gocrpb.Vma{
		// had huge pages: its whole extents become runs of their own
		{Start: base, End: base + 16*mib, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE, AnonHugeBytes: 2 * mib},
		// had none: left as it is
		{Start: base + 32*mib, End: base + 40*mib, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE},
		// a file's private mapping: its huge pages would be the file's
		{Start: base + 64*mib, End: base + 72*mib, Kind: gocrpb.VmaKind_VMA_FILE_PRIVATE, AnonHugeBytes: 2 * mib},
	}
	pages := []rstPages{
		// 1 MiB into the first extent up to 1 MiB into the fourth:
		// extents two and three are whole
		{Vaddr: base + 1*mib, NrPages: 6 * mib / pageSize, FileOff: 4096, Stream: 1},
		// exactly one extent
		{Vaddr: base + 10*mib, NrPages: 2 * mib / pageSize, FileOff: 4096 + 6*mib, Stream: 1},
		// less than one extent
		{Vaddr: base + 12*mib, NrPages: 1, FileOff: 4096 + 8*mib, Stream: 0},
		// two streams cut the extent at 14 MiB in two: each part is
		// flagged
		{Vaddr: base + 13*mib, NrPages: 2 * mib / pageSize, FileOff: 16384, Stream: 0},
		{Vaddr: base + 15*mib, NrPages: 1 * mib / pageSize, FileOff: 4096 + 7*mib, Stream: 1},
		{Vaddr: base + 32*mib, NrPages: 8 * mib / pageSize, FileOff: 8192, Stream: 0},
		{Vaddr: base + 64*mib, NrPages: 8 * mib / pageSize, FileOff: 8192 + 8*mib, Stream: 0},
	}
	p := &plan{pages: append([]rstPages(nil), pages...)}
	p.markHugeExtents(vmas, true)
	want := []rstPages{
		{Vaddr: base + 1*mib, NrPages: 1 * mib / pageSize, FileOff: 4096, Stream: 1},
		{Vaddr: base + 2*mib, NrPages: 4 * mib / pageSize, FileOff: 4096 + 1*mib, Stream: 1, Flags: rstPagesHuge},
		{Vaddr: base + 6*mib, NrPages: 1 * mib / pageSize, FileOff: 4096 + 5*mib, Stream: 1},
		{Vaddr: base + 10*mib, NrPages: 2 * mib / pageSize, FileOff: 4096 + 6*mib, Stream: 1, Flags: rstPagesHuge},
		pages[2],
		{Vaddr: base + 13*mib, NrPages: 1 * mib / pageSize, FileOff: 16384, Stream: 0},
		{Vaddr: base + 14*mib, NrPages: 1 * mib / pageSize, FileOff: 16384 + 1*mib, Stream: 0, Flags: rstPagesHuge},
		{Vaddr: base + 15*mib, NrPages: 1 * mib / pageSize, FileOff: 4096 + 7*mib, Stream: 1, Flags: rstPagesHuge},
		pages[5], pages[6],
	}
	if diff := cmp.Diff(want, p.pages); diff != "" {
		t.Errorf("markHugeExtents (-want +got):\n%s", diff)
	}

	// Where huge pages are not allowed, nothing changes.
	p = &plan{pages: append([]rstPages(nil), pages...)}
	p.markHugeExtents(vmas, false)
	if diff := cmp.Diff(pages, p.pages); diff != "" {
		t.Errorf("markHugeExtents not allowed (-want +got):\n%s", diff)
	}
}

// TestPlanHugeFaults: a mapping that had MADV_HUGEPAGE gets it before its
// pages are read only where every run in it is whole extents and it is
// not staged; the runs are left as they are.
func TestPlanHugeFaults(t *testing.T) {
	const mib = 1 << 20
	base := uint64(0x7f0000000000) // 2 MiB-aligned
	vma := func(at, size uint64, madv, flags uint32) rstVma {
		return rstVma{Start: base + at*mib, End: base + (at+size)*mib, Kind: rstVmaAnonPrivate, Madv: madv, Flags: flags}
	}
	run := func(at, size uint64, flags uint32) rstPages {
		return rstPages{Vaddr: base + at*mib, NrPages: size * mib / pageSize, Flags: flags}
	}
	p := &plan{
		vmas: []rstVma{
			vma(0, 8, rstMadvHugepage, 0),                  // all whole extents: by faults
			vma(16, 8, rstMadvHugepage, 0),                 // an extent only partly dumped
			vma(32, 8, 0, 0),                               // no MADV_HUGEPAGE
			vma(48, 8, rstMadvHugepage, rstVmaStage),       // staged: read elsewhere
			vma(64, 8, rstMadvHugepage|rstMadvDontdump, 0), // no pages at all
		},
		// In no order, as a chain appends its parent's runs.
		pages: []rstPages{
			run(4, 4, rstPagesHuge), run(16, 2, rstPagesHuge), run(0, 4, rstPagesHuge),
			run(18, 1, 0), run(32, 8, rstPagesHuge), run(48, 8, rstPagesHuge),
		},
	}
	pages := append([]rstPages(nil), p.pages...)
	p.planHugeFaults()
	var madv []uint32
	for _, v := range p.vmas {
		madv = append(madv, v.Madv&rstMadvHugepageFirst)
	}
	if want := []uint32{rstMadvHugepageFirst, 0, 0, 0, 0}; !cmp.Equal(madv, want) {
		t.Errorf("RST_MADV_HUGEPAGE_FIRST by mapping: %v, want %v", madv, want)
	}
	if diff := cmp.Diff(pages, p.pages); diff != "" {
		t.Errorf("runs changed (-want +got):\n%s", diff)
	}
}
