//go:build linux

package proc

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Eventfd is an eventfd's state from its fdinfo (fs/eventfd.c
// eventfd_show_fdinfo: "eventfd-count: %16llx", "eventfd-semaphore: %d").
type Eventfd struct {
	Count     uint64
	Semaphore bool
}

// ParseEventfd reads the eventfd lines of an fdinfo file.
func ParseEventfd(r io.Reader) (Eventfd, error) {
	var e Eventfd
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "eventfd-count":
			n, err := strconv.ParseUint(val, 16, 64)
			if err != nil {
				return e, fmt.Errorf("eventfd-count %q: %w", val, err)
			}
			e.Count, found = n, true
		case "eventfd-semaphore":
			e.Semaphore = val == "1"
		}
	}
	if err := sc.Err(); err != nil {
		return e, err
	}
	if !found {
		return e, fmt.Errorf("no eventfd-count line")
	}
	return e, nil
}

// EpollWatch is one fd registered in an epoll instance.
type EpollWatch struct {
	Tfd    int
	Events uint32
	Data   uint64
	// The watched file's inode and device (the kernel's dev_t, major
	// <<20 | minor), when the line shows them.
	HasFile bool
	Ino     uint64
	Sdev    uint32
}

// ParseEpollWatches reads the "tfd:" lines of an epoll fd's fdinfo
// (fs/eventpoll.c ep_show_fdinfo: "tfd: %8d events: %8x data: %16llx
// pos:%lli ino:%lx sdev:%x").
func ParseEpollWatches(r io.Reader) ([]EpollWatch, error) {
	var ws []EpollWatch
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "tfd:") {
			continue
		}
		f := strings.Fields(line)
		// tfd: N events: X data: Y pos:... ino:... sdev:...
		if len(f) < 6 || f[2] != "events:" || f[4] != "data:" {
			return nil, fmt.Errorf("malformed epoll line %q", line)
		}
		// The kernel's fd is a non-negative int; images keep it in an
		// int32, so a larger or negative one is refused, not truncated.
		tfd, err1 := strconv.ParseInt(f[1], 10, 32)
		ev, err2 := strconv.ParseUint(f[3], 16, 32)
		data, err3 := strconv.ParseUint(f[5], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || tfd < 0 {
			return nil, fmt.Errorf("malformed epoll line %q", line)
		}
		w := EpollWatch{Tfd: int(tfd), Events: uint32(ev), Data: data}
		var seenIno, seenSdev bool
		for _, kv := range f[6:] {
			k, v, _ := strings.Cut(kv, ":")
			var err error
			switch k {
			case "ino":
				w.Ino, err = strconv.ParseUint(v, 16, 64)
				seenIno = true
			case "sdev":
				var d uint64
				d, err = strconv.ParseUint(v, 16, 32)
				w.Sdev, seenSdev = uint32(d), true
			}
			if err != nil {
				return nil, fmt.Errorf("malformed epoll line %q", line)
			}
		}
		w.HasFile = seenIno && seenSdev
		ws = append(ws, w)
	}
	return ws, sc.Err()
}

