//go:build linux

package dump

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// inotifyPath finds the file an inotify watch is on. fdinfo gives its file
// handle and the filesystem's device (the kernel's dev_t, major<<20|minor,
// include/linux/kdev_t.h); open_by_handle_at(2) on any mount of that
// device opens it, and /proc/self/fd names it.
func inotifyPath(w proc.InotifyWatch) (string, error) {
	major, minor := w.Sdev>>20, w.Sdev&0xfffff
	mnt, err := mountOf(major, minor)
	if err != nil {
		return "", err
	}
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open mount %s: %w", mnt, err)
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(w.HandleType, w.Handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("open watched file by handle: %w", err)
	}
	defer unix.Close(fd)
	path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(path, " (deleted)") {
		return "", fmt.Errorf("watched file %s was deleted", strings.TrimSuffix(path, " (deleted)"))
	}
	return path, nil
}

// mountOf finds a mount point of the filesystem on major:minor in
// /proc/self/mountinfo (man 5 proc: field 3 is major:minor, field 5 the
// mount point).
func mountOf(major, minor uint32) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", major, minor)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[2] == want {
			return unescapeMountinfo(fields[4]), nil
		}
	}
	return "", fmt.Errorf("no mount of device %s", want)
}

// unescapeMountinfo undoes the octal escapes of space, tab, newline and
// backslash in mountinfo paths (fs/proc_namespace.c, mangle).
func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
