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
