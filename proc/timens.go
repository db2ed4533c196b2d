//go:build linux

package proc

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Clocks are CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME in
// nanoseconds, read one after the other (man 2 clock_gettime), in the
// caller's time namespace.
type Clocks struct {
	RealtimeNs, MonotonicNs, BoottimeNs int64
}

// ReadClocks reads the three clocks, microseconds apart.
func ReadClocks() (Clocks, error) {
	var c Clocks
	for _, r := range []struct {
		id int32
		v  *int64
	}{{unix.CLOCK_REALTIME, &c.RealtimeNs}, {unix.CLOCK_MONOTONIC, &c.MonotonicNs}, {unix.CLOCK_BOOTTIME, &c.BoottimeNs}} {
		var ts unix.Timespec
		if err := unix.ClockGettime(r.id, &ts); err != nil {
			return c, fmt.Errorf("clock_gettime %d: %w", r.id, err)
		}
		*r.v = ts.Nano()
	}
	return c, nil
}

// TimensOffsets are the offsets of a time namespace from the machine's
// initial one, in nanoseconds (man 7 time_namespaces).
type TimensOffsets struct {
	MonotonicNs int64
	BoottimeNs  int64
}

// ReadTimensOffsets reads /proc/PID/timens_offsets: lines of a clock name
// ("monotonic", "boottime"), signed seconds and nanoseconds below one
// second (man 7 time_namespaces). It shows the namespace the process
// creates its children in (fs/proc/base.c timens_offsets_show), its own
// unless it unshared CLONE_NEWTIME since.
func ReadTimensOffsets(pid int) (TimensOffsets, error) {
	b, err := ReadAll(fmt.Sprintf("/proc/%d/timens_offsets", pid))
	if err != nil {
		return TimensOffsets{}, err
	}
	o, err := parseTimensOffsets(b)
	if err != nil {
		return o, fmt.Errorf("read /proc/%d/timens_offsets: %w", pid, err)
	}
	return o, nil
}

func parseTimensOffsets(b []byte) (TimensOffsets, error) {
	var o TimensOffsets
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return o, fmt.Errorf("bad line %q", line)
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || nsec < 0 || nsec >= 1e9 {
			return o, fmt.Errorf("bad line %q", line)
		}
		ns := sec*1e9 + nsec
		switch f[0] {
		case "monotonic":
			o.MonotonicNs = ns
		case "boottime":
			o.BoottimeNs = ns
		default:
			return o, fmt.Errorf("unknown clock %q", f[0])
		}
	}
	return o, nil
}
