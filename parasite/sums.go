//go:build linux

package parasite

import (
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

// sumsReserve is the end of the data area, where the parasite stores the
// sums of one command's streams.
const sumsReserve = 64 << 10

// WarmSums computes the shift tables the parasite's checksums use, so
// that a dump does it before the freeze rather than at its first page
// write, with the processes frozen.
func WarmSums() {
	if canSum {
		crc32c.LaneTables()
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
