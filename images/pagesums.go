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

// PageChunkError is the error for chunk c of pid's page stream, which a
// reader found not to match its checksum as it read it in: the one
// OpenPages gives, verifying the image again; should it verify now, the
// image changed while it was read, and the error says so.
func (d *Dir) PageChunkError(pid, stream, c int) error {
	img, err := d.OpenPages(pid, stream)
	if err != nil {
		return err
	}
	path := img.Name()
	img.Close()
	return fmt.Errorf("open pages image of pid %d: %w", pid,
		d.damaged(formatErrorf(path, "page data chunk %d: checksum mismatch as it was read in, but not when read again: the image changed meanwhile", c)))
}
