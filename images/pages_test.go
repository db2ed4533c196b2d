package images

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestPageStreamImages: each stream has its own page image, named
// pages-PID.img for stream 0 and pages-PID.S.img above; streams outside
// 0..MaxPageStreams-1 are refused when writing, opening and in a page map;
// Discard removes a stream image so Abort need not; Show names every one.
func TestPageStreamImages(t *testing.T) {
	path := t.TempDir()
	d, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		f, err := d.CreatePages(testPid, s)
		if err != nil {
			t.Fatal(err)
		}
		// Until the inventory completes it, the dump is in its private
		// directory beside path.
		if want := filepath.Join(d.current(), pagesName(testPid, s)); f.Name() != want || filepath.Dir(d.current()) != filepath.Dir(path) {
			t.Errorf("stream %d image is %s, want %s", s, f.Name(), want)
		}
		if _, err := f.Write(make([]byte, 4096*(s+1))); err != nil {
			t.Fatal(err)
		}
		if err := FinishPages(f, int64(4096*(s+1))); err != nil {
			t.Fatal(err)
		}
		if s == 2 {
			if err := d.Discard(f); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(f.Name()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("discarded %s still there: %v", f.Name(), err)
			}
		} else {
			f.Close()
		}
	}
	if pagesName(testPid, 1) != fmt.Sprintf("pages-%d.1.img", testPid) {
		t.Errorf("stream 1 is named %s", pagesName(testPid, 1))
	}
	for _, s := range []int{-1, MaxPageStreams} {
		if _, err := d.CreatePages(testPid, s); err == nil {
			t.Errorf("CreatePages of stream %d succeeded", s)
		}
		if _, err := d.OpenPages(testPid, s); err == nil {
			t.Errorf("OpenPages of stream %d succeeded", s)
		}
	}
	pm, err := d.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*gocrpb.PageRange{{Vaddr: 0x1000, NrPages: 1}, {Vaddr: 0x2000, NrPages: 2, Stream: 1}} {
		if err := pm.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	ranges, err := d.ReadPagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 || ranges[1].GetStream() != 1 {
		t.Errorf("page map read back as %v", ranges)
	}
	// A discarded stream is not sealed: it is gone.
	if err := d.SealData(); err != nil {
		t.Fatal(err)
	}
	if img, err := d.OpenPages(testPid, 1); err != nil || img.Size != 8192 {
		t.Errorf("OpenPages stream 1: %v; want 8192 bytes", err)
	} else {
		img.Close()
	}
	if _, err := d.OpenPages(testPid, 2); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), pagesName(testPid, 2)) {
		t.Errorf("OpenPages of a discarded stream: %v, want fs.ErrNotExist naming %s", err, pagesName(testPid, 2))
	}
	// Without an inventory Show reports an error but still prints every
	// image it can read.
	var out strings.Builder
	_ = Show(d.current(), &out, OpenOptions{})
	if !strings.Contains(out.String(), "=== "+pagesName(testPid, 1)+" ===") {
		t.Errorf("show printed no block for %s:\n%s", pagesName(testPid, 1), out.String())
	}

	bad, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pm, err = bad.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.Add(&gocrpb.PageRange{Vaddr: 0x1000, NrPages: 1, Stream: MaxPageStreams}); err != nil {
		t.Fatal(err)
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ReadPagemap(testPid); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Errorf("a page map naming stream %d read as %v, want an error about the stream", MaxPageStreams, err)
	}
}

// TestSparseDataImage: a memfd image keeps holes as holes; a chunk that
// is all hole is summed as zeros without being read, and data written
// into a hole afterwards is caught, naming the chunk.
func TestSparseDataImage(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	f, err := d.CreateMemfd(7)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	page := bytes.Repeat([]byte{0xa5}, 4096)
	for _, off := range []int64{0, 5 << 20} {
		if _, err := f.WriteAt(page, PagesDataOffset+off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(PagesDataOffset + size); err != nil {
		t.Fatal(err)
	}
	if err := FinishPages(f, size); err != nil {
		t.Fatal(err)
	}
	if err := d.SealData(); err != nil {
		t.Fatal(err)
	}
	img, err := d.OpenMemfd(7)
	if err != nil || img.Size != size {
		t.Fatalf("OpenMemfd: %v; want %d bytes", err, size)
	}
	img.Close()
	if _, err := f.WriteAt([]byte{1}, PagesDataOffset+3<<20+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = d.OpenMemfd(7)
	fe := requireFormatError(t, err, "a byte written into a hole")
	if want := "page data bytes 0x300000-0x400000 (chunk 3 of 8): checksum mismatch"; !strings.Contains(fe.Reason, want) {
		t.Errorf("reason %q, want it to contain %q", fe.Reason, want)
	}
}
