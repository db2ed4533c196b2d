package proc

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// ReadAll reads a whole /proc or /sys file with plain system calls:
// open, reads until end of file, close. os.ReadFile costs twice as many
// for the same file: its open tries the file in the Go runtime's poller
// (fcntl and epoll_ctl each way) and sizes the buffer with fstat, for a
// file whose size shows as 0 (man 5 proc). Errors are *fs.PathError, as
// os.ReadFile's.
func ReadAll(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
