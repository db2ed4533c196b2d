//go:build linux

package dump

import (
	"golang.org/x/sys/unix"

	gocrpb "gocr/proto"
)

// kcmpFile is KCMP_FILE (include/uapi/linux/kcmp.h): compare two fds'
// open file descriptions.
const kcmpFile = 0

// sameOpenFile reports whether two fds of pid share one open file
// description (dup, or `>log 2>&1`), which means one offset and one set of
// status flags; kcmp returns 0 for equal (man 2 kcmp).
func sameOpenFile(pid int, fd1, fd2 int32) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	return e == 0 && r == 0
}

// markShared points every fd that shares an open file description with a
// lower-numbered fd at that fd, so restore opens the file once and dups it.
func markShared(pid int, files *gocrpb.Files) {
	for i, f := range files.Fds {
		if f.Kind == gocrpb.FdKind_FD_INHERIT || f.File == nil {
			continue
		}
		for _, g := range files.Fds[:i] {
			if g.SharedWith != -1 || g.File == nil || g.File.Dev != f.File.Dev || g.File.Ino != f.File.Ino {
				continue
			}
			if sameOpenFile(pid, g.Fd, f.Fd) {
				f.SharedWith = g.Fd
				break
			}
		}
	}
}
