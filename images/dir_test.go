package images

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/gocrpb"
)

func TestOpenRequiresInventory(t *testing.T) {
	dir := t.TempDir()
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrIncompleteDump) {
		t.Fatalf("Open without inventory: got %v, want ErrIncompleteDump", err)
	}
	if want := dir + ": not a complete gocr dump (no inventory.img)"; err.Error() != want {
		t.Errorf("Open without inventory: error %q, want %q", err, want)
	}
	if _, err := Open(filepath.Join(dir, "nonexistent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing dir: got %v, want fs.ErrNotExist", err)
	}
}

func TestInventoryValidated(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range []*gocrpb.Inventory{
		{RootPid: 1},
		{RootPid: 1, Pids: []int32{2}},
		{RootPid: 1, Pids: []int32{1, 1}},
		{FormatVersion: FormatVersion + 1, RootPid: 1, Pids: []int32{1}},
	} {
		if err := d.WriteInventory(inv); err == nil {
			t.Errorf("WriteInventory(%v) succeeded, want an error", inv)
		}
	}
	inv := &gocrpb.Inventory{RootPid: 1, Pids: []int32{1}}
	if err := d.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	if inv.FormatVersion != 0 {
		t.Errorf("WriteInventory modified its argument")
	}
	if got := d.Inventory().GetFormatVersion(); got != FormatVersion {
		t.Errorf("written inventory format_version = %d, want %d", got, FormatVersion)
	}
	if _, err := Open(d.Path); err != nil {
		t.Errorf("Open after WriteInventory: %v", err)
	}
}

func TestCreateRemovesOldInventory(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, inventoryName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("inventory.img after Create over an old dump: stat error %v, want not exist", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrIncompleteDump) {
		t.Errorf("Open after Create over an old dump: got %v, want ErrIncompleteDump", err)
	}
}

func TestAbortRemovesCreatedFiles(t *testing.T) {
	t.Run("new dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dump")
		d := writeSampleDump(t, dir)
		// A writer left open by a failed dump.
		if _, err := d.CreatePages(testPid+1, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dump dir created by Create still exists after Abort (stat: %v)", err)
		}
	})
	t.Run("existing dir", func(t *testing.T) {
		dir := t.TempDir()
		keep := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := writeSampleDump(t, dir)
		if err := d.Abort(); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if diff := cmp.Diff([]string{"notes.txt"}, names); diff != "" {
			t.Errorf("files left after Abort (-want +got):\n%s", diff)
		}
	})
}

func TestFinishPagesChecksSize(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.CreatePages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != PagesDataOffset {
		t.Fatalf("CreatePages file offset = %d, %v; want %d", off, err, PagesDataOffset)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := FinishPages(f, 8192); err == nil {
		t.Errorf("FinishPages with a size larger than written succeeded")
	}
	if err := FinishPages(f, 4096); err != nil {
		t.Fatal(err)
	}
	_, size, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if size != 4096 {
		t.Errorf("data size = %d, want 4096", size)
	}
}
