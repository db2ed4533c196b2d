package images

import (
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPagesVerifiedAsRead: a page image opened for a reader that verifies
// it as it reads it in gives the stored checksums and leaves its data
// alone; the chunks the reader does not take are verified, and a bad one
// named as OpenPages names it.
func TestPagesVerifiedAsRead(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	data := samplePageData()
	d, err := Open(src.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, sums, err := d.OpenPagesUnverified(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if sums == nil || sums.Chunk != DataChunkSize || len(sums.Sums) != 1 {
		t.Fatalf("sums %+v, want one chunk of %d bytes", sums, DataChunkSize)
	}
	if want := crc32.Checksum(data, castagnoli); sums.Sums[0] != want {
		t.Errorf("stored checksum %#08x, want %#08x", sums.Sums[0], want)
	}
	if err := d.VerifyPageChunks(img, sums, func(int) bool { return false }); err != nil {
		t.Errorf("intact image: %v", err)
	}
	// Intact, yet said to be bad as read: the image changed meanwhile.
	if err := d.PageChunkError(img, sums); err == nil || !strings.Contains(err.Error(), "changed meanwhile") {
		t.Errorf("PageChunkError of an intact image: %v, want one saying it changed meanwhile", err)
	}

	// A byte of the data flipped.
	path := filepath.Join(src.Path, pagesName(testPid, 0))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[PagesDataOffset+len(data)/2] ^= 1
	bad := mutateDir(t, src, pagesName(testPid, 0), b)
	img2, sums2, err := bad.OpenPagesUnverified(testPid, 0)
	if err != nil {
		t.Fatalf("the data is left to the reader, yet opening failed: %v", err)
	}
	defer img2.Close()
	if err := bad.VerifyPageChunks(img2, sums2, func(int) bool { return true }); err != nil {
		t.Errorf("every chunk left to the reader, yet: %v", err)
	}
	for _, err := range []error{
		bad.VerifyPageChunks(img2, sums2, func(int) bool { return false }),
		bad.PageChunkError(img2, sums2),
	} {
		if err == nil || !strings.Contains(err.Error(), "page data bytes 0x0-0x3000 (chunk 0 of 1, pages") ||
			!strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("bad chunk: %v, want it named with its bytes and pages", err)
		}
	}
}

// mutateDir is a copy of the sample dump src with data in place of the
// image name, opened.
func mutateDir(t *testing.T, src *Dir, name string, data []byte) *Dir {
	t.Helper()
	var d *Dir
	mutateAndRead(t, src, name, data, func(c *Dir) error {
		var err error
		if d, err = Open(c.Path); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	t.Cleanup(func() { d.Close() })
	return d
}
