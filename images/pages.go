package images

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/gocrpb"
)

// PagemapWriter streams PageRange records into pagemap-PID.img, so a dump
// never holds a whole address space's page list in memory.
type PagemapWriter struct {
	pid int
	rw  *recordWriter
}

// CreatePagemap creates pagemap-PID.img. The caller must Close the writer.
func (d *Dir) CreatePagemap(pid int) (*PagemapWriter, error) {
	if err := checkPid("pagemap", pid); err != nil {
		return nil, err
	}
	f, err := d.create(pagemapName(pid))
	if err != nil {
		return nil, fmt.Errorf("create pagemap image of pid %d: %w", pid, err)
	}
	rw, err := newRecordWriter(f, kindPagemap)
	if err != nil {
		return nil, fmt.Errorf("create pagemap image of pid %d: %w", pid, err)
	}
	return &PagemapWriter{pid: pid, rw: rw}, nil
}

// Add appends one range. Writes are buffered; Close makes them durable.
func (w *PagemapWriter) Add(r *gocrpb.PageRange) error {
	if r.GetNrPages() == 0 {
		return fmt.Errorf("pagemap of pid %d: empty range at %#x", w.pid, r.GetVaddr())
	}
	if err := w.rw.add(r); err != nil {
		return fmt.Errorf("pagemap of pid %d: %w", w.pid, err)
	}
	return nil
}

// Close writes the end record, fsyncs and closes the file.
func (w *PagemapWriter) Close() error {
	if err := w.rw.close(); err != nil {
		return fmt.Errorf("pagemap of pid %d: %w", w.pid, err)
	}
	return nil
}

