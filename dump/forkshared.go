//go:build linux

package dump

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/proc"
)

// Pages a parent and its child still share copy on write since a fork
// (fork(2): the child's private mappings get the parent's pages, each
// copied only when one of them writes it; mm/memory.c copy_page_range)
// are dumped once, by the parent: the child's mapping records them
// (Vma.fork_shared) and its page images leave them out. A restore maps
// the parent's before it forks the child, so they are shared again
// rather than one copy per process (restorer/stage.go).
//
// Which pages: /proc/PID/pagemap gives each present page's frame number
// (PFN, to CAP_SYS_ADMIN only: others read 0, and then nothing is
// shared; Documentation/admin-guide/mm/pagemap.rst). A page of the
// child's mapping that is at the same address in the parent's mapping
// of the same range and flags, present in both with the same frame, is
// one page both map. An anonymous page two processes map is never
// written in place: a write copies it first (mm/memory.c do_wp_page), so
// its contents are the same for both for as long as both map it. The
// frames are read while everything is frozen, before any process is
// captured (findForkShared), and again once every process is captured,
// still frozen (forkShared.check): a page whose frame changed in either
// process meanwhile (gocr's own signal frame below a stack pointer, a
// page the kernel migrated) is dumped by the child after all. Merged
// pages (KSM, VmFlags "mg") are left alone: KSM may make two pages with
// the same contents one at any time, which says nothing of when.

// forkShared is what findForkShared found, to be checked again.
type forkShared struct {
	pairs []forkSharedPair
}

// forkSharedPair is a child's mapping whose pages are partly its parent's.
type forkSharedPair struct {
	child, parent *state
	vma           *gocrpb.Vma // the child's
	// pfns are the frames of the pages of vma.ForkShared, in order (8
	// bytes for every 4 KiB shared).
	pfns []uint64
}

// inheritable says whether a private anonymous mapping may share pages
// with a mapping of another process at restore: accounted (so mapped
// writable, as a restore maps it, mm/mmap.c accountable_mapping), not
// growing down, not left out or wiped at fork, not merged by KSM.
func inheritable(v *gocrpb.Vma) bool {
	if v.Kind != gocrpb.VmaKind_VMA_ANON_PRIVATE || !slices.Contains(v.VmFlags, "ac") {
		return false
	}
	for _, f := range []string{"gd", "dc", "wf", "nr", "mg"} {
		if slices.Contains(v.VmFlags, f) {
			return false
		}
	}
	return true
}

