//go:build linux

package restorer

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/images"
)

// chain is the line of dumps an incremental dump takes its unchanged
// pages from (gocr dump --prev; PageRange.from_parent): its parent, the
// parent's parent, and so on up to a full dump. Every link is opened and
// its dump ID checked against the one its child names before any process
// is created, and each page image read from it is checked as the dump's
// own are (images.OpenPages).
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

// pageSpan is [start, end) in bytes.
type pageSpan struct{ start, end uint64 }

// resolve finds where each range p takes from the parent is: in which
// dump of the chain, which of its page images and where in it; those
// images become page files of p, read by the stream threads p has.
func (c *chain) resolve(p *plan, pid int, src *files.Sources) error {
	if len(p.inherit) == 0 {
		return nil
	}
	var want []pageSpan
	for _, r := range p.inherit {
		want = append(want, pageSpan{r.Vaddr, r.Vaddr + r.NrPages*pageSize})
	}
	return c.fill(p, 0, pid, mergePageSpans(want), src)
}

// fill finds want in link i of the chain, and what link i takes from its
// own parent further up.
func (c *chain) fill(p *plan, i, pid int, want []pageSpan, src *files.Sources) error {
	if len(want) == 0 {
		return nil
	}
	if c == nil || i >= len(c.links) {
		return fmt.Errorf("pages %#x-%#x (and %d more ranges) are taken from a parent dump, and none holds them", want[0].start, want[0].end, len(want)-1)
	}
	link := c.links[i]
	ranges, err := link.ReadPagemap(pid)
	if err != nil {
		return fmt.Errorf("parent dump %s: %w", link.Path, err)
	}
	type dataRange struct {
		pageSpan
		off    uint64 // of its data, from the start of the image's data
		stream uint32
	}
	var data []dataRange
	var up []pageSpan // what link i takes from its own parent
	var offs [images.MaxPageStreams]uint64
	for _, r := range ranges {
		s := pageSpan{r.Vaddr, r.Vaddr + r.NrPages*pageSize}
		if r.FromParent {
			up = append(up, s)
			continue
		}
		data = append(data, dataRange{s, offs[r.Stream], r.Stream})
		offs[r.Stream] += r.NrPages * pageSize
	}
	slices.SortFunc(data, func(a, b dataRange) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
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
		img, err := link.OpenPages(pid, int(stream))
		if err != nil {
			return pageFile{}, fmt.Errorf("parent dump %s: %w", link.Path, err)
		}
		if uint64(img.Size) != offs[stream] {
			img.Close()
			return pageFile{}, fmt.Errorf("parent dump %s: page map lists %d pages in stream %d of pid %d, its page image holds %d bytes", link.Path, offs[stream]/pageSize, stream, pid, img.Size)
		}
		pf := pageFile{idx: uint32(len(p.pageFiles)), base: uint64(img.Off)}
		p.pageFiles = append(p.pageFiles, src.Add(img.File))
		files[stream] = pf
		return pf, nil
	}
	var rest []pageSpan
	j := 0
	for _, w := range want {
		for j < len(data) && data[j].end <= w.start {
			j++
		}
		at, k := w.start, j
		for at < w.end {
			if k < len(data) && data[k].end <= at {
				k++
				continue
			}
			if k < len(data) && data[k].start <= at {
				d := data[k]
				e := min(d.end, w.end)
				pf, err := fileOf(d.stream)
				if err != nil {
					return err
				}
				p.pages = append(p.pages, rstPages{Vaddr: at, NrPages: (e - at) / pageSize,
					FileOff: pf.base + d.off + (at - d.start),
					Stream:  d.stream % p.args.NrPageStreams, File: pf.idx})
				at = e
				continue
			}
			next := w.end
			if k < len(data) {
				next = min(next, data[k].start)
			}
			rest = append(rest, pageSpan{at, next})
			at = next
		}
	}
	// What link i does not hold must be what it takes from its parent.
	up = mergePageSpans(up)
	for _, r := range rest {
		if !coveredBy(r, up) {
			return fmt.Errorf("pages %#x-%#x are taken from parent dump %s, which does not hold them", r.start, r.end, link.Path)
		}
	}
	return c.fill(p, i+1, pid, rest, src)
}

// mergePageSpans sorts spans and joins those that touch or overlap.
func mergePageSpans(s []pageSpan) []pageSpan {
	slices.SortFunc(s, func(a, b pageSpan) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	var out []pageSpan
	for _, x := range s {
		if k := len(out) - 1; k >= 0 && x.start <= out[k].end {
			out[k].end = max(out[k].end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

// coveredBy says whether s lies inside one span of set (sorted, merged).
func coveredBy(s pageSpan, set []pageSpan) bool {
	i, _ := slices.BinarySearchFunc(set, s.start, func(x pageSpan, a uint64) int {
		if x.end <= a {
			return -1
		}
		if x.start > a {
			return 1
		}
		return 0
	})
	return i < len(set) && set[i].start <= s.start && s.end <= set[i].end
}
