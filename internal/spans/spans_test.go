package spans

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCut(t *testing.T) {
	set := []Span{{0x2000, 0x4000}, {0x6000, 0x7000}, {0x9000, 0xa000}}
	got := Cut(Span{0x1000, 0x9800}, set)
	want := []Piece{
		{Span{0x1000, 0x2000}, false}, {Span{0x2000, 0x4000}, true}, {Span{0x4000, 0x6000}, false},
		{Span{0x6000, 0x7000}, true}, {Span{0x7000, 0x9000}, false}, {Span{0x9000, 0x9800}, true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Cut (-want +got):\n%s", d)
	}
	if got := Cut(Span{0x4000, 0x6000}, set); len(got) != 1 || got[0].In {
		t.Errorf("a span between the set's: %v, want one piece outside", got)
	}
	if got := Cut(Span{0x2000, 0x3000}, nil); len(got) != 1 || got[0].In {
		t.Errorf("an empty set: %v, want one piece outside", got)
	}
}

func TestMerge(t *testing.T) {
	got := Merge([]Span{{0x5000, 0x6000}, {0x1000, 0x2000}, {0x2000, 0x3000}, {0x5800, 0x7000}})
	want := []Span{{0x1000, 0x3000}, {0x5000, 0x7000}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Merge (-want +got):\n%s", d)
	}
}

func TestCovered(t *testing.T) {
	set := []Span{{0x1000, 0x3000}, {0x5000, 0x7000}}
	for _, c := range []struct {
		s    Span
		want bool
	}{
		{Span{0x1000, 0x3000}, true},
		{Span{0x5800, 0x6000}, true},
		{Span{0x2000, 0x5800}, false}, // across a gap
		{Span{0x3000, 0x4000}, false},
		{Span{0x6800, 0x7800}, false},
	} {
		if got := Covered(c.s, set); got != c.want {
			t.Errorf("Covered(%#x-%#x) = %v", c.s.Start, c.s.End, got)
		}
	}
}