// inheritedVma is the parent's mapping the child's v came from at fork:
// the same range, name and flags.
func inheritedVma(parent *gocrpb.Mm, v *gocrpb.Vma) *gocrpb.Vma {
	i, ok := slices.BinarySearchFunc(parent.Vmas, v.Start, func(p *gocrpb.Vma, start uint64) int {
		switch {
		case p.Start < start:
			return -1
		case p.Start > start:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	p := parent.Vmas[i]
	if p.End != v.End || p.Name != v.Name || p.Prot != v.Prot || !slices.Equal(p.VmFlags, v.VmFlags) || !inheritable(p) {
		return nil
	}
	return p
}

// sharedFrame is the frame of a present page from a pagemap entry, or 0.
func sharedFrame(e uint64) uint64 {
	if e&proc.PagemapPresent == 0 || e&proc.PagemapSwapped != 0 || e&proc.PagemapFileOrShared != 0 {
		return 0
	}
	return e & proc.PagemapPFNMask
}

// findForkShared records, in each child's mappings, the pages it shares
// with its parent (Vma.fork_shared). Every process is frozen.
func findForkShared(states []*state) (*forkShared, error) {
	byPid := map[int32]*state{}
	for _, st := range states {
		if st.mm != nil {
			byPid[st.task.Pid] = st
		}
	}
	fs := &forkShared{}
	for _, c := range states {
		if p := byPid[c.task.Ppid]; c.mm != nil && p != nil {
			if err := fs.find(c, p); err != nil {
				return nil, fmt.Errorf("pages pid %d shares with its parent %d: %w", c.task.Pid, p.task.Pid, err)
			}
		}
	}
	return fs, nil
}

// find records the pages child c shares with its parent p.
func (fs *forkShared) find(c, p *state) error {
	var ppm, cpm *proc.Pagemap
	defer func() {
		if ppm != nil {
			ppm.Close()
		}
		if cpm != nil {
			cpm.Close()
		}
	}()
	var pbuf, cbuf []uint64
	for _, v := range c.mm.Vmas {
		if !inheritable(v) || inheritedVma(p.mm, v) == nil {
			continue
		}
		var err error
		if ppm == nil {
			if ppm, err = proc.OpenPagemap(int(p.task.Pid)); err != nil {
				return err
			}
		}
		if cpm == nil {
			if cpm, err = proc.OpenPagemap(int(c.task.Pid)); err != nil {
				return err
			}
		}
		pair := forkSharedPair{child: c, parent: p, vma: v}
		const chunk = 64 << 20
		for start := v.Start; start < v.End; start += chunk {
			end := min(start+chunk, v.End)
			if pbuf, err = ppm.Read(start, end, pbuf); err != nil {
				return err
			}
			if cbuf, err = cpm.Read(start, end, cbuf); err != nil {
				return err
			}
			for i, e := range cbuf {
				if f := sharedFrame(e); f != 0 && f == sharedFrame(pbuf[i]) {
					v.ForkShared = addPage(v.ForkShared, start+uint64(i)*pageSize)
					pair.pfns = append(pair.pfns, f)
				}
			}
		}
		if len(pair.pfns) > 0 {
			fs.pairs = append(fs.pairs, pair)
		}
	}
	return nil
}

// addPage adds the page at addr, above every page of spans, to them.
func addPage(spans []*gocrpb.PageSpan, addr uint64) []*gocrpb.PageSpan {
	if n := len(spans); n > 0 && spans[n-1].Vaddr+spans[n-1].NrPages*pageSize == addr {
		spans[n-1].NrPages++
		return spans
	}
	return append(spans, &gocrpb.PageSpan{Vaddr: addr, NrPages: 1})
}

// inForkShared says, for pagesToDump, whether the page at addr of v is
// its parent's; next is the index of the first span not yet passed
// (pages are asked for in address order).
func inForkShared(v *gocrpb.Vma, addr uint64, next *int) bool {
	for *next < len(v.ForkShared) {
		s := v.ForkShared[*next]
		if addr < s.Vaddr {
			return false
		}
		if addr < s.Vaddr+s.NrPages*pageSize {
			return true
		}
		*next++
	}
	return false
}

// check reads every recorded page's frame again in both processes, once
// every process is captured and before any runs again. A page either no
// longer maps as it did is taken out of the child's fork_shared; where
// the child's memory is already written (no snapshot will write it
// later), the page is added to its page images from /proc/PID/mem, the
// child still frozen. mems are the captures, by index in states.
func (fs *forkShared) check(states []*state, mems []*capturedMemory) (lostBytes int64, err error) {
	index := map[*state]int{}
	for i, st := range states {
		index[st] = i
	}
	var pbuf, cbuf []uint64
	lostFirst, _ := testhook.Int(testhook.ForkSharedLost)
	for _, pair := range fs.pairs {
		cpid, ppid := int(pair.child.task.Pid), int(pair.parent.task.Pid)
		var kept []*gocrpb.PageSpan
		var lost []run
		if err := func() error {
			ppm, err := proc.OpenPagemap(ppid)
			if err != nil {
				return err
			}
			defer ppm.Close()
			cpm, err := proc.OpenPagemap(cpid)
			if err != nil {
				return err
			}
			defer cpm.Close()
			k := 0 // in pair.pfns
			for _, s := range pair.vma.ForkShared {
				const chunk = 64 << 20
				end := s.Vaddr + s.NrPages*pageSize
				for start := s.Vaddr; start < end; start += chunk {
					stop := min(start+chunk, end)
					if pbuf, err = ppm.Read(start, stop, pbuf); err != nil {
						return err
					}
					if cbuf, err = cpm.Read(start, stop, cbuf); err != nil {
						return err
					}
					for i := range cbuf {
						addr, pfn := start+uint64(i)*pageSize, pair.pfns[k]
						if sharedFrame(pbuf[i]) == pfn && sharedFrame(cbuf[i]) == pfn && k >= lostFirst {
							kept = addPage(kept, addr)
						} else if n := len(lost); n > 0 && lost[n-1].addr+lost[n-1].npages*pageSize == addr {
							lost[n-1].npages++
						} else {
							lost = append(lost, run{addr: addr, npages: 1, readable: true})
						}
						k++
					}
				}
			}
			return nil
		}(); err != nil {
			return lostBytes, fmt.Errorf("pages shared with parent %d: %w", ppid, err)
		}
		if len(lost) == 0 {
			continue
		}
		pair.vma.ForkShared = kept
		for _, r := range lost {
			lostBytes += int64(r.npages * pageSize)
		}
		m := mems[index[pair.child]]
		if m == nil {
			return lostBytes, fmt.Errorf("pid %d: no memory captured", cpid)
		}
		if m.snap != nil {
			// Its snapshot writes and counts them (writeSnapshot reads
			// fork_shared).
			continue
		}
		for _, r := range lost {
			pair.vma.DumpedPages += r.npages
		}
		if err := m.addFromMem(cpid, lost); err != nil {
			return lostBytes, err
		}
	}
	return lostBytes, nil
}

// addFromMem appends runs to the capture's last stream, copied by gocr
// from /proc/PID/mem while the process is frozen.
func (c *capturedMemory) addFromMem(pid int, runs []run) error {
	c.countWritten()
	last := len(c.pages) - 1
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer mem.Close()
	off := c.written[last]
	for _, r := range runs {
		r.stream, r.off = last, off
		n := int64(r.npages * pageSize)
		w := io.NewOffsetWriter(c.pages[last], images.PagesDataOffset+r.off)
		if _, err := io.Copy(w, io.NewSectionReader(mem, int64(r.addr), n)); err != nil {
			return fmt.Errorf("copy pages no longer shared with the parent, at %#x: %w", r.addr, err)
		}
		c.runs = append(c.runs, r)
		off += n
	}
	c.countWritten()
	return nil
}

// bytes is how much memory the children's images leave to their parents'.
func (fs *forkShared) bytes() int64 {
	var n int64
	for _, pair := range fs.pairs {
		for _, s := range pair.vma.ForkShared {
			n += int64(s.NrPages * pageSize)
		}
	}
	return n
}