func readFdInfoWith[T any](pid, fd int, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	path := fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd)
	f, err := os.Open(path)
	if err != nil {
		return zero, wrapErr(pid, "read "+path, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

// ReadEventfd reads the state of eventfd fd of pid.
func ReadEventfd(pid, fd int) (Eventfd, error) { return readFdInfoWith(pid, fd, ParseEventfd) }

// ReadEpollWatches reads the watch list of epoll fd fd of pid.
func ReadEpollWatches(pid, fd int) ([]EpollWatch, error) {
	return readFdInfoWith(pid, fd, ParseEpollWatches)
}

// ParseSignalfd reads a signalfd's mask (fs/signalfd.c
// signalfd_show_fdinfo: "sigmask:\t%016llx").
func ParseSignalfd(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok && key == "sigmask" {
			return strconv.ParseUint(strings.TrimSpace(val), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no sigmask line")
}

// Timerfd is a timerfd's state (fs/timerfd.c timerfd_show: "clockid: %d",
// "ticks: %llu", "settime flags: 0%o", "it_value: (%llu, %llu)",
// "it_interval: (%llu, %llu)"); it_value is the time left.
type Timerfd struct {
	ClockID             int
	Ticks               uint64
	SettimeFlags        uint32
	ValueNs, IntervalNs int64
}

// ParseTimerfd reads the timerfd lines of an fdinfo file.
func ParseTimerfd(r io.Reader) (Timerfd, error) {
	var t Timerfd
	seen := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "clockid":
			t.ClockID, err = strconv.Atoi(val)
			seen++
		case "ticks":
			t.Ticks, err = strconv.ParseUint(val, 10, 64)
			seen++
		case "settime flags":
			var f uint64
			f, err = strconv.ParseUint(val, 8, 32)
			t.SettimeFlags = uint32(f)
		case "it_value":
			t.ValueNs, err = parseTimespecPair(val)
			seen++
		case "it_interval":
			t.IntervalNs, err = parseTimespecPair(val)
			seen++
		}
		if err != nil {
			return t, fmt.Errorf("timerfd %s %q: %w", key, val, err)
		}
	}
	if err := sc.Err(); err != nil {
		return t, err
	}
	if seen != 4 {
		return t, fmt.Errorf("incomplete timerfd fdinfo")
	}
	return t, nil
}

// parseTimespecPair reads "(sec, nsec)" as nanoseconds. The kernel prints
// both unsigned (%llu) from a ktime_t, an int64 of nanoseconds, so a
// negative part, nsec of a second or more, or a sum past int64 is refused:
// unchecked, sec*1e9 overflowed into a wrong, even negative, time.
func parseTimespecPair(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, fmt.Errorf("not a (sec, nsec) pair")
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return 0, err
	}
	nsec, err := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err != nil {
		return 0, err
	}
	if sec < 0 || nsec < 0 || nsec >= 1e9 || sec > (math.MaxInt64-nsec)/1e9 {
		return 0, fmt.Errorf("(%d, %d) is no time a timerfd holds", sec, nsec)
	}
	return sec*1e9 + nsec, nil
}

// InotifyWatch is one watch of an inotify fd (fs/notify/fdinfo.c
// inotify_fdinfo: "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x"
// then the file handle: "fhandle-bytes:%x fhandle-type:%x f_handle:%*phN").
type InotifyWatch struct {
	Wd          int
	Ino         uint64
	Sdev        uint32 // the kernel's dev_t: major<<20 | minor
	Mask        uint32
	IgnoredMask uint32
	HandleType  int32
	Handle      []byte
}

// inotifyBits is the width of each inotify fdinfo value: wd and
// fhandle-bytes are non-negative ints, the rest u32 but ino (an unsigned
// long); 0, an int's width, for a key this parser does not read.
var inotifyBits = map[string]int{
	"wd": 31, "ino": 64, "sdev": 32, "mask": 32, "ignored_mask": 32,
	"fhandle-bytes": 31, "fhandle-type": 32,
}

// ParseInotify reads the watches of an inotify fd.
func ParseInotify(r io.Reader) ([]InotifyWatch, error) {
	var ws []InotifyWatch
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "inotify ") {
			continue
		}
		var w InotifyWatch
		var hbytes int
		for _, field := range strings.Fields(line)[1:] {
			k, v, ok := strings.Cut(field, ":")
			if !ok {
				continue
			}
			var n uint64
			var err error
			if k != "f_handle" {
				// Each value is parsed at the width the kernel prints
				// it from, so none is truncated into another number.
				n, err = strconv.ParseUint(v, 16, inotifyBits[k])
			}
			switch k {
			case "wd":
				w.Wd = int(n)
			case "ino":
				w.Ino = n
			case "sdev":
				w.Sdev = uint32(n)
			case "mask":
				w.Mask = uint32(n)
			case "ignored_mask":
				w.IgnoredMask = uint32(n)
			case "fhandle-bytes":
				hbytes = int(n)
			case "fhandle-type":
				w.HandleType = int32(n)
			case "f_handle":
				w.Handle, err = hex.DecodeString(v)
			}
			if err != nil {
				return nil, fmt.Errorf("malformed inotify line %q: %w", line, err)
			}
		}
		if w.Wd <= 0 || len(w.Handle) != hbytes {
			return nil, fmt.Errorf("malformed inotify line %q", line)
		}
		ws = append(ws, w)
	}
	return ws, sc.Err()
}

// ReadSignalfd, ReadTimerfd and ReadInotify read fd fd of pid.
func ReadSignalfd(pid, fd int) (uint64, error)        { return readFdInfoWith(pid, fd, ParseSignalfd) }
func ReadTimerfd(pid, fd int) (Timerfd, error)        { return readFdInfoWith(pid, fd, ParseTimerfd) }
func ReadInotify(pid, fd int) ([]InotifyWatch, error) { return readFdInfoWith(pid, fd, ParseInotify) }
