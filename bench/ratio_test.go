//go:build linux

package main

import (
	"math"
	"testing"
)

// TestBalancedRatioCancelsOrder charges the side that runs second a factor
// k: the balanced ratio gives back the true r, where the plain median of
// the paired ratios does not.
func TestBalancedRatioCancelsOrder(t *testing.T) {
	const r, k = 0.8, 2.5
	// Rounds alternate, gocr first in even rounds. gocr second pays k
	// (r*k); the limit second pays k (r/k).
	var ratios []float64
	var limitFirst []bool
	for i := range 6 {
		lf := i%2 == 1
		limitFirst = append(limitFirst, lf)
		if lf {
			ratios = append(ratios, r*k)
		} else {
			ratios = append(ratios, r/k)
		}
	}
	if got := balancedRatio(ratios, limitFirst); math.Abs(got-r) > 1e-12 {
		t.Errorf("balancedRatio = %v, want %v", got, r)
	}
	if got := median(ratios); math.Abs(got-r) < 0.01 {
		t.Errorf("median = %v: the test's rounds do not show the order effect", got)
	}
}

// TestBalancedRatioOneOrder falls back to the median when every round ran
// in the same order, as with one round.
func TestBalancedRatioOneOrder(t *testing.T) {
	ratios := []float64{0.5, 0.9, 0.7}
	for _, lf := range []bool{false, true} {
		if got := balancedRatio(ratios, []bool{lf, lf, lf}); got != 0.7 {
			t.Errorf("all limitFirst=%v: balancedRatio = %v, want the median 0.7", lf, got)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []int64
		want int64
	}{{nil, 0}, {[]int64{3}, 3}, {[]int64{5, 1, 3}, 3}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}
