//go:build linux

package dump

import (
	"slices"

	"github.com/gocr/gocr/gocrpb"
)

// span is [start, end) in bytes.
type span struct{ start, end uint64 }

// appendRun appends the part s of run r to runs.
func appendRun(runs []run, r run, s span) []run {
	if s.end <= s.start {
		return runs
	}
	piece := r
	piece.addr, piece.npages = s.start, (s.end-s.start)/pageSize
	if k := len(runs) - 1; k >= 0 && runs[k].addr+runs[k].npages*pageSize == piece.addr &&
		runs[k].vma == piece.vma && runs[k].readable == piece.readable {
		runs[k].npages += piece.npages
		return runs
	}
	return append(runs, piece)
}

// mergeSpans sorts spans and joins those that touch or overlap.
func mergeSpans(s []span) []span {
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	var out []span
	for _, x := range s {
		if k := len(out) - 1; k >= 0 && x.start <= out[k].end {
			out[k].end = max(out[k].end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

// cutPiece is a part of a span, inside the set or not.
type cutPiece struct {
	span
	in bool
}

// cutSpans cuts s at the edges of set (sorted, disjoint) into pieces in
// address order, each inside set or outside it.
func cutSpans(s span, set []span) []cutPiece {
	var out []cutPiece
	at := s.start
	for _, x := range set {
		if x.end <= at {
			continue
		}
		if x.start >= s.end {
			break
		}
		if x.start > at {
			out = append(out, cutPiece{span{at, x.start}, false})
			at = x.start
		}
		e := min(x.end, s.end)
		out = append(out, cutPiece{span{at, e}, true})
		at = e
	}
	if at < s.end {
		out = append(out, cutPiece{span{at, s.end}, false})
	}
	return out
}

// splitCovered divides runs into those a snapshot does not cover
// (written while frozen) and those it does (written from it).
func splitCovered(runs []run, mm *gocrpb.Mm) (frozen, covered []run) {
	for _, r := range runs {
		if coveredBySnapshot(mm.Vmas[r.vma]) {
			covered = append(covered, r)
		} else {
			frozen = append(frozen, r)
		}
	}
	return frozen, covered
}
