package images

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"

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
	rw, err := newRecordWriter(f, kindPagemap, d.id)
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

// A data image (a page image or a memfd image) is written in three steps:
// created with a header recording no data (CreatePages, CreateMemfd),
// its data written by the caller after PagesDataOffset and its size
// recorded (FinishPages), and, once every image is written, sealed
// (SealData, or WriteInventory): each chunk of its data checksummed, the
// checksums appended, the header completed with its own checksum, and
// the file synced. Sealing reads the data back from the page cache, after
// the processes were released with --leave-running, so their freeze does
// not grow by it; sealing every image at once spreads the work over every
// CPU.

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
	f, err := d.createData(pagesName(pid, stream), &dataHeader{kind: kindPages, stream: uint32(stream), subject: uint64(pid)})
	if err != nil {
		return nil, fmt.Errorf("create pages image of pid %d: %w", pid, err)
	}
	return f, nil
}

// CreateMemfd creates memfd-ID.img, the contents of a memfd, in the pages
// image format (data at the same offsets as in the memfd, holes kept as
// holes); FinishPages completes it.
func (d *Dir) CreateMemfd(id uint64) (*os.File, error) {
	f, err := d.createData(memfdName(id), &dataHeader{kind: kindMemfd, subject: id})
	if err != nil {
		return nil, fmt.Errorf("create memfd image %d: %w", id, err)
	}
	return f, nil
}

// OpenMemfd opens memfd-ID.img like OpenPages: its data verified.
func (d *Dir) OpenMemfd(id uint64) (*Data, error) {
	img, err := d.openData(memfdName(id), &dataHeader{kind: kindMemfd, subject: id})
	if err != nil {
		return nil, fmt.Errorf("open memfd image %d: %w", id, err)
	}
	return img, nil
}

func memfdName(id uint64) string { return fmt.Sprintf("memfd-%d.img", id) }

// createData creates the data image name with the header h (of this
// dump, no data yet) and remembers it for SealData.
func (d *Dir) createData(name string, h *dataHeader) (*os.File, error) {
	h.id = d.id
	f, err := d.create(name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(h.encode()); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	d.mu.Lock()
	d.w.data = append(d.w.data, name)
	d.mu.Unlock()
	return f, nil
}

// FinishPages records dataSize, the number of page-data bytes written after
// PagesDataOffset, in the header of a file from CreatePages or
// CreateMemfd. It checks the file really is that long. The caller still
// closes f; SealData checksums and syncs it.
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
	le.PutUint64(size[:], uint64(dataSize))
	if _, err := f.WriteAt(size[:], int64(dataSizeOffset)); err != nil {
		return fmt.Errorf("finish pages image %s: %w", f.Name(), err)
	}
	return nil
}

// Data is the data of an open data image (a page, memfd, saved file or
// System V segment image): Size bytes from Off in File, Off a multiple of
// the page size, so that page data can be read straight into place. In a
// dump directory File is the image and Off is PagesDataOffset; in a
// context read in place (OpenContext), File is the context and Off where
// the image's data lies in it. Read it by offset only (pread, ReadAt,
// SEEK_DATA): File may share its file offset with other descriptors. The
// caller closes File.
type Data struct {
	*os.File
	Off  int64
	Size int64
}

// openData opens the data image name, expected to have the kind, stream
// and subject of want, checks its header (of this dump) and its length,
// and verifies every chunk of its data against its checksum, unless that
// was done when d was opened (OpenContext).
func (d *Dir) openData(name string, want *dataHeader) (*Data, error) {
	img, _, err := d.openDataSums(name, want, true)
	return img, err
}

// openDataSums opens the data image name as openData does; without
// verify it leaves the data unverified and returns its stored checksums
// (nil if they were verified when d was opened).
func (d *Dir) openDataSums(name string, want *dataHeader, verify bool) (*Data, *dataFile, error) {
	img, err := d.openImage(name)
	if err != nil {
		return nil, nil, err
	}
	defer img.close()
	h, df, err := d.checkData(img, name, want, verify)
	if err != nil {
		return nil, nil, err
	}
	f := img.f
	if img.own {
		img.own = false // the caller's now
	} else if f, err = dupFile(img.f, img.path); err != nil {
		return nil, nil, err
	}
	return &Data{File: f, Off: img.off + PagesDataOffset, Size: h.size}, df, nil
}

// checkData checks the open data image img, called name in d, as
// openData does; without verify, all but its data, whose stored
// checksums it returns (nil if verified when d was opened).
func (d *Dir) checkData(img *section, name string, want *dataHeader, verify bool) (*dataHeader, *dataFile, error) {
	h, err := d.readDataHeader(img, want.kind)
	if err != nil {
		return nil, nil, err
	}
	path := img.path
	if err := d.checkDumpID(path, h.id); err != nil {
		return nil, nil, err
	}
	if h.subject != want.subject || h.stream != want.stream {
		what := fmt.Sprintf("page stream %d of pid %d", h.stream, h.subject)
		if h.kind != kindPages {
			what = fmt.Sprintf("%s %d", h.kind, h.subject)
		}
		return nil, nil, formatErrorf(path, "holds %s, but its name says otherwise", what)
	}
	d.mu.Lock()
	verified := d.verified[name]
	d.mu.Unlock()
	if verified {
		return h, nil, nil
	}
	df, err := readSums(img, h)
	if err != nil {
		return nil, nil, err
	}
	if !verify {
		return h, df, nil
	}
	if e := sumChunks([]*dataFile{df}, true, runtime.NumCPU()); e != nil {
		return nil, nil, d.damaged(d.chunkError(df, e))
	}
	return h, nil, nil
}

