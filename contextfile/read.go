package contextfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// reader reads a context front to back, counting its offset.
type reader struct {
	br      *bufio.Reader
	off     int64
	version uint32
	dec     decompressors
}

// full reads exactly len(b) bytes; running out is damage (a cut file or
// stream), named by what was being read.
func (r *reader) full(b []byte, what string) error {
	n, err := io.ReadFull(r.br, b)
	r.off += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("it ends in %s at byte %d: the context is incomplete", what, r.off)
	}
	return err
}

// skipPad reads the zero padding up to the next multiple of Align.
func (r *reader) skipPad(what string) error {
	n := padTo(r.off)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	if err := r.full(b, what); err != nil {
		return err
	}
	if !bytes.Equal(b, make([]byte, n)) {
		return damaged("padding after %s is not zero", what)
	}
	return nil
}

// Read reads a context from r and calls each for every entry, with a
// reader of exactly its data (what each leaves unread is skipped). Every
// entry is checked against the end record, its checksum included, once
// that is read: an error from Read after each was called means the data
// handed out must not be used. It returns the entries.
func Read(r io.Reader, each func(e Entry, data io.Reader) error) ([]Entry, error) {
	rd := &reader{br: bufio.NewReaderSize(r, 256<<10)}
	defer rd.dec.close()
	return rd.entries(func(e *Entry) error { return rd.data(e, each) }, true)
}

// entries reads the file header, every entry with data (which reads or
// skips its data, and sets its stored size and, if it reads it, its
// CRC), and the end record, which it checks them against: their data's
// CRCs too when summed, else it takes them from it.
func (rd *reader) entries(data func(e *Entry) error, summed bool) ([]Entry, error) {
	hdr := make([]byte, fileHeaderSize)
	n, err := io.ReadFull(rd.br, hdr)
	rd.off += int64(n)
	if n < len(fileMagic) || string(hdr[:len(fileMagic)]) != fileMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		return nil, ErrNotContext
	}
	if err != nil {
		return nil, damaged("it ends in the file header")
	}
	if crc32.Checksum(hdr[:16], castagnoli) != le.Uint32(hdr[16:]) {
		return nil, damaged("the file header's checksum does not match")
	}
	rd.version = le.Uint32(hdr[8:])
	if rd.version != Version && rd.version != VersionCompressed {
		return nil, fmt.Errorf("%w: version %d, this gocr reads versions %d and %d", ErrVersion, rd.version, Version, VersionCompressed)
	}
	if a := le.Uint32(hdr[12:]); a != Align {
		return nil, damaged("alignment %d in the file header, want %d", a, Align)
	}
	if rd.version != Version && !summed {
		return nil, ErrCompressed
	}
	if err := rd.skipPad("the file header"); err != nil {
		return nil, err
	}
	var got []Entry
	for i := 0; ; i++ {
		magic := make([]byte, len(entryMagic))
		what := fmt.Sprintf("the header of entry %d", i+1)
		if err := rd.full(magic, what); err != nil {
			return nil, err
		}
		switch string(magic) {
		case entryMagic:
		case endMagic:
			return got, rd.end(got, summed)
		default:
			return nil, damaged("no entry or end record at byte %d (after %d entries)", rd.off-int64(len(magic)), i)
		}
		e, err := rd.entry(what)
		if err != nil {
			return nil, err
		}
		if len(got) >= maxEntries {
			return nil, damaged("more than %d entries", maxEntries)
		}
		if err := data(&e); err != nil {
			return nil, err
		}
		got = append(got, e)
		if err := rd.skipPad("entry " + e.Name); err != nil {
			return nil, err
		}
	}
}

// data reads the data of entry e, handing it to each, and sets its
// stored size and CRC.
func (rd *reader) data(e *Entry, each func(e Entry, data io.Reader) error) error {
	h := crc32.New(castagnoli)
	src := io.TeeReader(rd.br, h)
	if e.Codec != Stored {
		if err := rd.compressed(e, src, each); err != nil {
			return err
		}
		e.CRC = h.Sum32()
		return nil
	}
	lr := &io.LimitedReader{R: src, N: e.Size}
	if each != nil {
		if err := each(*e, lr); err != nil {
			return fmt.Errorf("entry %s: %w", e.Name, err)
		}
	}
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return fmt.Errorf("entry %s: %w", e.Name, err)
	}
	rd.off += e.Size - lr.N
	if lr.N > 0 {
		return damaged("it ends in the data of entry %s: the context is incomplete", e.Name)
	}
	e.Stored, e.CRC = e.Size, h.Sum32()
	return nil
}

// compressed reads the segments of a compressed entry from src and hands
// each its decompressed data, which must be exactly the entry's size and
// end where the segments do.
func (rd *reader) compressed(e *Entry, src io.Reader, each func(e Entry, data io.Reader) error) error {
	seg := &segmentReader{r: src, name: e.Name}
	defer func() { rd.off += seg.n }()
	dec, err := rd.dec.open(*e, seg)
	if err != nil {
		return err
	}
	lr := &io.LimitedReader{R: dec, N: e.Size}
	if each != nil {
		if err := each(*e, lr); err != nil {
			if seg.err != nil {
				return seg.err
			}
			if errors.Is(err, ErrDamaged) {
				return err // it names the entry
			}
			return fmt.Errorf("entry %s: %w", e.Name, err)
		}
	}
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return err
	}
	if lr.N > 0 {
		return damaged("entry %s: its %v data decompresses to %d bytes, its header says %d", e.Name, e.Codec, e.Size-lr.N, e.Size)
	}
	var one [1]byte
	if n, err := io.ReadFull(dec, one[:]); n > 0 {
		return damaged("entry %s: its %v data decompresses to more than the %d bytes its header says", e.Name, e.Codec, e.Size)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	// The decompressor stops at the end of its stream; the segments must
	// end there too.
	if n, err := io.Copy(io.Discard, seg); err != nil {
		return err
	} else if n > 0 {
		return damaged("entry %s: %d bytes follow its %v data", e.Name, n, e.Codec)
	}
	e.Stored = seg.n
	return nil
}

