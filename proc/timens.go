//go:build linux

package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

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
	var o TimensOffsets
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", pid))
	if err != nil {
		return o, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return o, fmt.Errorf("read /proc/%d/timens_offsets: bad line %q", pid, line)
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || nsec < 0 || nsec >= 1e9 {
			return o, fmt.Errorf("read /proc/%d/timens_offsets: bad line %q", pid, line)
		}
		ns := sec*1e9 + nsec
		switch f[0] {
		case "monotonic":
			o.MonotonicNs = ns
		case "boottime":
			o.BoottimeNs = ns
		default:
			return o, fmt.Errorf("read /proc/%d/timens_offsets: unknown clock %q", pid, f[0])
		}
	}
	return o, nil
}
