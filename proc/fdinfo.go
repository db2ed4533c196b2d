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

// FdInfo holds the common lines of /proc/PID/fdinfo/FD
// (fs/proc/fd.c, seq_show; man 5 proc).
type FdInfo struct {
	Pos int64
	// Flags are the file's f_flags with O_CLOEXEC added when the
	// descriptor is close-on-exec, which fs/proc/fd.c does because the
	// flag belongs to the descriptor, not the file.
	Flags uint32
	MntID int
	Ino   uint64
	// Locks are the file locks held through this fd, one per "lock:"
	// line (fs/proc/fd.c seq_show, fs/locks.c show_fd_locks): flock and
	// OFD locks of its open file description, and POSIX locks the
	// process took through it.
	Locks []FdLock
}

// FdLock is one "lock:" line of fdinfo, in /proc/locks' format (fs/locks.c
// lock_get_status; man 5 proc, /proc/locks): "1: POSIX  ADVISORY  WRITE
// 1234 fe:00:5678 0 EOF".
type FdLock struct {
	Class string // FLOCK, OFDLCK, POSIX, or LEASE, DELEG, ...
	Mode  string // ADVISORY; for leases ACTIVE, BREAKING, ...
	Type  string // READ, WRITE (UNLCK for a lease being broken)
	Pid   int    // the holder's process, -1 for OFD locks
	Start int64  // first byte
	End   int64  // last byte, or -1: to the end of the file ("EOF")
}

// ParseFdInfo parses the pos, flags, mnt_id and ino lines; the
// per-type lines that follow (eventfd-count, tfd, inotify, ...) are
// skipped.
func ParseFdInfo(r io.Reader) (FdInfo, error) {
	var fi FdInfo
	var seenPos, seenFlags bool
	sc := bufio.NewScanner(r)
	sc.Split(splitLines)
	for sc.Scan() {
		key, val, found := cut(sc.Bytes(), ':')
		if !found {
			continue
		}
		val = trimSpace(val)
		ok := true
		switch string(key) {
		case "pos":
			fi.Pos, ok = decInt(val)
			seenPos = true
		case "flags":
			// Printed as "0%o".
			var v uint64
			v, ok = octUint(val)
			ok = ok && v <= 1<<32-1
			fi.Flags = uint32(v)
			seenFlags = true
		case "mnt_id":
			fi.MntID, ok = decIntN(val)
		case "ino":
			fi.Ino, ok = decUint(val)
		case "lock":
			var l FdLock
			if l, ok = parseFdLock(string(val)); ok {
				fi.Locks = append(fi.Locks, l)
			}
		}
		if !ok {
			return fi, fmt.Errorf("bad %s value %q", key, val)
		}
	}
	if err := sc.Err(); err != nil {
		return fi, err
	}
	if !seenPos || !seenFlags {
		return fi, fmt.Errorf("missing pos or flags")
	}
	return fi, nil
}

func parseFdLock(s string) (FdLock, bool) {
	f := strings.Fields(s)
	if len(f) != 8 || !strings.HasSuffix(f[0], ":") {
		return FdLock{}, false
	}
	l := FdLock{Class: f[1], Mode: f[2], Type: f[3], End: -1}
	var err error
	if l.Pid, err = strconv.Atoi(f[4]); err != nil {
		return l, false
	}
	if l.Start, err = strconv.ParseInt(f[6], 10, 64); err != nil {
		return l, false
	}
	if f[7] != "EOF" {
		if l.End, err = strconv.ParseInt(f[7], 10, 64); err != nil || l.End < l.Start {
			return l, false
		}
	}
	return l, true
}

// ReadFdInfo reads /proc/PID/fdinfo/FD.
func ReadFdInfo(pid, fd int) (FdInfo, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/fdinfo/" + strconv.Itoa(fd)
	b, err := ReadAll(pidPath(pid, "fdinfo/"+strconv.Itoa(fd)))
	if err != nil {
		return FdInfo{}, wrapErr(pid, op, err)
	}
	fi, err := ParseFdInfo(bytes.NewReader(b))
	if err != nil {
		return fi, wrapErr(pid, op, err)
	}
	return fi, nil
}
