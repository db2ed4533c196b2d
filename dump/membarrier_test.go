//go:build linux

package dump

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestMembarrierRegistrations: what MEMBARRIER_CMD_GET_REGISTRATIONS
// returned becomes the registrations to make again; on a kernel without
// the command, the private ones the parasite found by trying them; a
// kernel without membarrier has none; a bit gocr does not know is
// refused.
func TestMembarrierRegistrations(t *testing.T) {
	for _, c := range []struct {
		ret     int64
		probed  int64
		want    uint32
		wantErr bool
	}{
		{0, 0, 0, false},
		{0x154, 0, 0x154, false},
		{0x10, 0x40, 0x10, false},
		{-int64(unix.EINVAL), 0, 0, false},
		{-int64(unix.EINVAL), 0x150, 0x150, false},
		{-int64(unix.EINVAL), 0x154, 0x150, false},
		{-int64(unix.ENOSYS), 0, 0, false},
		{-int64(unix.EPERM), 0, 0, true},
		{0x10 | 1<<12, 0, 0, true},
	} {
		got, err := membarrierRegistrations(c.ret, c.probed)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("membarrierRegistrations(%#x, %#x) = %#x, %v; want %#x, error %v", c.ret, c.probed, got, err, c.want, c.wantErr)
		}
	}
}
