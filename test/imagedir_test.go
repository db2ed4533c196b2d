//go:build linux

package test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// Image directories for the tests that damage or change them: a dumped
// counter, copies of a directory or a file, and a dump rewritten through
// the images package.

// dumpedCounter dumps a counter and returns its image dir and target,
// with the original dead and reaped.
func dumpedCounter(t *testing.T) (string, *target) {
	t.Helper()
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	return dir, tg
}

// dumpedCounterCopy dumps a counter run from its own copy of the binary and
// returns the image dir, the target (dead and reaped) and the copy's path.
func dumpedCounterCopy(t *testing.T) (string, *target, string) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "counter-copy")
	copyFile(t, targets["counter"][0], exe, 0o755)
	tg := startTargetOpts(t, "counter", startOpts{binary: exe})
	waitCounter(t, tg, 20)
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", tg.pid)); err != nil || got != exe {
		t.Fatalf("target runs %q (%v), want the copy %s", got, err, exe)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	return dir, tg, exe
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
	if err := out.Close(); err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("read image dir: %v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			t.Fatalf("image dir %s holds non-regular %s", src, e.Name())
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), 0o644)
	}
	return dst
}

// imageFile returns the path of name in an image dir, failing with the
// directory's listing if the layout is not what the test expects.
func imageFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("image file %s missing (%v); the image dir holds %q", name, err, names)
	}
	return p
}

// listDir returns every path under dir, relative to it.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return names
}

// rewriteDump writes a new, complete image directory holding the dump in
// src with its task image passed through edit, by the images package's own
// writers: every framing and checksum is valid, only the content differs.
func rewriteDump(t *testing.T, src string, edit func(*gocrpb.Task)) string {
	t.Helper()
	return rewriteDumpFiles(t, src, edit, func(*gocrpb.Files) {})
}

// rewriteDumpFiles is rewriteDump that also edits the files image, and
// copies the saved file images the mm and files images name.
func rewriteDumpFiles(t *testing.T, src string, edit func(*gocrpb.Task), editFiles func(*gocrpb.Files)) string {
	t.Helper()
	return rewriteDumpAll(t, src, edit, editFiles, func(*gocrpb.Inventory) {})
}

// rewriteInventory is rewriteDump that edits the inventory alone.
func rewriteInventory(t *testing.T, src string, edit func(*gocrpb.Inventory)) string {
	t.Helper()
	return rewriteDumpAll(t, src, func(*gocrpb.Task) {}, func(*gocrpb.Files) {}, edit)
}

func rewriteDumpAll(t *testing.T, src string, edit func(*gocrpb.Task), editFiles func(*gocrpb.Files), editInv func(*gocrpb.Inventory)) string {
	t.Helper()
	in, err := images.Open(src)
	if err != nil {
		t.Fatalf("open %s: %v", src, err)
	}
	inv := in.Inventory()
	if len(inv.Pids) != 1 {
		t.Fatalf("dump of %d processes, this test rewrites one", len(inv.Pids))
	}
	pid := int(inv.RootPid)
	task, err := in.ReadTask(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Threads) == 0 {
		t.Fatalf("task image of pid %d has no threads", pid)
	}
	mm, err := in.ReadMm(pid)
	if err != nil {
		t.Fatal(err)
	}
	files, err := in.ReadFiles(pid)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := in.ReadPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	edit(task)
	editFiles(files)

	dst := filepath.Join(t.TempDir(), "images")
	out, err := images.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.WriteTask(task); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteMm(mm); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteFiles(files); err != nil {
		t.Fatal(err)
	}
	pm, err := out.CreatePagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if err := pm.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	nstreams := 1
	for _, r := range ranges {
		nstreams = max(nstreams, int(r.Stream)+1)
	}
	for s := 0; s < nstreams; s++ {
		pin, err := in.OpenPages(pid, s)
		if err != nil {
			t.Fatal(err)
		}
		defer pin.Close()
		size := pin.Size
		pout, err := out.CreatePages(pid, s)
		if err != nil {
			t.Fatal(err)
		}
		defer pout.Close()
		// The data alone: its checksums follow it in the image, and
		// the new image gets its own.
		n, err := io.Copy(pout, io.NewSectionReader(pin, pin.Off, size))
		if err != nil {
			t.Fatalf("copy page data: %v", err)
		}
		if n != size {
			t.Fatalf("copied %d bytes of page data, the image holds %d", n, size)
		}
		if err := images.FinishPages(pout, size); err != nil {
			t.Fatal(err)
		}
	}
	var saved []uint64
	for _, sf := range mm.SavedFiles {
		saved = append(saved, sf.Id)
	}
	for _, g := range files.GhostFiles {
		saved = append(saved, g.Id)
	}
	for _, id := range saved {
		fin, err := in.OpenSavedFile(id)
		if err != nil {
			t.Fatal(err)
		}
		defer fin.Close()
		size := fin.Size
		fout, err := out.CreateSavedFile(id)
		if err != nil {
			t.Fatal(err)
		}
		defer fout.Close()
		if _, err := io.Copy(io.NewOffsetWriter(fout, images.PagesDataOffset), io.NewSectionReader(fin, fin.Off, size)); err != nil {
			t.Fatalf("copy saved file %d: %v", id, err)
		}
		if err := images.FinishPages(fout, size); err != nil {
			t.Fatal(err)
		}
	}
	editInv(inv)
	if err := out.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	return dst
}
