//go:build linux

package parasite

import "testing"

func TestRegionAddrAbove(t *testing.T) {
	for _, c := range []struct {
		lowest, minAddr, want uint64
	}{
		// A PIE executable's first mapping: just below it, a gap between.
		{0x55d0c8a00000, 65536, 0x55d0c8a00000 - regionGap - regionSize},
		// A non-PIE one at 4 MiB.
		{0x400000, 65536, 0x400000 - regionGap - regionSize},
		// The region starts on a page.
		{0x400000 + 0x800, 4096, 0x400000 - regionGap - regionSize},
		// No room above mmap_min_addr: anywhere.
		{0x10000 + regionGap + regionSize - 1, 65536, 0},
		{0x10000, 65536, 0},
		// Nothing known, or mmap_min_addr 0 (page 0 stays out).
		{0, 65536, 0},
		{regionGap + regionSize, 0, 0},
		{4096 + regionGap + regionSize, 0, 4096},
	} {
		if got := regionAddrAbove(c.lowest, c.minAddr); got != c.want {
			t.Errorf("regionAddrAbove(%#x, %#x) = %#x, want %#x", c.lowest, c.minAddr, got, c.want)
		}
	}
}