// entry reads the rest of an entry header (its magic was read) and the
// padding after it.
func (rd *reader) entry(what string) (Entry, error) {
	start := rd.off - int64(len(entryMagic))
	headerSize := entryHeaderFixed
	if rd.version == VersionCompressed {
		headerSize = entryHeaderCompressed
	}
	fixed := make([]byte, headerSize)
	copy(fixed, entryMagic)
	if err := rd.full(fixed[len(entryMagic):], what); err != nil {
		return Entry{}, err
	}
	nameLen := le.Uint32(fixed[8:])
	if nameLen == 0 || nameLen > maxName {
		return Entry{}, damaged("%s at byte %d: name length %d", what, start, nameLen)
	}
	hb := append(fixed, make([]byte, nameLen)...)
	if err := rd.full(hb[headerSize:], what); err != nil {
		return Entry{}, err
	}
	want := le.Uint32(hb[12:])
	le.PutUint32(hb[12:], 0)
	if crc32.Checksum(hb, castagnoli) != want {
		return Entry{}, damaged("%s at byte %d: its checksum does not match", what, start)
	}
	e := Entry{Name: string(hb[headerSize:])}
	if rd.version == VersionCompressed {
		e.Codec = Codec(le.Uint32(hb[24:]))
		if z := le.Uint32(hb[28:]); z != 0 {
			return Entry{}, damaged("%s at byte %d: a field that is zero holds %d", what, start, z)
		}
	}
	if err := checkName(e.Name); err != nil {
		return Entry{}, damaged("%s: %v", what, err)
	}
	size := le.Uint64(hb[16:])
	if size > 1<<62 {
		return Entry{}, damaged("entry %s: size %d is impossible", e.Name, size)
	}
	e.Size = int64(size)
	if err := rd.skipPad("the header of entry " + e.Name); err != nil {
		return Entry{}, err
	}
	e.Offset = rd.off
	return e, nil
}

// end reads the end record (its magic was read) and checks that it lists
// exactly the entries read, with their checksums when summed (else it
// sets them), and that nothing follows it.
func (rd *reader) end(got []Entry, summed bool) error {
	fixed := make([]byte, endFixed)
	copy(fixed, endMagic)
	if err := rd.full(fixed[len(endMagic):], "the end record"); err != nil {
		return err
	}
	count := le.Uint32(fixed[8:])
	if int(count) != len(got) {
		return damaged("the end record lists %d entries, the context holds %d", count, len(got))
	}
	b := fixed
	for i := range got {
		ib := make([]byte, indexFixed)
		if err := rd.full(ib, "the end record"); err != nil {
			return err
		}
		nameLen := le.Uint32(ib)
		if nameLen != uint32(len(got[i].Name)) {
			return damaged("the end record's entry %d does not name %s", i+1, got[i].Name)
		}
		name := make([]byte, nameLen)
		if err := rd.full(name, "the end record"); err != nil {
			return err
		}
		b = append(append(b, ib...), name...)
		e := got[i]
		switch {
		case string(name) != e.Name:
			return damaged("the end record's entry %d names %q, the context holds %s there", i+1, name, e.Name)
		case int64(le.Uint64(ib[8:])) != e.Offset || int64(le.Uint64(ib[16:])) != e.Stored:
			return damaged("entry %s: its offset or size differ from the end record's", e.Name)
		}
	}
	want := le.Uint32(b[12:])
	le.PutUint32(b[12:], 0)
	if crc32.Checksum(b, castagnoli) != want {
		return damaged("the end record's checksum does not match")
	}
	// Only now, with the end record itself proven whole, does a data
	// checksum that differs name a damaged entry.
	p := endFixed
	for i, e := range got {
		if !summed {
			got[i].CRC = le.Uint32(b[p+4:])
		} else if crc := le.Uint32(b[p+4:]); crc != e.CRC {
			return damaged("entry %s: its data's CRC-32C is %#08x, the end record says %#08x", e.Name, e.CRC, crc)
		}
		p += indexFixed + len(e.Name)
	}
	var one [1]byte
	if n, _ := io.ReadFull(rd.br, one[:]); n != 0 {
		return damaged("bytes follow the end record at byte %d", rd.off)
	}
	return nil
}

// Extract reads a context from r into dir, an existing directory that
// should be private (mode 0700) and empty: each entry becomes a new file
// (O_EXCL, never through a symbolic link) of mode 0600. On error what it
// wrote stays for the caller to remove with dir.
func Extract(r io.Reader, dir string) ([]Entry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return Read(r, func(e Entry, data io.Reader) error {
		fd, err := unix.Openat(int(d.Fd()), e.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			return damaged("entry %s appears twice", e.Name)
		}
		if err != nil {
			return &os.PathError{Op: "create", Path: filepath.Join(dir, e.Name), Err: err}
		}
		f := os.NewFile(uintptr(fd), filepath.Join(dir, e.Name))
		_, err = io.Copy(f, data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// IsContext tells whether the regular file path starts like a context
// file. Anything else (a directory, a FIFO) is not one, and is not read.
func IsContext(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(fileMagic))
	n, _ := io.ReadFull(f, b)
	return n == len(b) && string(b) == fileMagic
}
