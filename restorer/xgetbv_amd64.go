//go:build linux

package restorer

// xgetbv0 returns XCR0.
func xgetbv0() uint64

// cpuXCR0 is the set of xsave features this machine's kernel enabled; an
// image using any feature outside it cannot be restored here.
func cpuXCR0() uint64 { return xgetbv0() }
