package images

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestNewDumpReplacesOldOnlyWhenComplete: a dump into a directory holding
// a checkpoint leaves that checkpoint whole until the new one is complete,
// then replaces it at once; a dump that fails, or is killed, leaves it as
// it was.
func TestNewDumpReplacesOldOnlyWhenComplete(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	writeSampleDump(t, dir)
	oldTask, err := os.ReadFile(filepath.Join(dir, taskName(testPid)))
	if err != nil {
		t.Fatal(err)
	}
	checkOld := func(when string) {
		t.Helper()
		d, err := Open(dir)
		if err != nil {
			t.Fatalf("%s: the old dump does not open: %v", when, err)
		}
		if got := d.Inventory().GetGocrVersion(); got != "test" {
			t.Fatalf("%s: the inventory is from gocr %q, want the old dump's", when, got)
		}
		b, err := os.ReadFile(filepath.Join(dir, taskName(testPid)))
		if err != nil || !bytes.Equal(b, oldTask) {
			t.Fatalf("%s: the old task image changed (%v)", when, err)
		}
	}

	// Refused: nothing changes, nothing is left beside it.
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteInventory(&gocrpb.Inventory{RootPid: 1, Pids: []int32{2}}); err == nil {
		t.Fatal("an invalid inventory was written")
	}
	checkOld("after a refused inventory")
	if err := d.Abort(); err != nil {
		t.Fatal(err)
	}
	checkOld("after Abort")
	if diff := cmp.Diff([]string{"ckpt"}, entries(t, parent)); diff != "" {
		t.Errorf("beside the image directory after Abort (-want +got):\n%s", diff)
	}

	// Killed halfway: only a temporary directory a user can recognize
	// is left, and the next dump is not bothered by it.
	crashed, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	crashed.Close()
	checkOld("after a dump that stopped halfway")
	left := entries(t, parent)
	if len(left) != 2 || !strings.HasPrefix(left[0], ".ckpt.gocr-tmp-") || left[1] != "ckpt" {
		t.Errorf("beside the image directory after a dump stopped halfway: %q, want ckpt and .ckpt.gocr-tmp-*", left)
	}

	// Complete: the new dump is there, none of the old one, and the
	// directory is private.
	d, err = Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	checkOld("before the new inventory")
	inv := &gocrpb.Inventory{GocrVersion: "new", RootPid: testPid, Pids: []int32{testPid}}
	if err := d.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	if err := d.Leftover(); err != nil {
		t.Errorf("replacing the old dump left: %v", err)
	}
	if err := d.WriteStats([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{inventoryName, StatsName, taskName(testPid)}, entries(t, dir)); diff != "" {
		t.Errorf("the new dump's files (-want +got):\n%s", diff)
	}
	nd, err := Open(dir)
	if err != nil || nd.Inventory().GetGocrVersion() != "new" {
		t.Fatalf("after the new dump, Open: %v, inventory %v", err, nd.Inventory())
	}
	if left := entries(t, parent); len(left) != 2 || left[1] != "ckpt" || left[0] != crashed.w.tmpName {
		t.Errorf("beside the image directory after the new dump: %q, want ckpt and only the crashed dump's directory", left)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the new image directory has mode %v (%v), want 0700", st.Mode(), err)
	}
}

func TestAbortRemovesCreatedFiles(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "dump")
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	// A writer left open by a failed dump.
	if _, err := d.CreatePages(testPid, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Abort(); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, parent); len(names) > 0 {
		t.Errorf("Abort of a dump into a new directory left %q", names)
	}
	if _, err := d.CreatePages(testPid, 1); err == nil {
		t.Errorf("CreatePages after Abort succeeded")
	}
}

// TestImagesCreatedFresh: every image is a new file, never one that was
// there: writing one twice fails rather than truncating it.
func TestImagesCreatedFresh(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second task image of one pid: %v, want it refused as existing", err)
	}
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
	if err := d.SealData(); err != nil {
		t.Fatal(err)
	}
	img, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	if img.Size != 4096 {
		t.Errorf("data size = %d, want 4096", img.Size)
	}
}

// TestOpenReadsOneDump: a dump opened for restore is read from the
// directory that was opened, so a new dump taking its place meanwhile is
// never mixed in: the old images are read, or found gone.
func TestOpenReadsOneDump(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	writeSampleDump(t, dir)
	old, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.ReadTask(testPid); err != nil {
		t.Fatal(err)
	}

	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	task := sampleTask()
	task.Comm = "new"
	if err := d.WriteTask(task); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteInventory(&gocrpb.Inventory{RootPid: testPid, Pids: []int32{testPid}}); err != nil {
		t.Fatal(err)
	}

	got, err := old.ReadTask(testPid)
	if err == nil && got.GetComm() == "new" {
		t.Fatalf("the dump opened before reads the new dump's task")
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading a replaced dump: %v, want its image gone", err)
	}
}
