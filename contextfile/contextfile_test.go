package contextfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dumpDir makes a directory of files standing in for a dump's images.
func dumpDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var sample = map[string]string{
	"inventory.img": "inventory",
	"task-7.img":    "task of seven",
	"pages-7.img":   strings.Repeat("\x01", 4096) + strings.Repeat("page", 3000),
	"empty.img":     "",
}

func contextOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	cw, err := NewWriter(&buf)
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

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	return got
}

// TestRoundTrip: every file comes back byte for byte, each entry's data
// at a multiple of Align and at the offset the entry says.
func TestRoundTrip(t *testing.T) {
	ctx := contextOf(t, sample)
	out := t.TempDir()
	entries, err := Extract(bytes.NewReader(ctx), out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sample, readAll(t, out)); diff != "" {
		t.Errorf("extracted files (-want +got):\n%s", diff)
	}
	if len(entries) != len(sample) {
		t.Fatalf("%d entries, want %d", len(entries), len(sample))
	}
	for _, e := range entries {
		if e.Offset%Align != 0 {
			t.Errorf("entry %s data at %d, not a multiple of %d", e.Name, e.Offset, Align)
		}
		if got := string(ctx[e.Offset : e.Offset+e.Size]); got != sample[e.Name] {
			t.Errorf("entry %s: the bytes at its offset are not its data", e.Name)
		}
	}
}

// TestEveryByteDamaged: a byte flipped anywhere in a context (header,
// entry header, data, padding, end record) is refused, and a flip in an
// entry's data names that entry.
func TestEveryByteDamaged(t *testing.T) {
	ctx := contextOf(t, map[string]string{"a.img": "alpha", "b.img": strings.Repeat("b", 5000)})
	entries, err := Read(bytes.NewReader(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ctx {
		bad := bytes.Clone(ctx)
		bad[i] ^= 0x20
		_, err := Read(bytes.NewReader(bad), nil)
		if err == nil {
			t.Fatalf("byte %d flipped: read without error", i)
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNotContext) {
			t.Fatalf("byte %d flipped: %v, want ErrDamaged", i, err)
		}
		for _, e := range entries {
			if int64(i) >= e.Offset && int64(i) < e.Offset+e.Size && !strings.Contains(err.Error(), "entry "+e.Name) {
				t.Fatalf("byte %d (in entry %s) flipped: %v does not name the entry", i, e.Name, err)
			}
		}
	}
}

// TestTruncated: a context cut anywhere, even just before the end
// record, is incomplete.
func TestTruncated(t *testing.T) {
	ctx := contextOf(t, sample)
	for n := 0; n < len(ctx); n += 97 {
		if _, err := Read(bytes.NewReader(ctx[:n]), nil); err == nil {
			t.Fatalf("cut at %d of %d bytes: read without error", n, len(ctx))
		}
	}
	if _, err := Read(bytes.NewReader(ctx[:len(ctx)-1]), nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("cut one byte short: %v, want ErrDamaged", err)
	}
	if _, err := Read(bytes.NewReader(append(bytes.Clone(ctx), 0)), nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a byte after the end: %v, want ErrDamaged", err)
	}
}

func TestNotContext(t *testing.T) {
	for _, in := range []string{"", "GOCR", "GOCRIMG\x00 an image, not a context"} {
		if _, err := Read(strings.NewReader(in), nil); !errors.Is(err, ErrNotContext) {
			t.Errorf("Read(%q) = %v, want ErrNotContext", in, err)
		}
	}
}

// TestStream: the writer never seeks, so a context goes through a pipe.
func TestStream(t *testing.T) {
	pipeRoundTrip(t, sample, WriterOptions{})
}

// pipeRoundTrip writes a context of files with opts into a pipe while
// Extract reads it from the other end, and checks what comes out.
func pipeRoundTrip(t *testing.T, files map[string]string, opts WriterOptions) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	dir := dumpDir(t, files)
	done := make(chan error, 1)
	go func() {
		cw, err := NewWriterOptions(w, opts)
		if err == nil {
			err = cw.AddDir(dir)
		}
		if err == nil {
			err = cw.Close()
		}
		w.Close()
		done <- err
	}()
	out := t.TempDir()
	_, err = Extract(r, out)
	r.Close()
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, readAll(t, out)); diff != "" {
		t.Errorf("extracted files (-want +got):\n%s", diff)
	}
}

// TestNames: an entry can only be a plain file name.
func TestNames(t *testing.T) {
	cw, _ := NewWriter(io.Discard)
	for _, name := range []string{"", ".", "..", "a/b", "../x", strings.Repeat("n", 256), "nul\x00"} {
		if err := cw.Add(name, strings.NewReader(""), 0); err == nil {
			t.Errorf("Add(%q) accepted", name)
		}
	}
}

// TestReplace: BLCR's policies for an existing context file.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "context.7")
	write := func(data string, o FileOptions) error {
		return WriteFile(path, dumpDir(t, map[string]string{"x.img": data}), o)
	}
	holds := func(p, want string) {
		t.Helper()
		out := t.TempDir()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := Extract(f, out); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := readAll(t, out)["x.img"]; got != want {
			t.Fatalf("%s holds %q, want %q", p, got, want)
		}
	}
	if err := write("one", FileOptions{}); err != nil {
		t.Fatal(err)
	}
	holds(path, "one")
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("context file mode %v, want 0600", st.Mode().Perm())
	}
	if err := write("two", FileOptions{Replace: NoClobber}); !errors.Is(err, ErrExists) {
		t.Fatalf("noclobber over an existing file: %v, want ErrExists", err)
	}
	holds(path, "one")
	if err := write("two", FileOptions{Replace: Backup}); err != nil {
		t.Fatal(err)
	}
	if err := write("three", FileOptions{Replace: Backup}); err != nil {
		t.Fatal(err)
	}
	holds(path, "three")
	holds(path+".~1~", "one")
	holds(path+".~2~", "two")
	named := filepath.Join(dir, "old")
	if err := write("four", FileOptions{Replace: Backup, BackupName: named}); err != nil {
		t.Fatal(err)
	}
	holds(named, "three")
	if err := write("five", FileOptions{Replace: Clobber}); err != nil {
		t.Fatal(err)
	}
	holds(path, "five")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "gocr-tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
