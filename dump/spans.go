//go:build linux

package dump

import (
	"github.com/gocr/gocr/internal/spans"
)

// appendRun appends the part s of run r to runs.
func appendRun(runs []run, r run, s spans.Span) []run {
	if s.End <= s.Start {
		return runs
	}
	piece := r
	piece.addr, piece.npages = s.Start, (s.End-s.Start)/pageSize
	if k := len(runs) - 1; k >= 0 && runs[k].addr+runs[k].npages*pageSize == piece.addr &&
		runs[k].vma == piece.vma && runs[k].readable == piece.readable {
		runs[k].npages += piece.npages
		return runs
	}
	return append(runs, piece)
}
