//go:build linux

package restorer

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// savedFileOf describes path as a dump would have saved it.
func savedFileOf(t *testing.T, path string) *gocrpb.SavedFile {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return &gocrpb.SavedFile{Id: 1, CtimeNs: st.Ctim.Nano(), Mode: st.Mode, Sha256: sum[:],
		File: &gocrpb.FileRef{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}}
}

func TestNeedsCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lib.so")
	if err := os.WriteFile(path, []byte("contents of the library"), 0o644); err != nil {
		t.Fatal(err)
	}
	sf := savedFileOf(t, path)
	if needsCopy(sf) {
		t.Error("the same file, unchanged: want it mapped from its path")
	}
	detached := savedFileOf(t, path)
	detached.Detached = true
	if !needsCopy(detached) {
		t.Error("a file deleted or replaced at the dump: want the copy")
	}
	// Another file with the same contents (copied over by rename): the
	// identity differs, the contents do not.
	if err := os.WriteFile(path+".new", []byte("contents of the library"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path+".new", future, future); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if needsCopy(sf) {
		t.Error("another file with the same contents: want it mapped from its path")
	}
	// Same size, other contents.
	if err := os.WriteFile(path, []byte("contents of the LIBRARY"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !needsCopy(sf) {
		t.Error("the same size with other contents: want the copy")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !needsCopy(sf) {
		t.Error("a missing file: want the copy")
	}
}
