//go:build linux

package restorer

import (
	"testing"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

func TestJobOffsets(t *testing.T) {
	const s = int64(1e9)
	dumped := &gocrpb.Clocks{RealtimeNs: 1000 * s, MonotonicNs: 50 * s, BoottimeNs: 60 * s, MonotonicOffsetNs: 7 * s, BoottimeOffsetNs: 8 * s}
	for _, tc := range []struct {
		name       string
		sameBoot   bool
		now        procfs.Clocks
		mono, boot int64
	}{
		// The clocks kept running: the namespace's offsets stay.
		{name: "same boot", sameBoot: true, now: procfs.Clocks{RealtimeNs: 2000 * s}, mono: 7 * s, boot: 8 * s},
		// 30 s later on a boot 500 s old: the job's clocks read 80 and
		// 90 s, 420 and 410 s behind this boot's.
		{name: "a boot up longer", now: procfs.Clocks{RealtimeNs: 1030 * s, MonotonicNs: 500 * s, BoottimeNs: 500 * s}, mono: -420 * s, boot: -410 * s},
		// On a boot 10 s old: ahead.
		{name: "a boot up shorter", now: procfs.Clocks{RealtimeNs: 1030 * s, MonotonicNs: 10 * s, BoottimeNs: 10 * s}, mono: 70 * s, boot: 80 * s},
		// The wall clock went back: no time passed.
		{name: "wall clock back", now: procfs.Clocks{RealtimeNs: 900 * s, MonotonicNs: 10 * s, BoottimeNs: 10 * s}, mono: 40 * s, boot: 50 * s},
	} {
		mono, boot, err := jobOffsets(dumped, tc.sameBoot, tc.now)
		if err != nil || mono != tc.mono || boot != tc.boot {
			t.Errorf("%s: offsets %d, %d, %v; want %d, %d", tc.name, mono, boot, err, tc.mono, tc.boot)
		}
	}
	if _, _, err := jobOffsets(&gocrpb.Clocks{MonotonicNs: -1}, false, procfs.Clocks{}); err == nil {
		t.Error("a negative CLOCK_MONOTONIC in the images: no error")
	}
}
