//go:build linux

package dump

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCutSpans(t *testing.T) {
	set := []span{{0x2000, 0x4000}, {0x6000, 0x7000}, {0x9000, 0xa000}}
	got := cutSpans(span{0x1000, 0x9800}, set)
	want := []cutPiece{
		{span{0x1000, 0x2000}, false}, {span{0x2000, 0x4000}, true}, {span{0x4000, 0x6000}, false},
		{span{0x6000, 0x7000}, true}, {span{0x7000, 0x9000}, false}, {span{0x9000, 0x9800}, true},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(cutPiece{}, span{})); d != "" {
		t.Errorf("cutSpans (-want +got):\n%s", d)
	}
	if got := cutSpans(span{0x4000, 0x6000}, set); len(got) != 1 || got[0].in {
		t.Errorf("a span between the set's: %v, want one piece outside", got)
	}
	if got := cutSpans(span{0x2000, 0x3000}, nil); len(got) != 1 || got[0].in {
		t.Errorf("an empty set: %v, want one piece outside", got)
	}
}

func TestMergeSpans(t *testing.T) {
	got := mergeSpans([]span{{0x5000, 0x6000}, {0x1000, 0x2000}, {0x2000, 0x3000}, {0x5800, 0x7000}})
	want := []span{{0x1000, 0x3000}, {0x5000, 0x7000}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(span{})); d != "" {
		t.Errorf("mergeSpans (-want +got):\n%s", d)
	}
}

func TestAppendRunJoinsOnlyWithinAVma(t *testing.T) {
	r := run{addr: 0x1000, npages: 8, readable: true, vma: 1}
	runs := appendRun(nil, r, span{0x1000, 0x3000})
	runs = appendRun(runs, r, span{0x3000, 0x4000})
	runs = appendRun(runs, r, span{0x4000, 0x4000}) // empty: nothing
	other := r
	other.vma = 2
	runs = appendRun(runs, other, span{0x4000, 0x5000})
	want := []run{{addr: 0x1000, npages: 3, readable: true, vma: 1}, {addr: 0x4000, npages: 1, readable: true, vma: 2}}
	if d := cmp.Diff(want, runs, cmp.AllowUnexported(run{})); d != "" {
		t.Errorf("appendRun (-want +got):\n%s", d)
	}
}
