// Package contextfile is the context file: one file holding a whole
// checkpoint, the files of a dump directory (docs/BLCR.md, "The context
// file"). It treats the images as opaque files: it neither reads nor
// checks what is in them, only that each comes back byte for byte, which
// a CRC-32C per entry proves.
//
// The file is written front to back with no seek, so it can go down a
// pipe (cr_checkpoint -f - | cr_restart -f -): a file header, then one
// entry per file (a header naming it and its size, then its bytes), then
// an end record listing every entry with its offset, size and checksum.
// Only the end record makes a context complete: a file or stream cut
// anywhere before it is refused. Every entry's data starts at a multiple
// of Align, so the page data inside a page image keeps the alignment it
// has in the image and can be read in place (ReadIndex, inplace.go).
//
// A context may store its entries compressed (compress.go): its version
// is then 2, each entry header says how its data is stored, and the CRC
// covers the bytes as stored, so damage is found, and named, without
// decompressing; the compressed format's own checksum then proves the
// bytes that come out.
package contextfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Align is the alignment of every entry's data (and of the entry headers
// and end record, which follow padding to it).
const Align = 4096

// The context formats this package writes and reads: Version when no
// entry is compressed (so such a context is read by every gocr that reads
// context files), VersionCompressed when the entries are compressed
// (whose entry headers say how).
const (
	Version           = 1
	VersionCompressed = 2
)

// The magic strings open the file header, each entry header and the end
// record. The NUL keeps a context file from being taken for text.
const (
	fileMagic  = "GOCRCTX\x00"
	entryMagic = "GOCRENT\x00"
	endMagic   = "GOCREND\x00"
)

// fileHeaderSize: magic, u32 version, u32 alignment, u32 CRC-32C of the
// bytes before it.
const fileHeaderSize = 8 + 4 + 4 + 4

// entryHeaderFixed: magic, u32 name length, u32 CRC-32C of the header
// (with this field zero) and name, u64 data size (the file's: before any
// compression). The name follows.
const entryHeaderFixed = 8 + 4 + 4 + 8

// entryHeaderCompressed is entryHeaderFixed of VersionCompressed: then a
// u32 Codec and a u32 that is zero.
const entryHeaderCompressed = entryHeaderFixed + 4 + 4

// endFixed: magic, u32 entry count, u32 CRC-32C of the end record (with
// this field zero) and index. The index follows: per entry u32 name
// length, u32 data CRC-32C, u64 data offset, u64 data size as stored,
// the name.
const endFixed = 8 + 4 + 4

// indexFixed is one index entry without its name.
const indexFixed = 4 + 4 + 8 + 8

// maxName bounds an entry's name: one file name (NAME_MAX, limits.h).
const maxName = 255

// maxEntries bounds how many entries a context may hold, so a damaged
// count cannot make a reader allocate without limit. A dump has a handful
// of images per process; this is far above any real one.
const maxEntries = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// ErrNotContext: the file does not start like a context file.
var ErrNotContext = errors.New("not a gocr context file")

// ErrDamaged: the context file is damaged or incomplete; the error names
// what (the header, an entry, the end).
var ErrDamaged = errors.New("context file damaged")

// ErrVersion: a context of a format this gocr does not read.
var ErrVersion = errors.New("context file of an unsupported format version")

// Entry is one file in a context.
type Entry struct {
	Name   string
	Offset int64  // of its data in the context file
	Size   int64  // of the file
	Stored int64  // bytes of its data in the context: Size unless compressed
	Codec  Codec  // how its data is stored
	CRC    uint32 // CRC-32C of its data as stored
}

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
}

// padTo is how many bytes take off to the next multiple of Align.
func padTo(off int64) int64 {
	return (Align - off%Align) % Align
}

// checkName refuses an entry name that is not a plain file name, so that
// extracting can never write outside its directory.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("entry name %q is not a file name", name)
	case len(name) > maxName:
		return fmt.Errorf("entry name of %d bytes is longer than %d", len(name), maxName)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("entry name %q is not a file name", name)
		}
	}
	return nil
}

func fileHeader(version uint32) []byte {
	b := make([]byte, fileHeaderSize)
	copy(b, fileMagic)
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], Align)
	le.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	return b
}

// entryHeader is the header of an entry of size bytes: of Version when
// version is, else of VersionCompressed with its codec.
func entryHeader(version uint32, name string, size int64, c Codec) []byte {
	fixed := entryHeaderFixed
	if version != Version {
		fixed = entryHeaderCompressed
	}
	b := make([]byte, fixed+len(name))
	copy(b, entryMagic)
	le.PutUint32(b[8:], uint32(len(name)))
	le.PutUint64(b[16:], uint64(size))
	if version != Version {
		le.PutUint32(b[24:], uint32(c))
	}
	copy(b[fixed:], name)
	le.PutUint32(b[12:], crc32.Checksum(b, castagnoli))
	return b
}

func endRecord(entries []Entry) []byte {
	n := endFixed
	for _, e := range entries {
		n += indexFixed + len(e.Name)
	}
	b := make([]byte, n)
	copy(b, endMagic)
	le.PutUint32(b[8:], uint32(len(entries)))
	p := endFixed
	for _, e := range entries {
		le.PutUint32(b[p:], uint32(len(e.Name)))
		le.PutUint32(b[p+4:], e.CRC)
		le.PutUint64(b[p+8:], uint64(e.Offset))
		le.PutUint64(b[p+16:], uint64(e.Stored))
		copy(b[p+indexFixed:], e.Name)
		p += indexFixed + len(e.Name)
	}
	le.PutUint32(b[12:], crc32.Checksum(b, castagnoli))
	return b
}
