package images

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gocr/gocr/contextfile"
)

// sampleContext writes the sample dump as a context file and returns its
// path and entries.
func sampleContext(t *testing.T, opts contextfile.FileOptions) (string, []contextfile.Entry) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dump")
	writeSampleDump(t, dir).Close()
	ctx := filepath.Join(t.TempDir(), "ctx")
	if err := contextfile.WriteFile(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := contextfile.Read(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, entries
}

func openContextFile(t *testing.T, path string) (*Dir, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return OpenContext(f, OpenOptions{})
}

// TestOpenContext: a dump read in place from a context reads as the dump
// does, and its page data lies page-aligned in the context, where Data
// says.
func TestOpenContext(t *testing.T) {
	ctx, _ := sampleContext(t, contextfile.FileOptions{})
	d, err := openContextFile(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	task, err := d.ReadTask(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleTask(), task, protocmp.Transform()); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
	ranges, err := d.ReadPagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(samplePagemap(), ranges, protocmp.Transform()); diff != "" {
		t.Errorf("pagemap (-want +got):\n%s", diff)
	}
	img, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	want := samplePageData()
	if img.Size != int64(len(want)) || img.Off%4096 != 0 || img.Off <= PagesDataOffset {
		t.Fatalf("page data of %d bytes at %d in the context; want %d bytes, page-aligned, past the context's header", img.Size, img.Off, len(want))
	}
	got, err := io.ReadAll(io.NewSectionReader(img, img.Off, img.Size))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("page data read in place differs from what was written")
	}
	if n := d.PageImageBytes(); n != PagesDataOffset+int64(len(want))+4 {
		t.Errorf("PageImageBytes = %d, want the page image's size", n)
	}
	if _, err := d.OpenMemfd(1); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), ctx+":memfd-1.img") {
		t.Errorf("OpenMemfd of an image the context lacks: %v, want ErrNotExist naming it", err)
	}
}

// TestOpenContextDamaged: a byte flipped in any entry's data is refused
// when the context is opened, as damaged, naming the image, whether the
// entry's CRC-32C (a record image) or the image's own checksums (page
// data) find it.
func TestOpenContextDamaged(t *testing.T) {
	ctx, entries := sampleContext(t, contextfile.FileOptions{})
	good, err := os.ReadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, at := range []int64{0, e.Size / 2, e.Size - 1} {
			b := bytes.Clone(good)
			b[e.Offset+at] ^= 0x10
			if err := os.WriteFile(ctx, b, 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := openContextFile(t, ctx)
			if err == nil {
				d.Close()
				t.Fatalf("byte %d of %s flipped: opened", at, e.Name)
			}
			if !errors.Is(err, contextfile.ErrDamaged) || !strings.Contains(err.Error(), e.Name) {
				t.Fatalf("byte %d of %s flipped: %v, want ErrDamaged naming it", at, e.Name, err)
			}
		}
	}
	pages := entries[0]
	for _, e := range entries {
		if strings.HasPrefix(e.Name, "pages-") {
			pages = e
		}
	}
	b := bytes.Clone(good)
	b[pages.Offset+PagesDataOffset+5000] ^= 1
	os.WriteFile(ctx, b, 0o600)
	_, err = openContextFile(t, ctx)
	if want := "page data bytes 0x0-0x3000 (chunk 0 of 1, pages 0x602000-0x603000"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("page data damaged: %v, want %q", err, want)
	}
}

// TestOpenContextCompressed: a compressed context is not read in place.
func TestOpenContextCompressed(t *testing.T) {
	ctx, _ := sampleContext(t, contextfile.FileOptions{Compression: contextfile.LZ4})
	if _, err := openContextFile(t, ctx); !errors.Is(err, contextfile.ErrCompressed) {
		t.Fatalf("OpenContext of a compressed context: %v, want ErrCompressed", err)
	}
}
