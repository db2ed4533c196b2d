package contextfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func compressedContext(t *testing.T, files map[string]string, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	cw, err := NewWriterOptions(&buf, WriterOptions{Compression: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.AddDir(dumpDir(t, files)); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pageLike is n bytes as a process's memory may be: pages of random
// bytes, of text and of zeros, in turn.
func pageLike(n int) string {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for p := 0; p < n; p += 4096 {
		page := b[p:min(p+4096, n)]
		switch (p / 4096) % 4 {
		case 0, 1:
			for i := range page {
				page[i] = byte(rng.Uint32())
			}
		case 2:
			copy(page, strings.Repeat("the job's own words, over and over; ", 4096/36+1))
		}
	}
	return string(b)
}

// TestCompressedRoundTrip: with each compression, every file comes back
// byte for byte, the entries say how they are stored, and what
// compresses is stored smaller. The large entry spans many segments and
// the encoders' concurrent jobs.
func TestCompressedRoundTrip(t *testing.T) {
	files := map[string]string{
		"inventory.img": "inventory",
		"pages-7.img":   pageLike(9<<20 + 123),
		"zeros.img":     strings.Repeat("\x00", 3<<20),
		"empty.img":     "",
	}
	for _, c := range Compressions {
		t.Run(string(c), func(t *testing.T) {
			ctx := compressedContext(t, files, c)
			if v := le.Uint32(ctx[8:]); v != VersionCompressed {
				t.Errorf("file header version %d, want %d", v, VersionCompressed)
			}
			out := t.TempDir()
			entries, err := Extract(bytes.NewReader(ctx), out)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(files, readAll(t, out)); diff != "" {
				t.Errorf("extracted files (-want +got):\n%s", diff)
			}
			for _, e := range entries {
				if e.Codec != c.codec() {
					t.Errorf("entry %s stored as %v, want %v", e.Name, e.Codec, c.codec())
				}
				if e.Offset%Align != 0 {
					t.Errorf("entry %s data at %d, not a multiple of %d", e.Name, e.Offset, Align)
				}
				if e.Size != int64(len(files[e.Name])) {
					t.Errorf("entry %s: size %d, want %d", e.Name, e.Size, len(files[e.Name]))
				}
				if e.Name == "zeros.img" && e.Stored*100 > e.Size {
					t.Errorf("entry %s: %d zero bytes stored in %d", e.Name, e.Size, e.Stored)
				}
				if e.Name == "pages-7.img" && e.Stored > e.Size*3/4 {
					t.Errorf("entry %s: %d bytes, half of them compressible, stored in %d", e.Name, e.Size, e.Stored)
				}
			}
		})
	}
}

// TestUncompressedVersion: a context without compression is of the
// first version, byte for byte what a gocr without compression writes,
// so every gocr reads it.
func TestUncompressedVersion(t *testing.T) {
	ctx := contextOf(t, sample)
	if v := le.Uint32(ctx[8:]); v != Version {
		t.Fatalf("file header version %d, want %d", v, Version)
	}
	entries, err := Read(bytes.NewReader(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Codec != Stored || e.Stored != e.Size {
			t.Errorf("entry %s: %v, %d bytes stored of %d", e.Name, e.Codec, e.Stored, e.Size)
		}
	}
}

// TestCompressedDamaged: a byte flipped anywhere in a compressed context
// is refused, and a flip in an entry's compressed data names the entry,
// whether the decompressor, the frame's checksum or the CRC-32C of the
// stored bytes finds it.
func TestCompressedDamaged(t *testing.T) {
	files := map[string]string{"a.img": "alpha", "b.img": strings.Repeat("b", 5000) + pageLike(6000)}
	// Every byte for zstd; every third for LZ4, whose reader allocates
	// its 1 MiB block buffer for each context read.
	for c, step := range map[Compression]int{Zstd: 1, LZ4: 3} {
		t.Run(string(c), func(t *testing.T) {
			ctx := compressedContext(t, files, c)
			entries, err := Read(bytes.NewReader(ctx), nil)
			if err != nil {
				t.Fatal(err)
			}
			inData := func(i int) bool {
				for _, e := range entries {
					if int64(i) >= e.Offset && int64(i) < e.Offset+e.Stored {
						return true
					}
				}
				return false
			}
			for i := 0; i < len(ctx); i += step {
				// Every byte of the data, and of the headers and end
				// record, which start pages; the padding that fills the
				// rest of those pages is TestEveryByteDamaged's.
				if !inData(i) && i%Align >= 256 {
					continue
				}
				bad := bytes.Clone(ctx)
				bad[i] ^= 0x20
				_, err := Read(bytes.NewReader(bad), readData)
				if err == nil {
					t.Fatalf("byte %d flipped: read without error", i)
				}
				if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNotContext) && !errors.Is(err, ErrVersion) {
					t.Fatalf("byte %d flipped: %v, want ErrDamaged", i, err)
				}
				for _, e := range entries {
					if int64(i) >= e.Offset && int64(i) < e.Offset+e.Stored && !strings.Contains(err.Error(), "entry "+e.Name) {
						t.Fatalf("byte %d (in entry %s) flipped: %v does not name the entry", i, e.Name, err)
					}
				}
			}
		})
	}
}

// readData reads an entry's data as Extract does.
func readData(_ Entry, data io.Reader) error {
	_, err := io.Copy(io.Discard, data)
	return err
}

// TestCompressedTruncated: a compressed context cut anywhere is
// incomplete; cut in an entry's data, the error names the entry.
func TestCompressedTruncated(t *testing.T) {
	files := map[string]string{"a.img": "alpha", "pages.img": pageLike(3 << 20)}
	ctx := compressedContext(t, files, Zstd)
	entries, err := Read(bytes.NewReader(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(ctx); n += 4093 {
		_, err := Read(bytes.NewReader(ctx[:n]), nil)
		if err == nil {
			t.Fatalf("cut at %d of %d bytes: read without error", n, len(ctx))
		}
		if n >= fileHeaderSize && !errors.Is(err, ErrDamaged) {
			t.Fatalf("cut at %d: %v, want ErrDamaged", n, err)
		}
		for _, e := range entries {
			if int64(n) > e.Offset && int64(n) < e.Offset+e.Stored && !strings.Contains(err.Error(), "entry "+e.Name+": the context is incomplete") {
				t.Fatalf("cut at %d (in entry %s): %v does not name the entry as incomplete", n, e.Name, err)
			}
		}
	}
	if _, err := Read(bytes.NewReader(ctx[:len(ctx)-1]), nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("cut one byte short: %v, want ErrDamaged", err)
	}
}

// TestCompressedStream: a compressed context goes through a pipe, read
// as it is written.
func TestCompressedStream(t *testing.T) {
	files := map[string]string{"inventory.img": "inventory", "pages.img": pageLike(5 << 20)}
	consumed := new(atomic.Int64)
	pipeRoundTrip(t, files, WriterOptions{Compression: LZ4, Consumed: consumed})
	var size int64
	for _, data := range files {
		size += int64(len(data))
	}
	if n := consumed.Load(); n != size {
		t.Errorf("Consumed counted %d bytes, the files hold %d", n, size)
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range Compressions {
		if got, err := ParseCompression(string(c)); err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %q, %v", c, got, err)
		}
	}
	if got, err := ParseCompression("none"); err != nil || got != NoCompression {
		t.Errorf("ParseCompression(none) = %q, %v", got, err)
	}
	if _, err := ParseCompression("gzip"); err == nil {
		t.Error("ParseCompression(gzip) accepted")
	}
}
