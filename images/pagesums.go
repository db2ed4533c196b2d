package images

import (
	"fmt"
	"runtime"
)

// PageSums are the stored checksums of a page image's data, one per chunk
// of Chunk bytes (the last may be shorter), for a reader that verifies
// the data as it reads it in: the restorer sums each chunk while its
// bytes are still in the CPU's cache, where verifying the image before
// would read all of it once more (docs/IMAGES.md, "Integrity").
type PageSums struct {
	Chunk int64
	Sums  []uint32
	pid   int
	df    *dataFile
}

// OpenPagesUnverified opens pid's page stream as OpenPages does, but
// checks all of it except its data against the checksums, which it
// returns instead: nil if they were verified when d was opened
// (OpenContext without PagesAsRead). The caller verifies every chunk before the data is
// used: those it reads in one go, as it reads them, and the others with
// VerifyPageChunks.
func (d *Dir) OpenPagesUnverified(pid, stream int) (*Data, *PageSums, error) {
	if stream < 0 || stream >= MaxPageStreams {
		return nil, nil, fmt.Errorf("open pages image of pid %d: stream %d, want 0..%d", pid, stream, MaxPageStreams-1)
	}
	img, df, err := d.openDataSums(pagesName(pid, stream), &dataHeader{kind: kindPages, stream: uint32(stream), subject: uint64(pid)}, false)
	if err != nil {
		return nil, nil, fmt.Errorf("open pages image of pid %d: %w", pid, err)
	}
	if df == nil {
		return img, nil, nil
	}
	return img, &PageSums{Chunk: df.hdr.chunk, Sums: df.sums, pid: pid, df: df}, nil
}

// VerifyPageChunks verifies every chunk of img, the data s belongs to,
// but those for which later says the reader verifies it, over every
// CPU; a bad chunk is reported as OpenPages reports it.
func (d *Dir) VerifyPageChunks(img *Data, s *PageSums, later func(chunk int) bool) error {
	df := *s.df
	df.fd = int(img.Fd())
	df.base = img.Off - PagesDataOffset
	df.later = make([]bool, len(df.sums))
	for c := range df.later {
		df.later[c] = later(c)
	}
	if e := sumChunks([]*dataFile{&df}, true, runtime.NumCPU()); e != nil {
		return fmt.Errorf("open pages image of pid %d: %w", s.pid, d.damaged(d.chunkError(&df, e)))
	}
	return nil
}

// PageChunkError is the error for a chunk of img, a page image opened
// with OpenPagesUnverified with its checksums s, which a reader found
// not to match its checksum as it read it in: every chunk is verified
// again, from the same file, and the first bad one named as OpenPages
// names it; should all verify now, the image changed while it was read,
// and the error says so.
func (d *Dir) PageChunkError(img *Data, s *PageSums) error {
	if err := d.VerifyPageChunks(img, s, func(int) bool { return false }); err != nil {
		return err
	}
	return fmt.Errorf("open pages image of pid %d: %w", s.pid,
		d.damaged(formatErrorf(s.df.path, "a chunk of page data did not match its checksum as it was read in, but every chunk does when read again: the image changed meanwhile")))
}
