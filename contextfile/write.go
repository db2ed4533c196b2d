package contextfile

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
)

// Writer writes a context front to back. Nothing it writes is a complete
// context until Close has written the end record.
type Writer struct {
	bw       *bufio.Writer
	off      int64
	version  uint32
	comp     *compressor // nil: entries stored byte for byte
	consumed *atomic.Int64
	entries  []Entry
	names    map[string]bool
	err      error // the first write error: the stream is unusable after it
	zeros    [Align]byte
}

// WriterOptions say how a Writer stores its entries.
type WriterOptions struct {
	// Compression compresses every entry's data (none by default).
	Compression Compression
	// Consumed, if set, counts the bytes of the entries read so far (a
	// progress line reads it: compressed, what is written is less).
	Consumed *atomic.Int64
}

// NewWriter starts a context on w with its file header, storing every
// entry byte for byte.
func NewWriter(w io.Writer) (*Writer, error) {
	return NewWriterOptions(w, WriterOptions{})
}

// NewWriterOptions starts a context on w with its file header, storing
// the entries as o says.
func NewWriterOptions(w io.Writer, o WriterOptions) (*Writer, error) {
	cw := &Writer{bw: bufio.NewWriterSize(w, 1<<20), names: map[string]bool{}, version: Version, consumed: o.Consumed}
	if o.Compression != NoCompression {
		comp, err := newEncoder(o.Compression)
		if err != nil {
			return nil, err
		}
		cw.comp, cw.version = comp, VersionCompressed
	}
	cw.write(fileHeader(cw.version))
	cw.pad()
	return cw, cw.err
}

func (cw *Writer) write(b []byte) {
	if cw.err != nil {
		return
	}
	n, err := cw.bw.Write(b)
	cw.off += int64(n)
	cw.err = err
}

func (cw *Writer) pad() {
	cw.write(cw.zeros[:padTo(cw.off)])
}

// Add writes one entry: name, then size bytes read from r.
func (cw *Writer) Add(name string, r io.Reader, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	if cw.names[name] {
		return fmt.Errorf("entry %s added twice", name)
	}
	cw.names[name] = true
	codec := Stored
	if cw.comp != nil {
		codec = cw.comp.codec
	}
	cw.write(entryHeader(cw.version, name, size, codec))
	cw.pad()
	if cw.err != nil {
		return cw.err
	}
	if cw.consumed != nil {
		r = CountingReader{R: r, N: cw.consumed}
	}
	e := Entry{Name: name, Offset: cw.off, Size: size, Codec: codec}
	h := crc32.New(castagnoli)
	var n int64
	var err error
	if cw.comp != nil {
		n, e.Stored, err = cw.compress(io.MultiWriter(cw.bw, h), r, size)
	} else {
		n, err = io.Copy(io.MultiWriter(cw.bw, h), io.LimitReader(r, size))
		e.Stored = n
	}
	cw.off += e.Stored
	if err != nil {
		// A read or a write failed; either way the stream now holds a
		// partial entry and must not go on.
		cw.err = fmt.Errorf("entry %s: %w", name, err)
		return cw.err
	}
	if n != size {
		cw.err = fmt.Errorf("entry %s: %d bytes, expected %d: it changed while it was written", name, n, size)
		return cw.err
	}
	e.CRC = h.Sum32()
	cw.entries = append(cw.entries, e)
	cw.pad()
	return cw.err
}

// compress writes size bytes of r compressed to w, in segments. It
// returns the bytes read and written.
func (cw *Writer) compress(w io.Writer, r io.Reader, size int64) (read, written int64, err error) {
	seg := &segmentWriter{w: w}
	enc, err := cw.comp.start(seg, size)
	if err != nil {
		return 0, 0, err
	}
	read, err = io.Copy(enc, io.LimitReader(r, size))
	// Close even after an error: it ends the encoder's goroutines.
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = seg.end()
	}
	return read, seg.n, err
}

// AddDir adds every file in dir, in name order. Anything but a regular
// file is refused: a dump directory holds nothing else.
func (cw *Writer) AddDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: %s is not a regular file", dir, e.Name())
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, name := range names {
		if err := cw.addFile(filepath.Join(dir, name), name); err != nil {
			return err
		}
	}
	return nil
}

func (cw *Writer) addFile(path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return cw.Add(name, f, st.Size())
}

// Flush writes out what is buffered: everything added so far is then in
// the underlying writer, though the context is not complete until Close.
func (cw *Writer) Flush() error {
	if cw.err == nil {
		cw.err = cw.bw.Flush()
	}
	return cw.err
}

// Close writes the end record, which completes the context, and flushes.
// It does not close the underlying writer.
func (cw *Writer) Close() error {
	if cw.err != nil {
		return cw.err
	}
	if len(cw.entries) == 0 {
		return errors.New("a context holds at least one file")
	}
	cw.write(endRecord(cw.entries))
	return cw.Flush()
}

// Entries lists what was added so far.
func (cw *Writer) Entries() []Entry { return slices.Clone(cw.entries) }
