//go:build linux

package proc

import (
	"bufio"
	"fmt"
	"io"
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
		tfd, err1 := strconv.Atoi(f[1])
		ev, err2 := strconv.ParseUint(f[3], 16, 32)
		data, err3 := strconv.ParseUint(f[5], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("malformed epoll line %q", line)
		}
		ws = append(ws, EpollWatch{Tfd: tfd, Events: uint32(ev), Data: data})
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
