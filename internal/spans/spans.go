// Package spans does the arithmetic of address ranges that incremental
// dumps and their restore share: merging, cutting one range at the edges
// of a set, and whether a set covers a range.
package spans

import "slices"

// Span is [Start, End) in bytes.
type Span struct{ Start, End uint64 }

// Merge sorts s and joins the spans that touch or overlap.
func Merge(s []Span) []Span {
	slices.SortFunc(s, func(a, b Span) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	var out []Span
	for _, x := range s {
		if k := len(out) - 1; k >= 0 && x.Start <= out[k].End {
			out[k].End = max(out[k].End, x.End)
			continue
		}
		out = append(out, x)
	}
	return out
}

// Piece is a part of a span, inside a set or not.
type Piece struct {
	Span
	In bool
}

// Cut cuts s at the edges of set (sorted, disjoint) into pieces in
// address order, each inside set or outside it.
func Cut(s Span, set []Span) []Piece {
	var out []Piece
	at := s.Start
	for _, x := range set {
		if x.End <= at {
			continue
		}
		if x.Start >= s.End {
			break
		}
		if x.Start > at {
			out = append(out, Piece{Span{at, x.Start}, false})
			at = x.Start
		}
		e := min(x.End, s.End)
		out = append(out, Piece{Span{at, e}, true})
		at = e
	}
	if at < s.End {
		out = append(out, Piece{Span{at, s.End}, false})
	}
	return out
}

// Covered says whether s lies inside one span of set (sorted, merged).
func Covered(s Span, set []Span) bool {
	i, _ := slices.BinarySearchFunc(set, s.Start, func(x Span, a uint64) int {
		if x.End <= a {
			return -1
		}
		if x.Start > a {
			return 1
		}
		return 0
	})
	return i < len(set) && set[i].Start <= s.Start && s.End <= set[i].End
}
