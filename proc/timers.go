//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PosixTimer is one timer_create(2) timer as /proc/PID/timers shows it
// (fs/proc/base.c show_timer; man 5 proc): its ID, clock and how it
// notifies. What is left of it and its interval only the process itself
// can read (timer_gettime).
type PosixTimer struct {
	ID       int32
	ClockID  int32
	Signo    int32
	SigValue uint64 // sigev_value, as a pointer
	// Notify is the kernel's sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1,
	// SIGEV_THREAD 2, with SIGEV_THREAD_ID 4 added when ToTid is a
	// thread (include/uapi/asm-generic/siginfo.h).
	Notify int32
	// Target is the process (or, with SIGEV_THREAD_ID, the thread) the
	// signal goes to.
	Target int32
}

// sigev_notify values (include/uapi/asm-generic/siginfo.h).
const (
	SigevSignal   = 0
	SigevNone     = 1
	SigevThread   = 2
	SigevThreadID = 4
)

// ParsePosixTimers parses /proc/PID/timers: per timer the lines
// "ID: 1", "signal: 14/00000000deadbeef", "notify: signal/pid.123" (or
// thread/tid.123, none/pid.123) and "ClockID: 1".
func ParsePosixTimers(r io.Reader) ([]PosixTimer, error) {
	var out []PosixTimer
	sc := bufio.NewScanner(r)
	var cur *PosixTimer
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		if key == "ID" {
			id, err := strconv.ParseInt(val, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad timer ID %q", val)
			}
			out = append(out, PosixTimer{ID: int32(id)})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s before the first ID", key)
		}
		var err error
		switch key {
		case "signal":
			sig, value, ok := strings.Cut(val, "/")
			var n int64
			if n, err = strconv.ParseInt(sig, 10, 32); ok && err == nil {
				cur.Signo = int32(n)
				cur.SigValue, err = strconv.ParseUint(value, 16, 64)
			}
		case "notify":
			how, target, ok := strings.Cut(val, "/")
			kind, num, ok2 := strings.Cut(target, ".")
			switch {
			case !ok || !ok2:
				err = fmt.Errorf("bad notify %q", val)
			case how == "signal":
				cur.Notify = SigevSignal
			case how == "none":
				cur.Notify = SigevNone
			case how == "thread":
				cur.Notify = SigevThread
			default:
				err = fmt.Errorf("unknown notify %q", how)
			}
			if kind == "tid" {
				cur.Notify |= SigevThreadID
			} else if kind != "pid" {
				err = fmt.Errorf("bad notify target %q", target)
			}
			var n int64
			if err == nil {
				n, err = strconv.ParseInt(num, 10, 32)
				cur.Target = int32(n)
			}
		case "ClockID":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			cur.ClockID = int32(n)
		default:
			err = fmt.Errorf("unknown line %q", key)
		}
		if err != nil {
			return nil, fmt.Errorf("timer %d: %s: %w", cur.ID, key, err)
		}
	}
	return out, sc.Err()
}

// ReadPosixTimers reads /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE).
func ReadPosixTimers(pid int) ([]PosixTimer, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/timers"
	b, err := ReadAll(pidPath(pid, "timers"))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	ts, err := ParsePosixTimers(bytes.NewReader(b))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	return ts, nil
}
