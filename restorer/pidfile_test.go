//go:build linux

package restorer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWritePidFile: the PID and a newline, replacing a symbolic link
// rather than writing through it, and a clear error for a missing
// directory.
func TestWritePidFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pid")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := writePidFile(path, 4242); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "4242\n" {
		t.Errorf("pid file holds %q (%v)", b, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("the link's target was written: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d entries in the directory, want the pid file and the other file", len(ents))
	}
	if err := writePidFile(filepath.Join(dir, "no", "pid"), 1); err == nil {
		t.Error("a pid file in a missing directory was written")
	}
}
