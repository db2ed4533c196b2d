//go:build linux

package parasite

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/gocr/gocr/internal/crc32c"
)

// Sums asks WriteStreams for the CRC32-C of what a stream writes, taken
// by the parasite as it writes it, while the bytes are in the CPU's cache
// (parasite/c/abi.h PCMD_WRITE_STREAMS): a page image's checksums then
// need no second read of its data. The data is cut into pieces at every
// file offset From + k·Chunk, and Add gets each piece's sum, in order.
type Sums struct {
	From, Chunk int64
	Add         func(off, n int64, crc uint32)
}

// canSum: the parasite sums with the SSE4.2 crc32 instruction. On a CPU
// without it a stream's Sums are not asked for, and Add is never called
// (the image is checksummed by reading it back).
var canSum = cpu.X86.HasSSE42

// sumLane is how many bytes each of the three lanes the parasite sums side
// by side takes: a 4 KiB page is three lanes and 16 bytes.
const sumLane = 1360

// sumTablesSize is the two shift tables' size (four tables of 256 u32 each).
const sumTablesSize = 2 * 4 * 256 * 4

// sumsReserve is the end of the data area, where the parasite stores the
// sums of one command's streams.
const sumsReserve = 64 << 10

// sumTables is Shift(·, sumLane) then Shift(·, 2·sumLane) as the parasite
// reads them (crc32c.ShiftTable), little-endian.
var sumTables = sync.OnceValue(func() []byte {
	b := make([]byte, 0, sumTablesSize)
	for _, n := range []int64{sumLane, 2 * sumLane} {
		t := crc32c.ShiftTable(n)
		for j := range t {
			for _, v := range t[j] {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		}
	}
	return b
})

// WarmSums computes the shift tables the parasite's checksums use, so
// that a dump does it before the freeze rather than at its first page
// write, with the processes frozen.
func WarmSums() {
	if canSum {
		sumTables()
	}
}

// nextCut is the first cut of s's grid after file offset off.
func (s *Sums) nextCut(off int64) int64 {
	if off < s.From {
		return s.From
	}
	return s.From + ((off-s.From)/s.Chunk+1)*s.Chunk
}

// pieces calls f for each piece of n bytes written from off.
func (s *Sums) pieces(off, n int64, f func(i int, off, n int64)) {
	for i, end := 0, off+n; off < end; i++ {
		k := min(s.nextCut(off), end) - off
		f(i, off, k)
		off += k
	}
}
