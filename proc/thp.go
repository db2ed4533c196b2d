//go:build linux

package proc

import (
	"strings"
)

// thpSysfs is where the kernel shows its transparent huge page settings
// (Documentation/admin-guide/mm/transhuge.rst).
const thpSysfs = "/sys/kernel/mm/transparent_hugepage"

// THPMode is the mode anonymous memory gets PMD-size (2 MiB) transparent
// huge pages in on this machine: "always", "madvise" or "never". It is
// the 2 MiB size's own setting (hugepages-2048kB/enabled, Linux 6.8), or
// the global one (enabled) where that says "inherit" or does not exist;
// "" where the kernel has no 2 MiB transparent huge pages
// (hpage_pmd_size).
func THPMode() string {
	size, err := ReadAll(thpSysfs + "/hpage_pmd_size")
	if err != nil || strings.TrimSpace(string(size)) != "2097152" {
		return ""
	}
	mode := sysfsChoice(thpSysfs + "/hugepages-2048kB/enabled")
	if mode == "" || mode == "inherit" {
		mode = sysfsChoice(thpSysfs + "/enabled")
	}
	return mode
}

// sysfsChoice is the bracketed choice of a sysfs setting such as
// "always [madvise] never", or "" if it cannot be read.
func sysfsChoice(path string) string {
	b, err := ReadAll(path)
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), "[")
	mode, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return ""
	}
	return mode
}
