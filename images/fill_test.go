package images

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFillFile: data whose tail is a hole, followed in its file by other
// bytes (as a context's next entry follows an image's data), fills a file
// with the data and its hole, checked by its sum; a wrong sum is refused.
func TestFillFile(t *testing.T) {
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	page := 4096
	data := bytes.Repeat([]byte{'A'}, page)
	if _, err := src.WriteAt(data, int64(page)); err != nil { // the data: one page, then a hole
		t.Fatal(err)
	}
	if _, err := src.WriteAt(bytes.Repeat([]byte{'X'}, page), int64(4*page)); err != nil { // what follows it
		t.Fatal(err)
	}
	want := append(append([]byte{}, data...), make([]byte, 2*page)...)
	sum := sha256.Sum256(want)
	d := &Data{File: src, Off: int64(page), Size: int64(len(want))}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := d.FillFile(dst, sum[:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst.Name()); !bytes.Equal(got, want) {
		t.Errorf("filled file: %d bytes, not the data and its hole", len(got))
	}
	if err := d.FillFile(dst, make([]byte, sha256.Size)); !errors.Is(err, ErrContentsDiffer) {
		t.Errorf("a wrong sum: %v", err)
	}
}
