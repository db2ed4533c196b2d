//go:build linux

package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
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

// ReadFdInfo reads /proc/PID/fdinfo/FD.
func ReadFdInfo(pid, fd int) (FdInfo, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/fdinfo/" + strconv.Itoa(fd)
	f, err := os.Open(pidPath(pid, "fdinfo/"+strconv.Itoa(fd)))
	if err != nil {
		return FdInfo{}, wrapErr(pid, op, err)
	}
	defer f.Close()
	fi, err := ParseFdInfo(f)
	if err != nil {
		return fi, wrapErr(pid, op, err)
	}
	return fi, nil
}
