//go:build linux

package wptrack

// The userfaultfd ABI (include/uapi/linux/userfaultfd.h) and the
// PAGEMAP_SCAN ioctl (include/uapi/linux/fs.h, Linux 6.7 and later),
// defined here because the build machine's headers (Debian 12: 6.1) and
// golang.org/x/sys/unix lack the parts this package uses.
const (
	// uffdUserModeOnly is UFFD_USER_MODE_ONLY: the fd handles faults
	// from user mode only, which an unprivileged caller may ask for
	// whatever vm.unprivileged_userfaultfd says (fs/userfaultfd.c
	// userfaultfd_syscall_allowed).
	uffdUserModeOnly = 1

	uffdAPI = 0xaa // UFFD_API

	// UFFD_FEATURE_WP_UNPOPULATED: a page never populated counts as
	// write-protected too, so its first write is seen.
	featureWPUnpopulated = 1 << 13
	// UFFD_FEATURE_WP_ASYNC: a write to a protected page is resolved by
	// the kernel itself (the page made writable and its PTE marked
	// written), with no message to read and nothing blocking.
	featureWPAsync = 1 << 15

	registerModeWP     = 1 << 1 // UFFDIO_REGISTER_MODE_WP
	writeprotectModeWP = 1 << 0 // UFFDIO_WRITEPROTECT_MODE_WP

	// _IOWR/_IOR(UFFDIO 0xAA, nr, struct): direction << 30 | size << 16 |
	// type << 8 | nr (include/uapi/asm-generic/ioctl.h).
	ioctlUffdioAPI          = 3<<30 | 24<<16 | 0xaa<<8 | 0x3f // UFFDIO_API, struct uffdio_api
	ioctlUffdioRegister     = 3<<30 | 32<<16 | 0xaa<<8 | 0x00 // UFFDIO_REGISTER, struct uffdio_register
	ioctlUffdioUnregister   = 2<<30 | 16<<16 | 0xaa<<8 | 0x01 // UFFDIO_UNREGISTER (_IOR), struct uffdio_range
	ioctlUffdioWriteprotect = 3<<30 | 24<<16 | 0xaa<<8 | 0x06 // UFFDIO_WRITEPROTECT, struct uffdio_writeprotect

	// PAGEMAP_SCAN is _IOWR('f', 16, struct pm_scan_arg).
	ioctlPagemapScan = 3<<30 | 96<<16 | 'f'<<8 | 16

	// pm_scan_arg.flags.
	scanWPMatching   = 1 << 0 // PM_SCAN_WP_MATCHING: write-protect the pages reported
	scanCheckWPAsync = 1 << 1 // PM_SCAN_CHECK_WPASYNC: fail (EPERM) on a VMA not registered for async WP

	// Page categories (PAGE_IS_*).
	pageIsWritten = 1 << 1
	pageIsPresent = 1 << 3
	pageIsSwapped = 1 << 4
)

// uffdioAPI is struct uffdio_api.
type uffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// uffdioRange is struct uffdio_range.
type uffdioRange struct {
	Start uint64
	Len   uint64
}

// uffdioRegister is struct uffdio_register.
type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

// uffdioWriteprotect is struct uffdio_writeprotect.
type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

// pmScanArg is struct pm_scan_arg (96 bytes).
type pmScanArg struct {
	Size              uint64
	Flags             uint64
	Start             uint64
	End               uint64
	WalkEnd           uint64
	Vec               uint64
	VecLen            uint64
	MaxPages          uint64
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// pageRegion is struct page_region.
type pageRegion struct {
	Start      uint64
	End        uint64
	Categories uint64
}
