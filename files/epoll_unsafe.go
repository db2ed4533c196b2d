//go:build linux

package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchesFile tells whether fd of pid is the open file the watch slot
// names in epPid's epoll: kcmp(2) compares the file pointers themselves
// (kernel/kcmp.c kcmp_epoll_target), where an inode would not tell two
// eventfds apart. A closed fd compares as not the file.
func watchesFile(pid, fd, epPid int, slot kcmpEpollSlot) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(epPid), kcmpEpollTfd, uintptr(fd), uintptr(unsafe.Pointer(&slot)), 0)
	return e == 0 && r == 0
}
