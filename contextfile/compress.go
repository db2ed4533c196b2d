package contextfile

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compressed entries. A compressed entry's data is one stream of its
// compressed format (a zstd frame, RFC 8878; an LZ4 frame), cut into
// segments: u32 length, that many bytes of the stream, ..., and a zero
// length that ends the entry. The compressor streams (the size of the
// compressed data is not known when the entry header is written, and
// nothing is buffered whole), so the segments are what tell the reader
// where the entry ends; its decompressor never reads past them. The end
// record's size and CRC-32C are of the segments as stored; the entry
// header's size is the file's, which the decompressed data must match,
// and the frame's own checksum (zstd's XXH64 of the content, LZ4's
// xxHash32) proves those bytes.

// Codec is how an entry's data is stored, as its header records it.
type Codec uint32

const (
	Stored    Codec = 0 // byte for byte
	CodecZstd Codec = 1
	CodecLZ4  Codec = 2
)

func (c Codec) String() string {
	switch c {
	case Stored:
		return "stored"
	case CodecZstd:
		return "zstd"
	case CodecLZ4:
		return "lz4"
	}
	return fmt.Sprintf("codec %d", uint32(c))
}

// Compression is whether, and how, a Writer compresses its entries.
type Compression string

const (
	NoCompression Compression = ""
	// Zstd is zstd at the library's default level (about zstd -3).
	Zstd Compression = "zstd"
	// ZstdFastest is zstd at its fastest level (about zstd -1).
	ZstdFastest Compression = "zstd-fastest"
	// LZ4 is LZ4 at its fast level.
	LZ4 Compression = "lz4"
)

// Compressions lists the values ParseCompression takes.
var Compressions = []Compression{Zstd, ZstdFastest, LZ4}

// ParseCompression reads the name of a Compression ("none": none).
func ParseCompression(s string) (Compression, error) {
	if s == "none" {
		return NoCompression, nil
	}
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return NoCompression, fmt.Errorf("unknown compression %q: use zstd, zstd-fastest or lz4", s)
}

func (c Compression) codec() Codec {
	switch c {
	case Zstd, ZstdFastest:
		return CodecZstd
	case LZ4:
		return CodecLZ4
	}
	return Stored
}

// maxSegment bounds a segment, so a damaged length cannot make a reader
// wait for more than this.
const maxSegment = 1 << 20

// zstdWindow is the zstd window the writer uses. Page data repeats
// within a page or between near pages: measured on a 1 GiB process (bench,
// compression rows), a 256 KiB window compresses as well as 1 MiB, and the
// concurrent encoder, which holds jobs of four windows (at least 512 KiB)
// per core, peaks at 31 MiB of RSS instead of 70 with two cores.
const zstdWindow = 256 << 10

// zstdMaxWindow is the largest window a reader accepts, so that a crafted
// frame cannot make it allocate more: the 8 MiB RFC 8878 (3.1.1.1.2)
// recommends every decoder support.
const zstdMaxWindow = 8 << 20

// lz4Block is the LZ4 block size: the concurrent encoder holds a block
// per core.
const lz4Block = lz4.Block1Mb

// encoder compresses one entry after another (Reset between them).
type encoder interface {
	io.Writer
	Close() error
}