// damaged marks err, a data image's bad chunk, as the context's damage
// when d is read in place from one (OpenContext verified all else).
func (d *Dir) damaged(err error) error {
	if d.ctx != nil {
		return damagedImage(err)
	}
	return err
}

// readDataHeader reads and checks the header of img, a data image of
// kind k, and that the image is exactly as long as it says.
func (d *Dir) readDataHeader(img *section, k kind) (*dataHeader, error) {
	path := img.path
	hdr := make([]byte, PagesDataOffset)
	n, err := img.f.ReadAt(hdr[:min(int64(len(hdr)), img.size)], img.off)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if n < dumpIDOffset {
		return nil, formatErrorf(path, "truncated in file header")
	}
	// The version first: a header of another format has another layout.
	if err := checkFileHeader(path, hdr, k); err != nil {
		return nil, err
	}
	if n < PagesDataOffset {
		return nil, formatErrorf(path, "truncated in pages header (%d of %d bytes)", n, PagesDataOffset)
	}
	h, err := decodeDataHeader(path, hdr, k)
	if err != nil {
		return nil, err
	}
	if want := h.fileSize(); img.size != want {
		return nil, formatErrorf(path, "header promises %d data bytes and %d checksums (a file of %d bytes), file is %d bytes", h.size, h.chunks(), want, img.size)
	}
	return h, nil
}

// readSums reads the checksums stored after img's data, to verify it.
func readSums(img *section, h *dataHeader) (*dataFile, error) {
	df := &dataFile{fd: int(img.f.Fd()), base: img.off, path: img.path, hdr: h}
	sums := make([]byte, sumSize*h.chunks())
	if _, err := img.f.ReadAt(sums, img.off+PagesDataOffset+h.size); err != nil {
		return nil, fmt.Errorf("read %s: %w", img.path, err)
	}
	for i := 0; i < len(sums); i += sumSize {
		df.sums = append(df.sums, le.Uint32(sums[i:]))
	}
	return df, nil
}

// chunkError names the chunk of df that sumChunks found bad.
func (d *Dir) chunkError(df *dataFile, e *chunkErr) error {
	if e.err != nil {
		return e.err
	}
	h := df.hdr
	start := int64(e.chunk) * h.chunk
	end := min(start+h.chunk, h.size)
	return formatErrorf(df.path, "page data bytes %#x-%#x (chunk %d of %d%s): checksum mismatch (stored %#08x, computed %#08x)",
		start, end, e.chunk, h.chunks(), d.pagesAt(h, start, end), e.stored, e.got)
}

// pagesAt names, for a message, the pages of a page image's data bytes
// start to end, from the pid's page map: ", pages 0xA-0xB". A memfd
// image's bytes are its offsets, already named; a page map that cannot
// be read names nothing.
func (d *Dir) pagesAt(h *dataHeader, start, end int64) string {
	if h.kind != kindPages {
		return ""
	}
	ranges, err := d.ReadPagemap(int(h.subject))
	if err != nil {
		return ""
	}
	pageSize := int64(4096)
	if inv := d.Inventory(); inv != nil && inv.GetPageSize() != 0 {
		pageSize = int64(inv.GetPageSize())
	}
	const named = 3 // more would not fit on a line
	var spans []string
	count := 0
	var off int64 // where the next range of the stream starts in the data
	for _, r := range ranges {
		if r.GetStream() != h.stream || r.GetFromParent() {
			continue
		}
		n := int64(r.GetNrPages()) * pageSize
		if off < end && start < off+n {
			count++
			if count <= named {
				a := r.GetVaddr() + uint64(max(start-off, 0))
				b := r.GetVaddr() + uint64(min(end, off+n)-off)
				spans = append(spans, fmt.Sprintf("%#x-%#x", a, b))
			}
		}
		off += n
	}
	if count == 0 {
		return ""
	}
	more := ""
	if count > named {
		more = fmt.Sprintf(" and %d more ranges", count-named)
	}
	return ", pages " + strings.Join(spans, ", ") + more
}

// OpenPages opens the page image of pid's page stream for reading,
// validates its header, that the file holds exactly the data and
// checksums the header promises, and every chunk of its data against its
// checksum, and returns its data. The caller closes it.
func (d *Dir) OpenPages(pid, stream int) (*Data, error) {
	if stream < 0 || stream >= MaxPageStreams {
		return nil, fmt.Errorf("open pages image of pid %d: stream %d, want 0..%d", pid, stream, MaxPageStreams-1)
	}
	img, err := d.openData(pagesName(pid, stream), &dataHeader{kind: kindPages, stream: uint32(stream), subject: uint64(pid)})
	if err != nil {
		return nil, fmt.Errorf("open pages image of pid %d: %w", pid, err)
	}
	return img, nil
}
