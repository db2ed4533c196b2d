package images

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"google.golang.org/protobuf/proto"
)

// The framing of every image file is specified in docs/IMAGES.md; the
// constants below are that document's numbers and must change with it.

// FormatVersion is the image format this gocr writes. Readers accept every
// version from MinFormatVersion up to this one and refuse the others by
// name, so gocr never misreads images from a newer or an older one. Format
// 2 added page streams (PageRange.stream and pages-PID.S.img); format 3
// gave each kind of file its own message (the Fd.kind oneof), which older
// files images cannot be read as; format 4 put the dump ID in every
// header and checksums over all page data (integrity.go); format 5 lets a
// child's mapping leave the pages it shares with its parent since fork to
// the parent's page images (Vma.fork_shared), which a gocr reading format
// 4 would restore as zeros.
const FormatVersion = 5

// MinFormatVersion is the oldest format this gocr reads. No release has
// been made, so older dumps are refused rather than converted.
const MinFormatVersion = 4

// MaxPageStreams is how many page images one process's memory may be split
// over (PageRange.stream < MaxPageStreams).
const MaxPageStreams = 4

// PagesDataOffset is where page data starts in a pages image. It is one page
// so that every page's data sits at a page-aligned file offset and restore can
// pread (or mmap) it straight into place.
const PagesDataOffset = 4096

// magic opens every image file. The NUL keeps it from being mistaken for text.
const magic = "GOCRIMG\x00"

// fileHeaderSize is magic + u32 format version + u32 kind + the dump ID.
const fileHeaderSize = len(magic) + 4 + 4 + dumpIDSize

// dumpIDOffset is where the dump ID sits in every file header.
const dumpIDOffset = len(magic) + 4 + 4

// recordHeaderSize is u32 payload length + u32 CRC32-C of the payload.
const recordHeaderSize = 4 + 4

// endOfRecords in the length field marks the end record, which carries the
// record count instead of a checksum. Its presence is what tells a complete
// file from one cut off at a record boundary.
const endOfRecords = 0xFFFF_FFFF

// maxRecordSize bounds one payload. Real records are far smaller (an Mm with
// the default vm.max_map_count of 65530 VMAs is a few MiB); the cap keeps a
// corrupt length from making a reader allocate gigabytes.
const maxRecordSize = 64 << 20

// castagnoli is CRC32-C, the checksum every record carries (the polynomial
// hardware CRC instructions compute, so it costs almost nothing).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// kind is the code in a file header that says which message the file holds.
// Codes are part of the format: never renumber or reuse one.
type kind uint32

const (
	kindInventory kind = 1
	kindTask      kind = 2
	kindMm        kind = 3
	kindFiles     kind = 4
	kindPagemap   kind = 5
	kindPages     kind = 6
	kindMemfd     kind = 7
	kindSavedFile kind = 8
	kindSysvShm   kind = 9
)

func (k kind) String() string {
	switch k {
	case kindInventory:
		return "inventory"
	case kindTask:
		return "task"
	case kindMm:
		return "mm"
	case kindFiles:
		return "files"
	case kindPagemap:
		return "pagemap"
	case kindPages:
		return "pages"
	case kindMemfd:
		return "memfd"
	case kindSavedFile:
		return "saved file"
	case kindSysvShm:
		return "System V segment"
	}
	return fmt.Sprintf("unknown kind %d", uint32(k))
}

// FormatError reports an image file whose contents are not a valid image of
// the expected kind: corrupt, truncated, from a newer gocr, or not an image
// at all. I/O failures are not FormatErrors.
type FormatError struct {
	Path   string
	Reason string
	Err    error // what kind of problem, when one is named (ErrMixedDumps)
}

func (e *FormatError) Unwrap() error { return e.Err }

func (e *FormatError) Error() string {
	return fmt.Sprintf("image %s: %s", e.Path, e.Reason)
}

