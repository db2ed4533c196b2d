//go:build linux

package main

import (
	"math"
	"slices"
)

const (
	// ratioMethod is what the memory rows' dump/limit and restore/limit
	// verdicts are computed from.
	ratioMethod = "order-balanced paired ratio: geometric mean of the median per-round ratio (gocr / limit in the same round) over gocr-first rounds and over limit-first rounds"
)

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

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// summarize sets each memory row's ratios from its rounds: the median of
// the per-round paired ratios, which the verdicts use, and the ratio of
// the medians, kept for comparison.
// balancedRatio is the geometric mean of the median ratio over the rounds
// the limit ran first and over those gocr ran first; with rounds of one
// order only, their median.
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