// ReadPagemap reads pagemap-PID.img: the ranges in address order, each
// stream's in its page image's order.
func (d *Dir) ReadPagemap(pid int) ([]*gocrpb.PageRange, error) {
	var ranges []*gocrpb.PageRange
	err := d.readRecordFile(pagemapName(pid), kindPagemap, func(payload []byte) error {
		r := &gocrpb.PageRange{}
		if err := proto.Unmarshal(payload, r); err != nil {
			return fmt.Errorf("decode page range: %w", err)
		}
		if r.GetNrPages() == 0 {
			return fmt.Errorf("empty page range at %#x", r.GetVaddr())
		}
		// No page size is smaller than 4096: a range longer than what
		// is left of the address space would wrap its end around to a
		// low address (and its size, in bytes, past 2^64). A range may
		// end exactly at 2^64.
		if r.GetNrPages() > (math.MaxUint64-r.GetVaddr())/4096+1 {
			return fmt.Errorf("page range at %#x of %d pages runs past the end of the address space", r.GetVaddr(), r.GetNrPages())
		}
		if r.GetStream() >= MaxPageStreams {
			return fmt.Errorf("page range at %#x names stream %d, at most %d are allowed", r.GetVaddr(), r.GetStream(), MaxPageStreams)
		}
		ranges = append(ranges, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pagemap image of pid %d: %w", pid, err)
	}
	return ranges, nil
}

// The pages header is the common file header followed by the u64 LE size of
// the page data; the rest of the first page is zero and reserved.
const pagesDataSizeOffset = fileHeaderSize

// CreatePages creates the page image of pid's page stream (pages-PID.img
// for stream 0, pages-PID.S.img for S > 0) with a header recording no
// data, and returns it positioned at PagesDataOffset for the caller to
// write page data (by write, splice or pwrite). FinishPages then records
// the size; a file left without it is recognized as incomplete.
func (d *Dir) CreatePages(pid, stream int) (*os.File, error) {
	if err := checkPid("pages", pid); err != nil {
		return nil, err
	}
	if stream < 0 || stream >= MaxPageStreams {
		return nil, fmt.Errorf("create pages image of pid %d: stream %d, want 0..%d", pid, stream, MaxPageStreams-1)
	}
	f, err := d.createData(pagesName(pid, stream))
	if err != nil {
		return nil, fmt.Errorf("create pages image of pid %d: %w", pid, err)
	}
	return f, nil
}

// CreateMemfd creates memfd-ID.img, the contents of a memfd, in the pages
// image format (data at the same offsets as in the memfd, holes kept as
// holes); FinishPages completes it.
func (d *Dir) CreateMemfd(id uint64) (*os.File, error) {
	f, err := d.createData(memfdName(id))
	if err != nil {
		return nil, fmt.Errorf("create memfd image %d: %w", id, err)
	}
	return f, nil
}

// OpenMemfd opens memfd-ID.img like OpenPages.
func (d *Dir) OpenMemfd(id uint64) (*os.File, int64, error) {
	f, size, err := d.openData(memfdName(id))
	if err != nil {
		return nil, 0, fmt.Errorf("open memfd image %d: %w", id, err)
	}
	return f, size, nil
}

func memfdName(id uint64) string { return fmt.Sprintf("memfd-%d.img", id) }

func (d *Dir) createData(name string) (*os.File, error) {
	f, err := d.create(name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(pagesHeader(0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f, nil
}

// openData opens a file in the page image format (a page image or a
// memfd image), checks it and leaves it at PagesDataOffset.
func (d *Dir) openData(name string) (*os.File, int64, error) {
	f, err := d.openImage(name)
	if err != nil {
		return nil, 0, err
	}
	size, err := checkPagesFile(f)
	if err == nil {
		_, err = f.Seek(PagesDataOffset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

func pagesHeader(dataSize int64) []byte {
	hdr := make([]byte, PagesDataOffset)
	appendFileHeader(hdr[:0], kindPages)
	binary.LittleEndian.PutUint64(hdr[pagesDataSizeOffset:], uint64(dataSize))
	return hdr
}

// FinishPages records dataSize, the number of page-data bytes written after
// PagesDataOffset, in the header of a file from CreatePages, and fsyncs it.
// It checks the file really is that long. The caller still closes f.
func FinishPages(f *os.File, dataSize int64) error {
	if dataSize < 0 {
		return fmt.Errorf("finish pages image %s: negative data size %d", f.Name(), dataSize)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("finish pages image: %w", err)
	}
	if want := PagesDataOffset + dataSize; st.Size() != want {
		return fmt.Errorf("finish pages image %s: file is %d bytes, header+data would be %d", f.Name(), st.Size(), want)
	}
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(dataSize))
	if _, err := f.WriteAt(size[:], int64(pagesDataSizeOffset)); err != nil {
		return fmt.Errorf("finish pages image %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("finish pages image: fsync %s: %w", f.Name(), err)
	}
	return nil
}

// OpenPages opens the page image of pid's page stream for reading,
// validates its header and that the file holds exactly the data the header
// promises, and returns it positioned at PagesDataOffset with the data
// size. The caller closes it.
func (d *Dir) OpenPages(pid, stream int) (*os.File, int64, error) {
	if stream < 0 || stream >= MaxPageStreams {
		return nil, 0, fmt.Errorf("open pages image of pid %d: stream %d, want 0..%d", pid, stream, MaxPageStreams-1)
	}
	f, size, err := d.openData(pagesName(pid, stream))
	if err != nil {
		return nil, 0, fmt.Errorf("open pages image of pid %d: %w", pid, err)
	}
	return f, size, nil
}

// checkPagesFile validates an open pages image and returns its data size.
func checkPagesFile(f *os.File) (int64, error) {
	path := f.Name()
	hdr := make([]byte, PagesDataOffset)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	if n < fileHeaderSize {
		return 0, formatErrorf(path, "truncated in file header")
	}
	if err := checkFileHeader(path, hdr, kindPages); err != nil {
		return 0, err
	}
	if n < PagesDataOffset {
		return 0, formatErrorf(path, "truncated in pages header (%d of %d bytes)", n, PagesDataOffset)
	}
	for _, b := range hdr[pagesDataSizeOffset+8:] {
		if b != 0 {
			return 0, formatErrorf(path, "reserved header bytes are not zero")
		}
	}
	size := binary.LittleEndian.Uint64(hdr[pagesDataSizeOffset:])
	if size > math.MaxInt64-PagesDataOffset {
		return 0, formatErrorf(path, "data size %d is impossible", size)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if want := PagesDataOffset + int64(size); st.Size() != want {
		return 0, formatErrorf(path, "header promises %d data bytes (file of %d bytes), file is %d bytes", size, want, st.Size())
	}
	return int64(size), nil
}
