//go:build linux

package restorer

import "unsafe"

// unsafePointer is the address of a mapping gocr made, to name it in
// /proc/self/map_files.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