func formatErrorf(path, format string, args ...any) *FormatError {
	return &FormatError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// ErrIncompleteDump is returned (wrapped, naming the directory) by Open for a
// directory without inventory.img: a dump that failed or is still running.
var ErrIncompleteDump = errors.New("not a complete gocr dump (no inventory.img)")

func appendFileHeader(b []byte, k kind, id DumpID) []byte {
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint32(b, FormatVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(k))
	return append(b, id[:]...)
}

// checkHeader validates the file header at the start of hdr, which holds
// at least fileHeaderSize bytes: magic, version, kind, and the dump ID,
// which must be d's (the inventory's) once d knows it.
func (d *Dir) checkHeader(path string, hdr []byte, want kind) error {
	if err := checkFileHeader(path, hdr, want); err != nil {
		return err
	}
	return d.checkDumpID(path, headerDumpID(hdr))
}

// checkFileHeader validates the magic, version and kind at the start of hdr,
// which holds at least fileHeaderSize bytes. The version is checked
// before anything that follows it, whose layout it decides.
func checkFileHeader(path string, hdr []byte, want kind) error {
	if string(hdr[:len(magic)]) != magic {
		return formatErrorf(path, "not a gocr image (bad magic %q)", hdr[:len(magic)])
	}
	version := binary.LittleEndian.Uint32(hdr[len(magic):])
	if version > FormatVersion {
		return formatErrorf(path, "written by a newer gocr (format %d), this gocr reads format %d", version, FormatVersion)
	}
	if version == 0 {
		return formatErrorf(path, "invalid format version 0")
	}
	if version < MinFormatVersion {
		return formatErrorf(path, "written by an older gocr (format %d), this gocr reads formats %d to %d", version, MinFormatVersion, FormatVersion)
	}
	if got := kind(binary.LittleEndian.Uint32(hdr[len(magic)+4:])); got != want {
		return formatErrorf(path, "holds a %v image, expected a %v image", got, want)
	}
	return nil
}

// recordWriter frames messages into one image file. It owns the file and
// closes it in close or abandon.
type recordWriter struct {
	f     *os.File
	w     *bufio.Writer
	count uint32
	buf   []byte
}

// newRecordWriter writes the file header of an image of kind k of the
// dump id to f, a new file (Dir.create), and returns the writer that owns
// it.
func newRecordWriter(f *os.File, k kind, id DumpID) (*recordWriter, error) {
	rw := &recordWriter{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	if _, err := rw.w.Write(appendFileHeader(nil, k, id)); err != nil {
		rw.abandon()
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return rw, nil
}

func (rw *recordWriter) add(m proto.Message) error {
	// Deterministic so the same state always produces the same bytes, which
	// keeps images diffable and tests stable.
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(rw.buf[:0], m)
	if err != nil {
		return fmt.Errorf("encode %s record %d: %w", rw.f.Name(), rw.count, err)
	}
	rw.buf = b
	if len(b) > maxRecordSize {
		return fmt.Errorf("encode %s record %d: %d bytes exceeds the %d-byte record limit", rw.f.Name(), rw.count, len(b), maxRecordSize)
	}
	var hdr [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(b, castagnoli))
	if _, err := rw.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write %s: %w", rw.f.Name(), err)
	}
	if _, err := rw.w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", rw.f.Name(), err)
	}
	rw.count++
	return nil
}

// close writes the end record, flushes, fsyncs and closes the file.
func (rw *recordWriter) close() error {
	var end [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(end[0:], endOfRecords)
	binary.LittleEndian.PutUint32(end[4:], rw.count)
	name := rw.f.Name()
	if _, err := rw.w.Write(end[:]); err != nil {
		rw.abandon()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := rw.w.Flush(); err != nil {
		rw.abandon()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := rw.f.Sync(); err != nil {
		rw.abandon()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := rw.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

// abandon closes the file without completing it; the caller's Dir.Abort
// removes it.
func (rw *recordWriter) abandon() {
	_ = rw.f.Close()
}

// writeRecordFile writes a whole image of kind k of the dump id holding
// msgs to f, a new file, and closes it.
func writeRecordFile(f *os.File, k kind, id DumpID, msgs ...proto.Message) error {
	rw, err := newRecordWriter(f, k, id)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := rw.add(m); err != nil {
			rw.abandon()
			return err
		}
	}
	return rw.close()
}

// readRecordFile reads the image name in d, of kind k, calling each with
// every record's payload (valid only during the call). It returns a
// *FormatError for any framing problem, for a dump ID other than d's, and
// for any error each returns that is not an I/O error (decode failures).
func (d *Dir) readRecordFile(name string, k kind, each func(payload []byte) error) error {
	_, err := d.readRecordFileID(name, k, each)
	return err
}

// readRecordFileID is readRecordFile that also returns the dump ID in the
// file's header.
func (d *Dir) readRecordFileID(name string, k kind, each func(payload []byte) error) (DumpID, error) {
	var id DumpID
	img, err := d.openImage(name)
	if err != nil {
		return id, err
	}
	defer img.close()
	path := img.path
	r := bufio.NewReaderSize(img.reader(), 256<<10)

	var hdr [fileHeaderSize]byte
	// The version first: a header of another format has another size.
	if err := readFull(path, r, hdr[:dumpIDOffset], "file header"); err != nil {
		return id, err
	}
	if err := checkFileHeader(path, hdr[:], k); err != nil {
		return id, err
	}
	if err := readFull(path, r, hdr[dumpIDOffset:], "file header"); err != nil {
		return id, err
	}
	id = headerDumpID(hdr[:])
	if k != kindInventory {
		if err := d.checkDumpID(path, id); err != nil {
			return id, err
		}
	}
	err = readRecords(path, r, img.size, each)
	return id, err
}

// readRecords reads the records that follow the file header from r, a
// file of size bytes.
func readRecords(path string, r *bufio.Reader, size int64, each func(payload []byte) error) error {

	var payload []byte
	off := int64(fileHeaderSize) // where the next record header starts
	for n := uint32(0); ; n++ {
		var rh [recordHeaderSize]byte
		what := fmt.Sprintf("record %d header", n)
		if err := readFull(path, r, rh[:], what); err != nil {
			var fe *FormatError
			if errors.As(err, &fe) && n > 0 {
				fe.Reason += " (no end record: the file was cut short)"
			}
			return err
		}
		length := binary.LittleEndian.Uint32(rh[0:])
		sum := binary.LittleEndian.Uint32(rh[4:])
		if length == endOfRecords {
			if sum != n {
				return formatErrorf(path, "end record counts %d records, file holds %d", sum, n)
			}
			if _, err := r.ReadByte(); err == nil {
				return formatErrorf(path, "trailing data after the end record")
			} else if !errors.Is(err, io.EOF) {
				return fmt.Errorf("read %s: %w", path, err)
			}
			return nil
		}
		if length > maxRecordSize {
			return formatErrorf(path, "record %d: length %d exceeds the %d-byte record limit", n, length, maxRecordSize)
		}
		// A length past the end of the file is refused before its
		// buffer is allocated: unchecked, a file of a few bytes made
		// every read allocate up to maxRecordSize (seen while seeding the
		// fuzz targets).
		off += recordHeaderSize
		if int64(length) > size-off {
			return formatErrorf(path, "truncated in record %d payload (length %d, %d bytes left)", n, length, max(size-off, 0))
		}
		off += int64(length)
		if cap(payload) < int(length) {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if err := readFull(path, r, payload, fmt.Sprintf("record %d payload", n)); err != nil {
			return err
		}
		if got := crc32.Checksum(payload, castagnoli); got != sum {
			return formatErrorf(path, "record %d: checksum mismatch (stored %#08x, computed %#08x)", n, sum, got)
		}
		if err := each(payload); err != nil {
			return formatErrorf(path, "record %d: %v", n, err)
		}
	}
}

// readFull is io.ReadFull that turns a short read into a FormatError naming
// what was being read.
func readFull(path string, r io.Reader, b []byte, what string) error {
	_, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErrorf(path, "truncated in %s", what)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// readOne reads the image name in d, of kind k, which must hold exactly
// one record, into m.
func (d *Dir) readOne(name string, k kind, m proto.Message) error {
	_, err := d.readOneID(name, k, m)
	return err
}

// readOneID is readOne that also returns the dump ID in the header.
func (d *Dir) readOneID(name string, k kind, m proto.Message) (DumpID, error) {
	n := 0
	id, err := d.readRecordFileID(name, k, func(payload []byte) error {
		n++
		if n > 1 {
			return fmt.Errorf("a %v image holds one record, found more", k)
		}
		if err := proto.Unmarshal(payload, m); err != nil {
			return fmt.Errorf("decode %v: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return id, err
	}
	if n == 0 {
		return id, formatErrorf(d.file(name), "a %v image holds one record, found none", k)
	}
	return id, nil
}
