//go:build linux

package restorer

import (
	"golang.org/x/sys/cpu"

	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/crc32c"
)

// Page data is verified against its checksums as the restorer reads it
// in: each chunk summed right after its pread, while its bytes are still
// in the CPU's cache, on the SSE4.2 crc32 instruction (nolibc/crc32c.h),
// by the thread that reads its stream. Verifying every page image before
// anything is created read all of it once more, as long again as the
// restorer's own copy (docs/PERFORMANCE.md). A bad chunk now fails the
// restore after its processes exist but before any of them runs a single
// instruction of the job's: they are killed, and everything the restore
// made is undone, as at any failure (docs/IMAGES.md, "Integrity").
//
// The restorer verifies only the chunks one thread reads whole, in file
// order: its stream's runs, but those read in at a stage before the
// children are forked (stage.go), which gocr verifies before, as it does
// every chunk on a CPU without SSE4.2.

// verifyAsRead: the restorer can sum what it reads.
var verifyAsRead = cpu.X86.HasSSE42

// unverifiedPages is a page image opened with its data not yet verified.
type unverifiedPages struct {
	img  *images.Data
	sums *images.PageSums
}

// openPages opens the page image of pid's stream s, its data left for
// planPageSums to verify where the restorer cannot.
func openPages(dir *images.Dir, pid, s int) (*images.Data, *images.PageSums, error) {
	if !verifyAsRead {
		img, err := dir.OpenPages(pid, s)
		return img, nil, err
	}
	return dir.OpenPagesUnverified(pid, s)
}

// planPageSums leaves to the restorer each chunk of the process's own
// page images that the thread of its stream reads whole, and verifies
// the others now, before anything is created. It runs once the runs are
// final (staged, split for huge pages).
func (p *plan) planPageSums(dir *images.Dir) error {
	for s, u := range p.unverified {
		if u.sums == nil {
			continue // verified when opened
		}
		now := verifyNow(p.pages, s, u.img.Off, u.sums.Chunk, len(u.sums.Sums))
		if err := dir.VerifyPageChunks(u.img, u.sums, func(c int) bool { return !now[c] }); err != nil {
			return err
		}
		sf := &p.args.SumFiles[s]
		*sf = rstSumFile{DataOff: uint64(u.img.Off), DataSize: uint64(u.img.Size), Chunk: uint64(u.sums.Chunk), First: uint32(len(p.chunkSums))}
		for c, sum := range u.sums.Sums {
			cs := rstChunkSum{Crc: sum}
			if !now[c] {
				cs.Here = 1
				sf.Here++
			}
			p.chunkSums = append(p.chunkSums, cs)
		}
		if sf.Here == 0 {
			sf.Chunk = 0
		}
	}
	p.unverified = nil
	return nil
}

// verifyNow says, for each of the n chunks of chunk bytes of page file
// s, its data from file offset off, whether gocr verifies it before the
// restore: some of its bytes are in a run read in at a stage
// (stage_memory) or by another stream's thread, so that the restorer does
// not read it whole in one go.
func verifyNow(pages []rstPages, s int, off, chunk int64, n int) []bool {
	now := make([]bool, n)
	for _, r := range pages {
		if int(r.File) != s || r.NrPages == 0 || r.Flags&rstPagesStaged == 0 && int(r.Stream) == s {
			continue
		}
		from := int64(r.FileOff) - off
		to := from + int64(r.NrPages)*pageSize
		for c := max(from/chunk, 0); c < int64(n) && c*chunk < to; c++ {
			now[c] = true
		}
	}
	return now
}

// encodeSums places the chunk sums, and the lane tables if the restorer
// verifies any chunk, with place (encode).
func (p *plan) encodeSums(place func(v any, n int) uint32) {
	a := &p.args
	a.NrChunkSums, a.ChunkSumsOff = uint32(len(p.chunkSums)), place(p.chunkSums, len(p.chunkSums))
	a.SumTablesOff, a.SumLane = 0, 0
	for _, sf := range a.SumFiles {
		if sf.Here > 0 {
			a.SumTablesOff, a.SumLane = place(crc32c.LaneTables(), crc32c.LaneTablesSize), crc32c.Lane
			return
		}
	}
}
