//go:build linux

package restorer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

const chainPid = 4242

// writeChainDump writes a dump of one process holding only a page map
// and its page images (ranges[i] in stream streams[i], data ranges'
// bytes all 0), with parent as its parent dump if not nil.
func writeChainDump(t *testing.T, dir string, ranges []*gocrpb.PageRange, parent *images.Dir) *images.Dir {
	t.Helper()
	d, err := images.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := d.CreatePagemap(chainPid)
	if err != nil {
		t.Fatal(err)
	}
	var sizes [images.MaxPageStreams]int64
	nstreams := 1
	for _, r := range ranges {
		if err := pw.Add(r); err != nil {
			t.Fatal(err)
		}
		if !r.FromParent {
			sizes[r.Stream] += int64(r.NrPages) * pageSize
			nstreams = max(nstreams, int(r.Stream)+1)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < nstreams; s++ {
		f, err := d.CreatePages(chainPid, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, sizes[s])); err != nil {
			t.Fatal(err)
		}
		if err := images.FinishPages(f, sizes[s]); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	inv := &gocrpb.Inventory{RootPid: chainPid, Pids: []int32{chainPid}, PageSize: pageSize}
	if parent != nil {
		inv.ParentDumpId = parent.Inventory().GetDumpId()
		inv.ParentDir = filepath.Join("..", filepath.Base(parent.Path))
	}
	if err := d.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	d.Close()
	o, err := images.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// TestChainResolve: a range taken from the parent is found where it is:
// in the parent's data (which of its streams, at what offset), or in the
// grandparent's for what the parent took from there.
func TestChainResolve(t *testing.T) {
	base := t.TempDir()
	g0 := writeChainDump(t, filepath.Join(base, "g0"), []*gocrpb.PageRange{
		{Vaddr: 0x10000, NrPages: 4, Stream: 0},
		{Vaddr: 0x20000, NrPages: 4, Stream: 1},
	}, nil)
	g1 := writeChainDump(t, filepath.Join(base, "g1"), []*gocrpb.PageRange{
		{Vaddr: 0x10000, NrPages: 2, Stream: 0},
		{Vaddr: 0x12000, NrPages: 2, FromParent: true},
		{Vaddr: 0x20000, NrPages: 4, FromParent: true},
	}, g0)
	g2 := writeChainDump(t, filepath.Join(base, "g2"), []*gocrpb.PageRange{
		{Vaddr: 0x11000, NrPages: 1, Stream: 0},
		{Vaddr: 0x10000, NrPages: 1, FromParent: true},
		{Vaddr: 0x12000, NrPages: 2, FromParent: true},
		{Vaddr: 0x21000, NrPages: 2, FromParent: true},
	}, g1)
	c, err := openChain(g2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if len(c.links) != 2 {
		t.Fatalf("chain of %d links, want 2", len(c.links))
	}
	ranges, err := g2.ReadPagemap(chainPid)
	if err != nil {
		t.Fatal(err)
	}
	p := &plan{}
	p.args.NrPageStreams = 1
	for _, r := range ranges {
		if r.FromParent {
			p.inherit = append(p.inherit, r)
		}
	}
	p.pageFiles = []int32{100} // g2's own stream
	src := files.NewSources(g2, rstFirstSourceFd, [3]*os.File{})
	defer src.Close()
	if err := c.resolve(p, chainPid, src); err != nil {
		t.Fatal(err)
	}
	// g1's stream 0 becomes file 1, g0's stream 0 file 2, its stream 1
	// file 3, in the order they are first needed.
	off := uint64(images.PagesDataOffset)
	type piece struct {
		Vaddr, NrPages, FileOff uint64
		File                    uint32
	}
	var got []piece
	for _, r := range p.pages {
		got = append(got, piece{r.Vaddr, r.NrPages, r.FileOff, r.File})
	}
	wantPieces := []piece{
		{0x10000, 1, off, 1},              // g1's data, its stream 0
		{0x12000, 2, off + 2*pageSize, 2}, // g0's stream 0, pages 2-3
		{0x21000, 2, off + 1*pageSize, 3}, // g0's stream 1, pages 1-2
	}
	if d := cmp.Diff(wantPieces, got); d != "" {
		t.Errorf("resolved pages (-want +got):\n%s", d)
	}
}

// TestChainRefuses: a parent replaced since (another dump ID), and a
// range no dump of the chain holds, fail with an error naming them.
func TestChainRefuses(t *testing.T) {
	base := t.TempDir()
	g0 := writeChainDump(t, filepath.Join(base, "g0"), []*gocrpb.PageRange{{Vaddr: 0x10000, NrPages: 1}}, nil)
	g1 := writeChainDump(t, filepath.Join(base, "g1"), []*gocrpb.PageRange{
		{Vaddr: 0x10000, NrPages: 2, FromParent: true},
	}, g0)
	c, err := openChain(g1)
	if err != nil {
		t.Fatal(err)
	}
	p := &plan{}
	p.args.NrPageStreams = 1
	ranges, _ := g1.ReadPagemap(chainPid)
	p.inherit = ranges
	src := files.NewSources(g1, rstFirstSourceFd, [3]*os.File{})
	defer src.Close()
	if err := c.resolve(p, chainPid, src); err == nil || !strings.Contains(err.Error(), "0x11000") {
		t.Errorf("a page no dump holds: %v, want an error naming 0x11000", err)
	}
	c.close()

	// g0 replaced by another dump.
	os.RemoveAll(g0.Path)
	writeChainDump(t, g0.Path, []*gocrpb.PageRange{{Vaddr: 0x10000, NrPages: 1}}, nil)
	if _, err := openChain(g1); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("a replaced parent: %v, want an error saying so", err)
	}
}
