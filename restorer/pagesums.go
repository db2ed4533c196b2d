//go:build linux

package restorer

import (
	"fmt"

	"golang.org/x/sys/cpu"

	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/crc32c"
)

// Page data is verified against its checksums as the restorer reads it
// in: each chunk summed right after its pread, while its bytes are still
// in the CPU's cache, on the SSE4.2 crc32 instruction (nolibc/crc32c.h),
// by the thread that reads it. Verifying every page image before
// anything is created read all of it once more, as long again as the
// restorer's own copy (docs/PERFORMANCE.md). A bad chunk now fails the
// restore after its processes exist but before any of them runs a single
// instruction of the job's: they are killed, and everything the restore
// made is undone, as at any failure (docs/IMAGES.md, "Integrity").
//
// The restorer verifies only the chunks one thread reads whole, in file
// order: of this dump's page images and of the parent dumps' an
// incremental dump takes pages from (chain.go). gocr verifies before
// the chunks read otherwise: in part (a parent's chunk of which the
// child took only some pages), or in part at a stage before the
// children are forked (stage.go), and every chunk on a CPU without
// SSE4.2; a parent's chunks no run reads are not read at all.

// verifyAsRead: the restorer can sum what it reads.
var verifyAsRead = cpu.X86.HasSSE42

// unverifiedPages is a page file of the plan opened with its data not
// yet verified.
type unverifiedPages struct {
	file uint32 // its index in the plan's page files
	dir  *images.Dir
	img  *images.Data
	sums *images.PageSums
	// what names it, for an error: "" for this dump, else "parent dump
	// DIR"
	what string
}

// chunkError is the error for a bad chunk of u that the restorer found.
func (u unverifiedPages) chunkError() error {
	return u.named(u.dir.PageChunkError(u.img, u.sums))
}

// named prefixes err with what names u.
func (u unverifiedPages) named(err error) error {
	if err == nil || u.what == "" {
		return err
	}
	return fmt.Errorf("%s: %w", u.what, err)
}

// openPages opens the page image of pid's stream s in dir, its data left
// for planPageSums to verify where the restorer cannot.
func openPages(dir *images.Dir, pid, s int) (*images.Data, *images.PageSums, error) {
	if !verifyAsRead {
		img, err := dir.OpenPages(pid, s)
		return img, nil, err
	}
	return dir.OpenPagesUnverified(pid, s)
}

// planPageSums leaves to the restorer each chunk of the plan's page files
// that one thread reads whole, and verifies the others that are read,
// now, before anything is created. It runs once the runs are final
// (staged, split for huge pages).
func (p *plan) planPageSums() error {
	p.sumFiles = make([]rstSumFile, len(p.pageFiles))
	p.pageErrors = make([]func() error, len(p.pageFiles))
	for _, u := range p.unverified {
		if u.sums == nil {
			continue // verified when opened
		}
		here, now := chunkReaders(p.pages, u.file, u.img.Off, u.sums.Chunk, u.img.Size, len(u.sums.Sums))
		if err := u.dir.VerifyPageChunks(u.img, u.sums, func(c int) bool { return !now[c] }); err != nil {
			return u.named(err)
		}
		sf := &p.sumFiles[u.file]
		*sf = rstSumFile{DataOff: uint64(u.img.Off), DataSize: uint64(u.img.Size), Chunk: uint64(u.sums.Chunk), First: uint32(len(p.chunkSums))}
		for c, sum := range u.sums.Sums {
			cs := rstChunkSum{Crc: sum}
			if here[c] {
				cs.Here = 1
				sf.Here++
			}
			p.chunkSums = append(p.chunkSums, cs)
		}
		if sf.Here == 0 {
			sf.Chunk = 0
		}
		p.pageErrors[u.file] = u.chunkError
	}
	p.unverified = nil
	return nil
}

// chunkReaders says who verifies each of the n chunks of chunk bytes of
// page file f, its data size bytes from file offset off: here, the
// restorer as it reads it in, where one thread reads all of the file's
// runs (but staged ones) and all of the chunk, none of it staged; now,
// gocr before the restore, where some of it is read otherwise (staged,
// or only in part, or the file by several threads); neither, where no
// run reads any of it.
func chunkReaders(pages []rstPages, f uint32, off, chunk, size int64, n int) (here, now []bool) {
	covered := make([]int64, n)
	staged := make([]bool, n)
	readers := map[uint32]bool{}
	for _, r := range pages {
		if r.File != f || r.NrPages == 0 {
			continue
		}
		isStaged := r.Flags&rstPagesStaged != 0
		if !isStaged {
			readers[r.Stream] = true
		}
		from := int64(r.FileOff) - off
		to := from + int64(r.NrPages)*pageSize
		for c := max(from/chunk, 0); c < int64(n) && c*chunk < to; c++ {
			covered[c] += min(to, (c+1)*chunk) - max(from, c*chunk)
			staged[c] = staged[c] || isStaged
		}
	}
	here, now = make([]bool, n), make([]bool, n)
	for c := range n {
		length := min(chunk, size-int64(c)*chunk)
		switch {
		case covered[c] == 0:
		case len(readers) == 1 && !staged[c] && covered[c] == length:
			here[c] = true
		default:
			now[c] = true
		}
	}
	return here, now
}

// encodeSums places the sum files, the chunk sums, and the lane tables if
// the restorer verifies any chunk, with place (encode).
func (p *plan) encodeSums(place func(v any, n int) uint32) {
	a := &p.args
	a.NrSumFiles, a.SumFilesOff = uint32(len(p.sumFiles)), place(p.sumFiles, len(p.sumFiles))
	a.NrChunkSums, a.ChunkSumsOff = uint32(len(p.chunkSums)), place(p.chunkSums, len(p.chunkSums))
	a.SumTablesOff, a.SumLane = 0, 0
	for _, sf := range p.sumFiles {
		if sf.Here > 0 {
			a.SumTablesOff, a.SumLane = place(crc32c.LaneTables(), crc32c.LaneTablesSize), crc32c.Lane
			return
		}
	}
}