// newEncoder makes the encoder of c. Both compress with every core
// (GOMAXPROCS), each core a part of the stream, in bounded memory: zstd
// with its concurrent blocks (jobs of four windows), LZ4 a block per
// core.
func newEncoder(c Compression) (*compressor, error) {
	n := runtime.GOMAXPROCS(0)
	switch c {
	case Zstd, ZstdFastest:
		level := zstd.SpeedDefault
		if c == ZstdFastest {
			level = zstd.SpeedFastest
		}
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(n),
			zstd.WithConcurrentBlocks(true), zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		return &compressor{codec: CodecZstd, zstd: z}, nil
	case LZ4:
		return &compressor{codec: CodecLZ4, lz4: lz4.NewWriter(nil), workers: n}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// compressor is the encoder of a Writer, reused for each entry.
type compressor struct {
	codec   Codec
	zstd    *zstd.Encoder
	lz4     *lz4.Writer
	workers int
}

// start begins an entry of size bytes whose compressed stream goes to w.
func (c *compressor) start(w io.Writer, size int64) (encoder, error) {
	if c.zstd != nil {
		// The frame records the size; the decoder checks it.
		c.zstd.ResetContentSize(w, size)
		return c.zstd, nil
	}
	c.lz4.Reset(w)
	if err := c.lz4.Apply(lz4.BlockSizeOption(lz4Block), lz4.ConcurrencyOption(c.workers),
		lz4.ChecksumOption(true), lz4.SizeOption(uint64(size))); err != nil {
		return nil, fmt.Errorf("lz4 encoder: %w", err)
	}
	return c.lz4, nil
}

// segmentWriter cuts what is written to it into segments on w.
type segmentWriter struct {
	w io.Writer
	n int64 // bytes written to w
}

func (s *segmentWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		k := min(len(p), maxSegment)
		var h [4]byte
		le.PutUint32(h[:], uint32(k))
		if err := s.put(h[:]); err != nil {
			return done, err
		}
		if err := s.put(p[:k]); err != nil {
			return done, err
		}
		done += k
		p = p[k:]
	}
	return done, nil
}

func (s *segmentWriter) put(b []byte) error {
	n, err := s.w.Write(b)
	s.n += int64(n)
	return err
}

// end writes the zero length that ends the entry.
func (s *segmentWriter) end() error { return s.put(make([]byte, 4)) }

// segmentReader reads the compressed stream of entry name out of its
// segments, up to the zero length that ends them.
type segmentReader struct {
	r    io.Reader
	name string
	left int   // bytes left in the current segment
	n    int64 // bytes read from r
	done bool  // the end was read
	err  error // the damage found, kept: a decompressor may hide it
}

func (s *segmentReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for s.left == 0 {
		if s.done {
			return 0, io.EOF
		}
		var h [4]byte
		if err := s.full(h[:]); err != nil {
			return 0, err
		}
		l := le.Uint32(h[:])
		switch {
		case l == 0:
			s.done = true
			return 0, io.EOF
		case l > maxSegment:
			s.err = damaged("entry %s: a segment of its compressed data claims %d bytes, at most %d are written", s.name, l, maxSegment)
			return 0, s.err
		}
		s.left = int(l)
	}
	p = p[:min(len(p), s.left)]
	if err := s.full(p); err != nil {
		return 0, err
	}
	s.left -= len(p)
	return len(p), nil
}

func (s *segmentReader) full(b []byte) error {
	n, err := io.ReadFull(s.r, b)
	s.n += int64(n)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		s.err = damaged("it ends in the data of entry %s: the context is incomplete", s.name)
	case err != nil:
		s.err = fmt.Errorf("entry %s: %w", s.name, err)
	}
	return s.err
}

// decompressors hold a Read's decoders, made when first needed and
// reused for each entry.
type decompressors struct {
	zstd *zstd.Decoder
	lz4  *lz4.Reader
}

// open returns the decompressed data of entry e read from seg.
func (d *decompressors) open(e Entry, seg *segmentReader) (io.Reader, error) {
	var r io.Reader
	switch e.Codec {
	case CodecZstd:
		if d.zstd == nil {
			// Synchronous (concurrency 1): no goroutine reads ahead, so
			// nothing is left reading the stream when Read returns.
			z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow),
				zstd.IgnoreChecksum(false))
			if err != nil {
				return nil, fmt.Errorf("zstd decoder: %w", err)
			}
			d.zstd = z
		}
		if err := d.zstd.Reset(seg); err != nil {
			return nil, decodeError(e, seg, err)
		}
		r = d.zstd
	case CodecLZ4:
		if d.lz4 == nil {
			d.lz4 = lz4.NewReader(nil)
		}
		d.lz4.Reset(seg)
		r = d.lz4
	default:
		return nil, fmt.Errorf("%w: entry %s is stored as %v, which this gocr does not read", ErrVersion, e.Name, e.Codec)
	}
	return &decoded{r: r, e: e, seg: seg}, nil
}

func (d *decompressors) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// decoded reads an entry's decompressed data; any error but the end of
// it names the entry as damaged.
type decoded struct {
	r   io.Reader
	e   Entry
	seg *segmentReader
}

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = decodeError(d.e, d.seg, err)
	}
	return n, err
}

// decodeError names the entry whose compressed data err is about: the
// damage its segments showed, if any, else what the decompressor says.
func decodeError(e Entry, seg *segmentReader, err error) error {
	if seg.err != nil {
		return seg.err
	}
	if errors.Is(err, ErrDamaged) {
		return err
	}
	return damaged("entry %s: its %v data does not decompress: %v", e.Name, e.Codec, err)
}
