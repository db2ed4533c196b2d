//go:build linux

// Package wptrack tracks which pages of a process are written, from
// outside it, on kernels without soft-dirty bits: a userfaultfd made in
// the process (the fd acts on its creator's memory, fs/userfaultfd.c)
// registered in write-protect mode with asynchronous resolution
// (UFFD_FEATURE_WP_ASYNC: the kernel unprotects a page at its first write
// and leaves it marked written, nothing waits), read and protected again
// with the PAGEMAP_SCAN ioctl on /proc/PID/pagemap
// (Documentation/admin-guide/mm/pagemap.rst, "PAGEMAP_SCAN"). Measured
// on this machine: ../shared/notes/incremental-without-soft-dirty.md.
package wptrack

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// CreateFlags are the flags a tracker's userfaultfd is made with in the
// process: close-on-exec (an exec'd image has a new mm the fd does not
// act on), non-blocking (nothing is ever read from it) and user-mode
// faults only, which needs no privilege.
const CreateFlags = unix.O_CLOEXEC | unix.O_NONBLOCK | uffdUserModeOnly

// Tracker is a userfaultfd gocr holds a copy of, acting on the memory of
// the process that made it. Its registrations last while any copy of it
// is open; once the last is closed the kernel unregisters every range
// (fs/userfaultfd.c userfaultfd_release), and tracking ends.
type Tracker struct {
	fd int
}

// Start does the API handshake on fd, a userfaultfd never used before,
// asking for asynchronous write-protection of populated and unpopulated
// pages, and takes fd over. Kernels before 6.7 lack those features
// (EINVAL): the error says so.
func Start(fd int) (*Tracker, error) {
	api := uffdioAPI{API: uffdAPI, Features: featureWPAsync | featureWPUnpopulated}
	if err := ioctl(fd, ioctlUffdioAPI, ptrOf(&api)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("userfaultfd API with async write-protect (Linux 6.7 or later): %w", err)
	}
	return &Tracker{fd: fd}, nil
}

// Resume takes over fd, a tracker's userfaultfd whose handshake was done
// before (Start): a copy kept between two dumps.
func Resume(fd int) *Tracker { return &Tracker{fd: fd} }

// Fd is the tracker's fd, owned by the tracker.
func (t *Tracker) Fd() int { return t.fd }

// Close closes gocr's copy of the fd.
func (t *Tracker) Close() error {
	if t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	return err
}

// Register registers [start, end), one whole VMA or several, in
// write-protect mode. Registering a range already registered with this
// tracker succeeds again; one registered with another userfaultfd fails
// with EBUSY, and a mapping that may never be written (no VM_MAYWRITE:
// a shared mapping of a file opened read-only) with EPERM
// (fs/userfaultfd.c userfaultfd_register). A tracker whose process has
// exec'd or exited acts on an mm no longer in use and fails.
func (t *Tracker) Register(start, end uint64) error {
	reg := uffdioRegister{Range: uffdioRange{Start: start, Len: end - start}, Mode: registerModeWP}
	if err := ioctl(t.fd, ioctlUffdioRegister, ptrOf(&reg)); err != nil {
		return fmt.Errorf("register %#x-%#x for write tracking: %w", start, end, err)
	}
	return nil
}

// Protect write-protects every page of [start, end), registered, so
// that the next scan reports exactly the pages written from now on.
func (t *Tracker) Protect(start, end uint64) error {
	wp := uffdioWriteprotect{Range: uffdioRange{Start: start, Len: end - start}, Mode: writeprotectModeWP}
	for {
		err := ioctl(t.fd, ioctlUffdioWriteprotect, ptrOf(&wp))
		// EAGAIN: the mm is changing under a non-cooperative event
		// (fs/userfaultfd.c mmap_changing); none is asked for here,
		// but retrying is what the ABI says to do.
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write-protect %#x-%#x: %w", start, end, err)
		}
		return nil
	}
}

// Unregister ends tracking of [start, end): its pages become writable
// and the VMA loses its "uw" flag.
func (t *Tracker) Unregister(start, end uint64) error {
	r := uffdioRange{Start: start, Len: end - start}
	if err := ioctl(t.fd, ioctlUffdioUnregister, ptrOf(&r)); err != nil {
		return fmt.Errorf("unregister %#x-%#x: %w", start, end, err)
	}
	return nil
}

// Region is a run of pages a scan found written.
type Region struct {
	Start, End uint64
	// Present: the pages hold data now (present or swapped out). A
	// written page that holds none was dropped (MADV_DONTNEED, a
	// truncated file) or never populated.
	Present bool
}

// scanVecLen is how many regions one PAGEMAP_SCAN call may return.
const scanVecLen = 1024

// Scan lists the pages of [start, end), which must lie in one VMA
// registered with a tracker, written since they were last protected,
// and protects them again in the same walk. pagemap is the process's
// /proc/PID/pagemap; the process must not run meanwhile (a page written
// between the walk's report and its protection would be lost otherwise:
// the kernel does both under the page table lock, but gocr has the
// process frozen anyway).
//
// Two facts make it exact (measured,
// ../shared/notes/incremental-without-soft-dirty.md): a call whose range
// reaches a VMA not registered in async mode fails with EPERM after
// protecting the VMAs before it, losing what they said, so a call never
// spans two VMAs (the caller passes one); and walk_end is unreliable once
// a call fills its vector, so the walk goes on from the end of the last
// region returned exactly when the vector came back full.
func Scan(pagemap *os.File, start, end uint64) ([]Region, error) {
	var out []Region
	vec := make([]pageRegion, scanVecLen)
	for start < end {
		arg := pmScanArg{
			Size:         96,
			Flags:        scanWPMatching | scanCheckWPAsync,
			Start:        start,
			End:          end,
			Vec:          uint64(sliceAddr(vec)),
			VecLen:       uint64(len(vec)),
			CategoryMask: pageIsWritten,
			ReturnMask:   pageIsWritten | pageIsPresent | pageIsSwapped,
		}
		n, err := ioctlScan(pagemap, &arg, vec)
		if err != nil {
			return nil, fmt.Errorf("scan written pages of %#x-%#x: %w", start, end, err)
		}
		for _, r := range vec[:n] {
			present := r.Categories&(pageIsPresent|pageIsSwapped) != 0
			if k := len(out) - 1; k >= 0 && out[k].End == r.Start && out[k].Present == present {
				out[k].End = r.End
				continue
			}
			out = append(out, Region{Start: r.Start, End: r.End, Present: present})
		}
		if n < len(vec) {
			break
		}
		next := vec[n-1].End
		if next <= start {
			return nil, fmt.Errorf("scan written pages of %#x-%#x: no progress at %#x", start, end, start)
		}
		start = next
	}
	return out, nil
}

// Probe tells whether this kernel tracks writes as this package needs:
// a userfaultfd with async write-protect, registered on a page of this
// process's own, and a PAGEMAP_SCAN of it.
func Probe() error {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, CreateFlags, 0, 0)
	if errno != 0 {
		return fmt.Errorf("userfaultfd: %w", errno)
	}
	t, err := Start(int(fd))
	if err != nil {
		return err
	}
	defer t.Close()
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	defer unix.Munmap(mem)
	start := uint64(sliceStart(mem))
	end := start + uint64(len(mem))
	if err := t.Register(start, end); err != nil {
		return err
	}
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return err
	}
	defer pm.Close()
	_, err = Scan(pm, start, end)
	return err
}
