//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/sys/unix"
)

// Limit is one resource limit. Cur and Max are ^uint64(0) for
// "unlimited", RLIM_INFINITY as prlimit64 takes it.
type Limit struct {
	Resource int // unix.RLIMIT_*
	Cur, Max uint64
}

// limitNames are the row names of /proc/PID/limits, indexed by RLIMIT_*
// number (fs/proc/base.c, lnames; numbers from
// include/uapi/asm-generic/resource.h).
var limitNames = [...]string{
	unix.RLIMIT_CPU:        "Max cpu time",
	unix.RLIMIT_FSIZE:      "Max file size",
	unix.RLIMIT_DATA:       "Max data size",
	unix.RLIMIT_STACK:      "Max stack size",
	unix.RLIMIT_CORE:       "Max core file size",
	unix.RLIMIT_RSS:        "Max resident set",
	unix.RLIMIT_NPROC:      "Max processes",
	unix.RLIMIT_NOFILE:     "Max open files",
	unix.RLIMIT_MEMLOCK:    "Max locked memory",
	unix.RLIMIT_AS:         "Max address space",
	unix.RLIMIT_LOCKS:      "Max file locks",
	unix.RLIMIT_SIGPENDING: "Max pending signals",
	unix.RLIMIT_MSGQUEUE:   "Max msgqueue size",
	unix.RLIMIT_NICE:       "Max nice priority",
	unix.RLIMIT_RTPRIO:     "Max realtime priority",
	unix.RLIMIT_RTTIME:     "Max realtime timeout",
}

const rlimInfinity = ^uint64(0)

// ParseLimits parses /proc/PID/limits and returns all 16 limits in
// RLIMIT_* order. Row names contain spaces, so each row is matched
// against the known names rather than split on blanks (fs/proc/base.c,
// proc_pid_limits, prints "%-25s %-20s %-20s %-10s").
func ParseLimits(r io.Reader) ([]Limit, error) {
	var out [len(limitNames)]Limit
	var seen [len(limitNames)]bool
	sc := bufio.NewScanner(r)
	sc.Split(splitLines)
	header := true
	for sc.Scan() {
		line := sc.Bytes()
		if header {
			header = false
			continue
		}
		if len(trimSpace(line)) == 0 {
			continue
		}
		res := -1
		for i, name := range limitNames {
			if len(line) > len(name) && string(line[:len(name)]) == name && line[len(name)] == ' ' {
				res = i
				break
			}
		}
		if res < 0 {
			return nil, fmt.Errorf("unknown row %q", line)
		}
		if seen[res] {
			return nil, fmt.Errorf("%q twice", limitNames[res])
		}
		seen[res] = true
		rest := line[len(limitNames[res]):]
		var cur, max []byte
		cur, rest = nextField(rest)
		max, _ = nextField(rest)
		l := Limit{Resource: res}
		var ok1, ok2 bool
		l.Cur, ok1 = limitValue(cur)
		l.Max, ok2 = limitValue(max)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad values in %q", line)
		}
		out[res] = l
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("no %q row", limitNames[i])
		}
	}
	return out[:], nil
}

func limitValue(b []byte) (uint64, bool) {
	if string(b) == "unlimited" {
		return rlimInfinity, true
	}
	return decUint(b)
}

// ReadLimits reads /proc/PID/limits. Unlike prlimit64 it needs no
// privilege over the target.
func ReadLimits(pid int) ([]Limit, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/limits"
	b, err := ReadAll(pidPath(pid, "limits"))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	ls, err := ParseLimits(bytes.NewReader(b))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	return ls, nil
}
