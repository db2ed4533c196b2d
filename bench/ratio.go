//go:build linux

package main

import (
	"math"
	"slices"
)

// ratioMethod is saved with the results to say what the memory rows'
// dump/limit and restore/limit verdicts are computed from.
const ratioMethod = "order-balanced paired ratio: geometric mean of the median per-round ratio (gocr / limit in the same round) over gocr-first rounds and over limit-first rounds"

// summarize sets each memory row's ratios from its rounds: the
// order-balanced paired ratio, which the verdicts use, and for comparison
// the plain median of the paired ratios and the ratio of the medians.
func (b *bench) summarize() {
	for _, r := range b.res.Memory {
		r.DumpRatio = balancedRatio(r.DumpRatios, r.LimitFirst)
		r.RestoreRatio = balancedRatio(r.RestoreRatios, r.LimitFirst)
		r.DumpRatioMedian = median(r.DumpRatios)
		r.RestoreRatioMedian = median(r.RestoreRatios)
		r.DumpRatioOfMedians = ratio(median(r.DumpNs), median(r.LimitWriteNs))
		r.RestoreRatioOfMedians = ratio(median(r.RestoreNs), median(r.LimitReadNs))
	}
}

// balancedRatio is the geometric mean of the median ratio over the rounds
// the limit ran first and over those gocr ran first; with rounds of one
// order only, their median.
//
// Why paired: this VM's first-touch memory and disk flushes swing 2-7x
// from round to round, and both sides of one round mostly meet the same
// conditions, so round i's gocr time over round i's limit is far steadier
// than either series, or the ratio of their medians. Why balanced: what a
// round does not share is order. Whichever runs second meets the memory
// the first just used or freed (handed back to the host) and often pays
// 2-3x for it. Rounds alternate the order (even round counts give as many
// of each), and a factor k charged to the second side gives r*k in one
// order and r/k in the other, whose geometric mean is r.
func balancedRatio(ratios []float64, limitFirst []bool) float64 {
	var lf, gf []float64
	for i, r := range ratios {
		if i < len(limitFirst) && limitFirst[i] {
			lf = append(lf, r)
		} else {
			gf = append(gf, r)
		}
	}
	if len(lf) == 0 || len(gf) == 0 {
		return median(ratios)
	}
	return math.Sqrt(median(lf) * median(gf))
}

// median of a series of times or of ratios.
func median[T int64 | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is a/b, or 0 when there is no b to compare with.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
