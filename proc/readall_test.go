package proc

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestReadAll(t *testing.T) {
	// Longer than the first buffer: the reads go on to the end.
	want := strings.Repeat("0123456789abcdef", 1000)
	path := t.TempDir() + "/f"
	if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(path)
	if err != nil || string(got) != want {
		t.Fatalf("ReadAll(%s) = %d bytes, %v; want %d bytes", path, len(got), err, len(want))
	}
	// A /proc file shows size 0 and still reads whole.
	b, err := ReadAll("/proc/self/status")
	if err != nil || !strings.Contains(string(b), "\nTracerPid:") {
		t.Fatalf("ReadAll(/proc/self/status) = %q, %v", b, err)
	}
	_, err = ReadAll("/proc/self/no-such-file")
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("ReadAll of a missing file: %v, want an *fs.PathError of open, ErrNotExist", err)
	}
}
