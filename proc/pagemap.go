//go:build linux

package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
// The PFN reads as zero without CAP_SYS_ADMIN, and soft-dirty is always
// clear on kernels built without CONFIG_MEM_SOFT_DIRTY, such as this
// project's.
const (
	PagemapPresent      = 1 << 63
	PagemapSwapped      = 1 << 62
	PagemapFileOrShared = 1 << 61
	PagemapExclusive    = 1 << 56
	PagemapSoftDirty    = 1 << 55
	PagemapPFNMask      = (1 << 55) - 1
)

// Pagemap is an open /proc/PID/pagemap: one 64-bit entry per virtual
// page, at file offset (address / page size) * 8.
type Pagemap struct {
	pid int
	f   *os.File
}

var pageSize = uint64(os.Getpagesize())

// OpenPagemap opens /proc/PID/pagemap, which needs ptrace read access to
// the target.
func OpenPagemap(pid int) (*Pagemap, error) {
	f, err := os.Open(pidPath(pid, "pagemap"))
	if err != nil {
		return nil, wrapErr(pid, "open /proc/"+strconv.Itoa(pid)+"/pagemap", err)
	}
	return &Pagemap{pid: pid, f: f}, nil
}

// Close closes the file.
func (p *Pagemap) Close() error { return p.f.Close() }

// Read returns the entries of the pages covering [start, end), start
// rounded down and end up to a page, in dst's storage when it is large
// enough. Pages above the task's address-space limit read as zero. One
// pread fills the whole range: the kernel walks the page tables in
// bounded steps itself (fs/proc/task_mmu.c, pagemap_read).
func (p *Pagemap) Read(start, end uint64, dst []uint64) ([]uint64, error) {
	if end < start {
		return dst[:0], fmt.Errorf("pagemap of pid %d: range %#x-%#x ends before it starts", p.pid, start, end)
	}
	first := start / pageSize
	// Rounding end up as end+pageSize-1 would overflow near 2^64.
	span := end - first*pageSize
	n := int(span / pageSize)
	if span%pageSize != 0 {
		n++
	}
	dst = slices.Grow(dst[:0], n)[:n]
	if n == 0 {
		return dst, nil
	}
	buf := entryBytes(dst)
	got, err := p.f.ReadAt(buf, int64(first*8))
	if errors.Is(err, io.EOF) {
		// The file ends at the task's address-space limit
		// (mm->task_size in pagemap_read); pages above it, such as
		// [vsyscall], have no entries, and read as not present.
		clear(buf[got:])
		err = nil
	}
	if err != nil {
		return dst[:0], wrapErr(p.pid, fmt.Sprintf("read /proc/%d/pagemap at %#x-%#x", p.pid, start, end), err)
	}
	return dst, nil
}
