//go:build linux

package restorer

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/spans"
)

// chain is the line of dumps an incremental dump takes its unchanged
// pages from (gocr dump --prev; PageRange.from_parent): its parent, the
// parent's parent, and so on up to a full dump. Every link is opened and
// its dump ID checked against the one its child names before any process
// is created, and each page image read from it is checked as the dump's
// own are: the chunks the restorer reads whole as it reads them in, the
// others it reads from before anything is created (pagesums.go).
type chain struct {
	links []*images.Dir // parent first
}

// maxChain bounds a chain, so that a loop of directories naming each
// other ends in an error.
const maxChain = 4096

// openChain opens the dumps dir takes pages from, if any.
func openChain(dir *images.Dir) (_ *chain, err error) {
	c := &chain{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	cur := dir
	for {
		inv := cur.Inventory()
		if len(inv.GetParentDumpId()) == 0 {
			return c, nil
		}
		if len(c.links) >= maxChain {
			return nil, fmt.Errorf("%s: a chain of more than %d incremental dumps", dir.Path, maxChain)
		}
		ref := inv.GetParentDir()
		parent, err := cur.OpenParent(ref)
		if err != nil {
			return nil, fmt.Errorf("%s takes unchanged pages from the dump in %s: %w", cur.Path, ref, err)
		}
		if got := parent.Inventory().GetDumpId(); !bytes.Equal(got, inv.GetParentDumpId()) {
			parent.Close()
			return nil, fmt.Errorf("%s takes unchanged pages from dump %v, but %s holds dump %v (replaced since?)",
				cur.Path, images.DumpID(inv.GetParentDumpId()), ref, images.DumpID(got))
		}
		c.links = append(c.links, parent)
		cur = parent
	}
}

func (c *chain) close() {
	if c == nil {
		return
	}
	for _, d := range c.links {
		d.Close()
	}
	c.links = nil
}

// resolve finds where each range p takes from the parent is: in which
// dump of the chain, which of its page images and where in it; those
// images become page files of p, read by the stream threads p has.
func (c *chain) resolve(p *plan, pid int, src *files.Sources) error {
	if len(p.inherit) == 0 {
		return nil
	}
	var want []spans.Span
	for _, r := range p.inherit {
		want = append(want, spans.Span{Start: r.Vaddr, End: r.Vaddr + r.NrPages*pageSize})
	}
	return c.fill(p, 0, pid, spans.Merge(want), src)
}

// fill finds want in link i of the chain, and what link i takes from its
// own parent further up.
func (c *chain) fill(p *plan, i, pid int, want []spans.Span, src *files.Sources) error {
	if len(want) == 0 {
		return nil
	}
	if c == nil || i >= len(c.links) {
		return fmt.Errorf("pages %#x-%#x (and %d more ranges) are taken from a parent dump, and none holds them", want[0].Start, want[0].End, len(want)-1)
	}
	link := c.links[i]
	ranges, err := link.ReadPagemap(pid)
	if err != nil {
		return fmt.Errorf("parent dump %s: %w", link.Path, err)
	}
	type dataRange struct {
		spans.Span
		off    uint64 // of its data, from the start of the image's data
		stream uint32
	}
	var data []dataRange
	var up []spans.Span // what link i takes from its own parent
	var offs [images.MaxPageStreams]uint64
	for _, r := range ranges {
		s := spans.Span{Start: r.Vaddr, End: r.Vaddr + r.NrPages*pageSize}
		if r.FromParent {
			up = append(up, s)
			continue
		}
		data = append(data, dataRange{s, offs[r.Stream], r.Stream})
		offs[r.Stream] += r.NrPages * pageSize
	}
	slices.SortFunc(data, func(a, b dataRange) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	// A page image's data starts at its Off in the file: PagesDataOffset
	// in an image, further in a context read in place.
	type pageFile struct {
		idx  uint32 // in p.pageFiles
		base uint64
	}
	files := map[uint32]pageFile{} // by stream
	fileOf := func(stream uint32) (pageFile, error) {
		if pf, ok := files[stream]; ok {
			return pf, nil
		}
		img, sums, err := openPages(link, pid, int(stream))
		if err != nil {
			return pageFile{}, fmt.Errorf("parent dump %s: %w", link.Path, err)
		}
		if uint64(img.Size) != offs[stream] {
			img.Close()
			return pageFile{}, fmt.Errorf("parent dump %s: page map lists %d pages in stream %d of pid %d, its page image holds %d bytes", link.Path, offs[stream]/pageSize, stream, pid, img.Size)
		}
		pf := pageFile{idx: uint32(len(p.pageFiles)), base: uint64(img.Off)}
		p.pageFiles = append(p.pageFiles, src.Add(img.File))
		p.unverified = append(p.unverified, unverifiedPages{file: pf.idx, dir: link, img: img, sums: sums,
			what: "parent dump " + link.Path})
		files[stream] = pf
		return pf, nil
	}
	var rest []spans.Span
	j := 0
	for _, w := range want {
		for j < len(data) && data[j].End <= w.Start {
			j++
		}
		at, k := w.Start, j
		for at < w.End {
			if k < len(data) && data[k].End <= at {
				k++
				continue
			}
			if k < len(data) && data[k].Start <= at {
				d := data[k]
				e := min(d.End, w.End)
				pf, err := fileOf(d.stream)
				if err != nil {
					return err
				}
				p.pages = append(p.pages, rstPages{Vaddr: at, NrPages: (e - at) / pageSize,
					FileOff: pf.base + d.off + (at - d.Start),
					Stream:  d.stream % p.args.NrPageStreams, File: pf.idx})
				at = e
				continue
			}
			next := w.End
			if k < len(data) {
				next = min(next, data[k].Start)
			}
			rest = append(rest, spans.Span{Start: at, End: next})
			at = next
		}
	}
	// What link i does not hold must be what it takes from its parent.
	up = spans.Merge(up)
	for _, r := range rest {
		if !spans.Covered(r, up) {
			return fmt.Errorf("pages %#x-%#x are taken from parent dump %s, which does not hold them", r.Start, r.End, link.Path)
		}
	}
	return c.fill(p, i+1, pid, rest, src)
}
