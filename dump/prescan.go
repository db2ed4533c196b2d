//go:build linux

package dump

import (
	"context"
	"fmt"
	"os"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/spans"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/wptrack"
)

// The pre-scan (an incremental dump with LeaveRunning): scanning a
// tracked mapping walks every page table of it and protects again every
// page written (9 ms per GiB with 1 % written, 21 ms with all of it;
// ../shared/notes/incremental-without-soft-dirty.md), so, while the job
// still runs, each tracked mapping is scanned once before the freeze:
// the pages written since the parent dump (set A), protected again by
// the same walk. The scan while frozen then finds only what was written
// in between (set B), and the pages to write are A ∪ B, their contents
// taken at the freeze (the snapshot, or the frozen process).
//
// A is kept by address. A page at the freeze is taken from the parent
// only in a mapping registered with this tracker then (ownMappings), and
// a page's written state moves with it only within such a mapping: a
// mapping made since is registered by none, and one made cannot merge
// with a registered one (mm/vma.c is_mergeable_vma compares the
// userfaultfd contexts); a move drops the registration (mremap without
// UFFD_FEATURE_EVENT_REMAP, fs/userfaultfd.c mremap_userfaultfd_prep)
// and clears the moved pages' write-protect bits (mm/mremap.c
// move_ptes); an unmapped range leaves no marker behind
// (ZAP_FLAG_DROP_MARKER, mm/memory.c unmap_vmas). So a page written
// since the parent dump at an address of a registered mapping was
// either found by the pre-scan there (A) or written after it (B),
// whatever splits, grows or merges the mapping saw in between: a
// mapping that is the same at the freeze, part of one pre-scanned, or
// several joined, takes A of its own addresses. Where a pre-scan failed,
// possibly after protecting part of its range, every mapping at the
// freeze that overlaps that range is written whole. A mapping the
// pre-scan did not touch is scanned only while frozen, as before.

// The pre-scan runs after the trackers are taken from their holder
// (wptrack.Take forgets the dump they were valid since): a dump that
// fails or dies after it, having consumed A, leaves no tracker that
// claims to know the writes since any dump, and the next dump is full.
//
// Scanning a running process is exact: the kernel reports a page and
// protects it in one step under the page table lock (fs/proc/task_mmu.c
// pagemap_scan_pmd_entry); a write through a TLB entry not yet flushed
// lands in a page the scan has just reported, which A holds, and whose
// contents are taken at the freeze.

// preScanned is one range the pre-scan walked.
type preScanned struct {
	start, end uint64
	written    []spans.Span // sorted, disjoint
	failed     bool         // the scan failed, maybe having protected part of the range
}

// preScan scans, before the freeze, the tracked mappings of every
// process whose tracker is valid since the parent dump. maps are the
// mappings read before the freeze (preReadTree), or nil: then each
// process's smaps is read here. A mapping whose registration is not this
// tracker's (EBUSY: the job's own userfaultfd) is left alone: the dump
// refuses it at the freeze (ownMappings).
func (tk *tracking) preScan(ctx context.Context, maps preReadMaps) {
	if tk == nil || !tk.since || !tk.keep {
		return
	}
	for pid, tp := range tk.procs {
		if start, err := wptrack.StartTime(pid); err != nil || start != tp.proc.Start {
			continue
		}
		ms, ok := maps[pid]
		if !ok {
			var err error
			if ms, err = proc.ReadMaps(pid); err != nil {
				continue
			}
		}
		tp.preScan(ms)
	}
	testhook.Hold(ctx, testhook.HoldAfterPreScan)
}

// preScan scans the mappings of ms that show "uw" (registered for write
// tracking) and are private.
func (tp *trackedProc) preScan(ms []proc.Mapping) {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", tp.proc.Pid))
	if err != nil {
		return
	}
	defer pm.Close()
	for _, m := range ms {
		if m.Shared || !m.HasVmFlag("uw") {
			continue
		}
		// Registering again succeeds only for this tracker's own
		// registration, or for a mapping registered by none, which
		// then reads as written whole; it protects nothing.
		if err := tp.tr.Register(m.Start, m.End); err != nil {
			continue
		}
		ps := preScanned{start: m.Start, end: m.End}
		regions, err := wptrack.Scan(pm, m.Start, m.End)
		if err != nil {
			ps.failed = true
		}
		for _, r := range regions {
			ps.written = append(ps.written, spans.Span{Start: r.Start, End: r.End})
		}
		tp.pre = append(tp.pre, ps)
	}
}

// preWritten is what the pre-scan found written in v, a mapping at the
// freeze, or whole where a failed pre-scan may have protected pages of
// it (see above).
func (tp *trackedProc) preWritten(v *gocrpb.Vma) (written []spans.Span, whole bool) {
	for _, ps := range tp.pre {
		if ps.end <= v.Start || ps.start >= v.End {
			continue
		}
		if ps.failed {
			return nil, true
		}
		for _, w := range ps.written {
			if s := (spans.Span{Start: max(w.Start, v.Start), End: min(w.End, v.End)}); s.Start < s.End {
				written = append(written, s)
			}
		}
	}
	return written, false
}
