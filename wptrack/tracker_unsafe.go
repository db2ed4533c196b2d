//go:build linux

package wptrack

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ptrOf[T any](v *T) unsafe.Pointer { return unsafe.Pointer(v) }

func sliceAddr(v []pageRegion) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(v))) }

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// ioctlScan runs PAGEMAP_SCAN on pagemap with arg, whose vec points into
// vec, and returns how many regions it filled.
func ioctlScan(pagemap *os.File, arg *pmScanArg, vec []pageRegion) (int, error) {
	for {
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, pagemap.Fd(), ioctlPagemapScan, uintptr(unsafe.Pointer(arg)))
		runtime.KeepAlive(vec)
		runtime.KeepAlive(pagemap)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

func sliceStart(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
