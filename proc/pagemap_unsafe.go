//go:build linux

package proc

import "unsafe"

// entryBytes views entries as the bytes pread fills. Pagemap entries are
// native-endian u64 (Documentation/admin-guide/mm/pagemap.rst), so no
// conversion or copy is needed.
func entryBytes(entries []uint64) []byte {
	if len(entries) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), len(entries)*8)
}
