//go:build linux

package dump

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestMembarrierRegistrations: what MEMBARRIER_CMD_GET_REGISTRATIONS
// returned becomes the registrations to make again; a kernel without the
// command or without membarrier shows none; a bit gocr does not know is
// refused.
func TestMembarrierRegistrations(t *testing.T) {
	for _, c := range []struct {
		ret     int64
		want    uint32
		wantErr bool
	}{
		{0, 0, false},
		{0x154, 0x154, false},
		{0x10, 0x10, false},
		{-int64(unix.EINVAL), 0, false},
		{-int64(unix.ENOSYS), 0, false},
		{-int64(unix.EPERM), 0, true},
		{0x10 | 1<<12, 0, true},
	} {
		got, err := membarrierRegistrations(c.ret)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("membarrierRegistrations(%#x) = %#x, %v; want %#x, error %v", c.ret, got, err, c.want, c.wantErr)
		}
	}
}
