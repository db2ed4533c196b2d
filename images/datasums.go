package images

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/gocr/gocr/internal/crc32c"
)

// DataChunkSize is how many bytes of a data image's data each of its
// checksums covers, from PagesDataOffset on: a writer that sums what it
// writes (AddDataSum) cuts its pieces on this grid.
const DataChunkSize = dataChunkSize

// dataSum is the CRC32-C of n bytes of a data image from file offset off.
type dataSum struct {
	off, n int64
	crc    uint32
}

// AddDataSum records the CRC32-C of n bytes a writer put in f, a data
// image of the dump being written, at file offset off, so that SealData
// need not read them back. A piece must lie within one chunk; SealData
// uses the pieces of a chunk only where they cover it exactly, each byte
// once, and reads it back otherwise (data written by other means, or
// written twice).
func (d *Dir) AddDataSum(f *os.File, off, n int64, crc uint32) {
	if n <= 0 || off < PagesDataOffset {
		return
	}
	name := filepath.Base(f.Name())
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w == nil || d.w.committed || d.w.closed {
		return
	}
	if d.w.sums == nil {
		d.w.sums = map[string][]dataSum{}
	}
	d.w.sums[name] = append(d.w.sums[name], dataSum{off, n, crc})
}

// takeDataSums hands over (and forgets) the pieces recorded for name.
func (d *Dir) takeDataSums(name string) []dataSum {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.w.sums[name]
	delete(d.w.sums, name)
	return s
}

// joinSums joins the recorded pieces of f's data into the checksums of
// the chunks they cover exactly: f.sums[c] for each c with f.known[c].
func (f *dataFile) joinSums(pieces []dataSum) {
	n := f.hdr.chunks()
	f.sums = make([]uint32, n)
	f.known = make([]bool, n)
	if len(pieces) == 0 {
		return
	}
	slices.SortFunc(pieces, func(a, b dataSum) int {
		if a.off != b.off {
			return int(min(max(a.off-b.off, -1), 1))
		}
		return int(min(max(a.n-b.n, -1), 1))
	})
	for i := 0; i < len(pieces); {
		p := pieces[i]
		c := (p.off - PagesDataOffset) / f.hdr.chunk
		if c >= n {
			i++ // past the data
			continue
		}
		start := PagesDataOffset + c*f.hdr.chunk
		end := start + min(f.hdr.chunk, f.hdr.size-c*f.hdr.chunk)
		// The pieces from i that lie in chunk c, in a row from its start.
		at, crc, tiled := start, uint32(0), true
		for ; i < len(pieces) && pieces[i].off < end; i++ {
			q := pieces[i]
			if q.off != at || q.off+q.n > end {
				tiled = false
				continue
			}
			crc = crc32c.Combine(crc, q.crc, q.n)
			at += q.n
		}
		if tiled && at == end {
			f.sums[c] = crc
			f.known[c] = true
		}
	}
}

// sampleEvery: SealData reads back one chunk in this many of those whose
// checksums its writers gave, and compares. A writer that summed wrong
// (a bug, a CPU fault) would otherwise seal a dump that no restore
// accepts, of a job the dump then ends.
const sampleEvery = 64

// checkJoined reads back a sample of the chunks whose checksums were
// joined from their writers' (every sampleEvery-th of each file, and its
// first) and says whether every one agrees.
func checkJoined(files []*dataFile) bool {
	buf := make([]byte, sumReadSize)
	for _, f := range files {
		n := 0
		for c, k := range f.known {
			if !k {
				continue
			}
			if n++; (n-1)%sampleEvery != 0 {
				continue
			}
			start := int64(c) * f.hdr.chunk
			got, err := sumRange(f.fd, f.base+PagesDataOffset+start, min(f.hdr.chunk, f.hdr.size-start), buf)
			if err != nil || got != f.sums[c] {
				return false
			}
		}
	}
	return true
}
