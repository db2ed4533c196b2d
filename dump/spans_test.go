//go:build linux

package dump

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/internal/spans"
)

func TestAppendRunJoinsOnlyWithinAVma(t *testing.T) {
	r := run{addr: 0x1000, npages: 8, readable: true, vma: 1}
	runs := appendRun(nil, r, spans.Span{Start: 0x1000, End: 0x3000})
	runs = appendRun(runs, r, spans.Span{Start: 0x3000, End: 0x4000})
	runs = appendRun(runs, r, spans.Span{Start: 0x4000, End: 0x4000}) // empty: nothing
	other := r
	other.vma = 2
	runs = appendRun(runs, other, spans.Span{Start: 0x4000, End: 0x5000})
	want := []run{{addr: 0x1000, npages: 3, readable: true, vma: 1}, {addr: 0x4000, npages: 1, readable: true, vma: 2}}
	if d := cmp.Diff(want, runs, cmp.AllowUnexported(run{})); d != "" {
		t.Errorf("appendRun (-want +got):\n%s", d)
	}
}
