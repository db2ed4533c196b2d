//go:build linux

package proc

import "testing"

func TestParseTimensOffsets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TimensOffsets
		bad  bool
	}{
		{in: "monotonic           0         0\nboottime            0         0\n"},
		// Seconds round down: -1.5 s is -2 s and 500000000 ns.
		{in: "monotonic      -2 500000000\nboottime  86400 1\n", want: TimensOffsets{MonotonicNs: -1_500_000_000, BoottimeNs: 86400_000_000_001}},
		{in: "monotonic 1 1000000000\n", bad: true},
		{in: "realtime 1 0\n", bad: true},
		{in: "monotonic 1\n", bad: true},
	} {
		got, err := parseTimensOffsets([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("parse %q: no error, got %+v", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parse %q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
