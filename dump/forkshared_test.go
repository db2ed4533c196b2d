//go:build linux

package dump

import (
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestForkSharedSpans: pages recorded one by one become runs, and
// pagesToDump's walk in address order finds exactly those pages in them.
func TestForkSharedSpans(t *testing.T) {
	const base = 0x10000
	v := &gocrpb.Vma{Start: base, End: base + 16*pageSize}
	shared := map[uint64]bool{}
	for _, p := range []uint64{0, 1, 2, 5, 7, 8, 15} {
		v.ForkShared = addPage(v.ForkShared, base+p*pageSize)
		shared[base+p*pageSize] = true
	}
	want := []*gocrpb.PageSpan{{Vaddr: base, NrPages: 3}, {Vaddr: base + 5*pageSize, NrPages: 1},
		{Vaddr: base + 7*pageSize, NrPages: 2}, {Vaddr: base + 15*pageSize, NrPages: 1}}
	if len(v.ForkShared) != len(want) {
		t.Fatalf("spans %v, want %v", v.ForkShared, want)
	}
	for i, s := range v.ForkShared {
		if s.Vaddr != want[i].Vaddr || s.NrPages != want[i].NrPages {
			t.Fatalf("span %d: %#x+%d, want %#x+%d", i, s.Vaddr, s.NrPages, want[i].Vaddr, want[i].NrPages)
		}
	}
	next := 0
	for addr := v.Start; addr < v.End; addr += pageSize {
		if got := inForkShared(v, addr, &next); got != shared[addr] {
			t.Errorf("page %#x: shared %v, want %v", addr, got, shared[addr])
		}
	}
}

// TestInheritable: only accounted private anonymous mappings that fork
// copies as they are, and KSM does not merge, are shared with a child.
func TestInheritable(t *testing.T) {
	anon := gocrpb.VmaKind_VMA_ANON_PRIVATE
	for _, c := range []struct {
		v    *gocrpb.Vma
		want bool
	}{
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr", "ac"}}, true},
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr"}}, false},
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr", "ac", "gd"}}, false},
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr", "ac", "dc"}}, false},
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr", "ac", "wf"}}, false},
		{&gocrpb.Vma{Kind: anon, VmFlags: []string{"rd", "wr", "ac", "mg"}}, false},
		{&gocrpb.Vma{Kind: gocrpb.VmaKind_VMA_FILE_PRIVATE, VmFlags: []string{"rd", "wr", "ac"}}, false},
	} {
		if got := inheritable(c.v); got != c.want {
			t.Errorf("%v %v: inheritable %v, want %v", c.v.Kind, c.v.VmFlags, got, c.want)
		}
	}
}
