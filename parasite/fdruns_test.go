package parasite

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFdRuns(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want [][2]int64
	}{
		{nil, nil},
		{[]int64{7}, [][2]int64{{7, 7}}},
		{[]int64{5, 3, 4, 6}, [][2]int64{{3, 6}}},
		{[]int64{3, 5, 6, 9, 3}, [][2]int64{{3, 3}, {5, 6}, {9, 9}}},
	} {
		if got := fdRuns(tc.in); !cmp.Equal(got, tc.want) {
			t.Errorf("fdRuns(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
