package contextfile

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadIndex: the index read in place is what reading the whole
// context finds, offsets, sizes and CRCs included, and every entry
// verifies.
func TestReadIndex(t *testing.T) {
	ctx := contextOf(t, sample)
	want, err := Read(bytes.NewReader(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadIndex(bytes.NewReader(ctx), int64(len(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("index (-Read +ReadIndex):\n%s", diff)
	}
	if err := Verify(bytes.NewReader(ctx), got); err != nil {
		t.Fatal(err)
	}
}

// TestInPlaceEveryByteDamaged: a byte flipped anywhere in a context is
// refused by ReadIndex, or, in an entry's data, by Verify, naming it.
func TestInPlaceEveryByteDamaged(t *testing.T) {
	ctx := contextOf(t, map[string]string{"a.img": "alpha", "b.img": strings.Repeat("b", 5000)})
	entries, err := Read(bytes.NewReader(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	inData := func(i int) string {
		for _, e := range entries {
			if int64(i) >= e.Offset && int64(i) < e.Offset+e.Size {
				return e.Name
			}
		}
		return ""
	}
	for i := range ctx {
		bad := bytes.Clone(ctx)
		bad[i] ^= 0x20
		es, err := ReadIndex(bytes.NewReader(bad), int64(len(bad)))
		if name := inData(i); name != "" {
			if err != nil {
				t.Fatalf("byte %d (in entry %s) flipped: ReadIndex: %v, want it to read only the structure", i, name, err)
			}
			err = Verify(bytes.NewReader(bad), es)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "entry "+name) {
				t.Fatalf("byte %d (in entry %s) flipped: Verify: %v, want ErrDamaged naming the entry", i, name, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("byte %d flipped: ReadIndex without error", i)
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNotContext) {
			t.Fatalf("byte %d flipped: %v, want ErrDamaged", i, err)
		}
	}
}

// TestInPlaceTruncated: a context cut anywhere is refused by ReadIndex,
// or, cut in an entry's data, before the end record is ever reached.
func TestInPlaceTruncated(t *testing.T) {
	ctx := contextOf(t, sample)
	for n := 0; n < len(ctx); n += 97 {
		if _, err := ReadIndex(bytes.NewReader(ctx[:n]), int64(n)); err == nil {
			t.Fatalf("cut at %d of %d bytes: ReadIndex without error", n, len(ctx))
		}
	}
	if _, err := ReadIndex(bytes.NewReader(append(bytes.Clone(ctx), 0)), int64(len(ctx)+1)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a byte after the end: %v, want ErrDamaged", err)
	}
}

// TestInPlaceCompressed: a compressed context is not read in place.
func TestInPlaceCompressed(t *testing.T) {
	var buf bytes.Buffer
	cw, err := NewWriterOptions(&buf, WriterOptions{Compression: LZ4})
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.AddDir(dumpDir(t, sample)); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len())); !errors.Is(err, ErrCompressed) {
		t.Fatalf("ReadIndex of a compressed context: %v, want ErrCompressed", err)
	}
}
