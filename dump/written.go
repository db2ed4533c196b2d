//go:build linux

package dump

import (
	"fmt"
	"os"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/spans"
	"github.com/gocr/gocr/wptrack"
)

// Which pages of an incremental dump are written and which are the
// parent's (incremental.go has the rules).

// scanWrites learns which pages of the process's tracked mappings were
// written since the parent dump (tp.written): what this scan finds,
// which protects them again, with what the pre-scan found (prescan.go).
// From here on a failure of the dump leaves no tracker valid since any
// dump (Take already forgot it). Precondition: the process is frozen.
func (tk *tracking) scanWrites(pid int, st *state) error {
	if tk == nil {
		return nil
	}
	tk.mu.Lock()
	tp := tk.procs[pid]
	tk.mu.Unlock()
	if tp == nil {
		return nil
	}
	if err := tk.ownMappings(pid, tp, st); err != nil || !tk.since {
		return err
	}
	tk.mu.Lock()
	tp = tk.procs[pid]
	tk.mu.Unlock()
	if tp == nil {
		return nil
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return err
	}
	defer pm.Close()
	written := map[int][]spans.Span{} // by VMA index
	for vi, v := range st.mm.Vmas {
		if !trackable(v) || !tp.uw[v.Start] {
			continue
		}
		regions, err := wptrack.Scan(pm, v.Start, v.End)
		if err != nil {
			// Some mappings may be protected again already: none
			// is taken from the parent, all are protected anew.
			clear(tp.scanned)
			tk.mu.Lock()
			tk.note(pid, err.Error())
			tk.mu.Unlock()
			return nil
		}
		tp.scanned[v.Start] = true
		var w []spans.Span
		for _, r := range regions {
			w = append(w, spans.Span{Start: r.Start, End: r.End})
		}
		if pre, whole := tp.preWritten(v); whole {
			w = []spans.Span{{Start: v.Start, End: v.End}}
		} else if len(pre) > 0 {
			w = spans.Merge(append(w, pre...))
		}
		written[vi] = w
	}
	tp.written = written
	return nil
}

// splitRuns divides pages a full dump would write (runs, from the
// pagemap of the process frozen or of its snapshot: the same instant)
// into those written now and those taken from the parent, for a process
// whose writes since the parent are known (scanWrites). It may be called
// more than once, for runs of different mappings.
func (tk *tracking) splitRuns(pid int, st *state, runs []run) (data, inherit []run, err error) {
	if tk == nil {
		return runs, nil, nil
	}
	tk.mu.Lock()
	tp := tk.procs[pid]
	tk.mu.Unlock()
	if tp == nil || tp.written == nil {
		return runs, nil, nil
	}
	for _, r := range runs {
		v := st.mm.Vmas[r.vma]
		// pagemap shows a write-protect marker (a PTE the tracker
		// protected without a page: fs/proc/task_mmu.c
		// pte_to_pagemap_entry gives PM_SWAP to every swap PTE) as a
		// page swapped out. In a file mapping a marker is left where a
		// protected page was dropped (a COW copy given up with
		// MADV_DONTNEED, a page-cache page reclaimed: mm/memory.c
		// zap_install_uffd_wp_if_needed) and reads the file now, not
		// the parent's page: such pages are written whole. In
		// anonymous memory a dropped page leaves none (the same
		// function); the scan puts markers only where no page table
		// was (fs/proc/task_mmu.c pagemap_scan_pte_hole), never where
		// the parent had a page, so there an unwritten swap entry the
		// parent lacks is a marker: an empty page, left out. A
		// snapshot has no markers: fork copies them only into a
		// mapping registered for write-protection
		// (include/linux/mm_inline.h copy_pte_marker), which no fork
		// child's is without UFFD_FEATURE_EVENT_FORK (fs/userfaultfd.c
		// dup_userfaultfd; measured:
		// ../shared/notes/incremental-without-soft-dirty.md).
		if !tp.scanned[v.Start] || (r.swapped && v.Kind == gocrpb.VmaKind_VMA_FILE_PRIVATE) {
			data = append(data, r)
			continue
		}
		has, err := tk.parentPages(pid, tp, st)
		if err != nil {
			return nil, nil, err
		}
		if has == nil {
			data = append(data, r)
			continue
		}
		end := r.addr + r.npages*pageSize
		// Written pages are data; of the rest, those the parent
		// holds are the parent's, any other is data.
		for _, piece := range spans.Cut(spans.Span{Start: r.addr, End: end}, tp.written[r.vma]) {
			if piece.In {
				data = appendRun(data, r, piece.Span)
				continue
			}
			for _, q := range spans.Cut(piece.Span, has) {
				switch {
				case q.In:
					inherit = appendRun(inherit, r, q.Span)
				case r.swapped && v.Kind == gocrpb.VmaKind_VMA_ANON_PRIVATE:
				default:
					data = appendRun(data, r, q.Span)
				}
			}
		}
	}
	var reused int64
	for _, r := range inherit {
		reused += int64(r.npages * pageSize)
	}
	tk.mu.Lock()
	tk.used = tk.used || len(inherit) > 0
	tk.reused += reused
	tk.mu.Unlock()
	return data, inherit, nil
}

// parentPages are the pages the parent dump lists for the process
// (merged spans), read once; nil where it lists none, the process then
// written whole.
func (tk *tracking) parentPages(pid int, tp *trackedProc, st *state) ([]spans.Span, error) {
	if tp.hasRead {
		return tp.has, nil
	}
	tp.hasRead = true
	parentRanges, err := tk.parent.ReadPagemap(st.imagePid)
	if err != nil {
		tk.mu.Lock()
		tk.note(pid, fmt.Sprintf("not in the parent dump: %v", err))
		tk.mu.Unlock()
		return nil, nil
	}
	var has []spans.Span
	for _, r := range parentRanges {
		has = append(has, spans.Span{Start: r.Vaddr, End: r.Vaddr + r.NrPages*pageSize})
	}
	tp.has = spans.Merge(has)
	return tp.has, nil
}
