//go:build linux

package dump

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/spans"
)

// TestPreWrittenByAddress: a mapping at the freeze takes what the
// pre-scan found at its own addresses, from every range it overlaps,
// and is written whole where a pre-scan of it failed.
func TestPreWrittenByAddress(t *testing.T) {
	tp := &trackedProc{pre: []preScanned{
		{start: 0x10000, end: 0x20000, written: []spans.Span{{Start: 0x11000, End: 0x13000}, {Start: 0x1e000, End: 0x20000}}},
		{start: 0x20000, end: 0x30000, written: []spans.Span{{Start: 0x20000, End: 0x21000}}},
		{start: 0x40000, end: 0x50000, failed: true},
	}}
	for _, c := range []struct {
		name       string
		start, end uint64
		want       []spans.Span
		whole      bool
	}{
		{"the same range", 0x10000, 0x20000, []spans.Span{{Start: 0x11000, End: 0x13000}, {Start: 0x1e000, End: 0x20000}}, false},
		{"part of one (split)", 0x12000, 0x1f000, []spans.Span{{Start: 0x12000, End: 0x13000}, {Start: 0x1e000, End: 0x1f000}}, false},
		{"two joined (merged, grown)", 0x1f000, 0x38000, []spans.Span{{Start: 0x1f000, End: 0x20000}, {Start: 0x20000, End: 0x21000}}, false},
		{"none touched", 0x30000, 0x40000, nil, false},
		{"a failed one", 0x3f000, 0x41000, nil, true},
	} {
		got, whole := tp.preWritten(&gocrpb.Vma{Start: c.start, End: c.end})
		if whole != c.whole || !cmp.Equal(got, c.want) {
			t.Errorf("%s: preWritten = %v, whole %v; want %v, whole %v", c.name, got, whole, c.want, c.whole)
		}
	}
}
