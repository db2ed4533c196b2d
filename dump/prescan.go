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
// tracked mapping walks every page table of it (about 20 ms per GiB
// written, 9 ms per GiB little written;
// ../shared/notes/incremental-without-soft-dirty.md), so, while the job
// still runs, each tracked mapping is scanned once before the freeze:
// the pages written since the parent dump (set A), protected again by
// the same walk. The scan while frozen then finds only what was written
// in between (set B), and the pages to write are A ∪ B, their contents
// taken at the freeze (the snapshot, or the frozen process).
//
// A is the written pages of one address range as the mapping stood at
// the pre-scan. It counts for a mapping only where the freeze finds the
// same range, still registered with this tracker (ownMappings); a mapping
// at the freeze that overlaps a pre-scanned range in any other way (split,
// grown, merged, moved into it: a move drops the registration, so that
// one is written whole anyway) is written whole, since the pre-scan may
// have protected pages of it whose writes only A records. A pre-scan that
// failed, possibly after protecting part of its range, leaves its range
// written whole the same way. A mapping the pre-scan did not touch is
// scanned only while frozen, as before.
//
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
// freeze: nil, whole=false where the pre-scan touched none of it; whole
// where what it found cannot be told apart from the rest (see above).
func (tp *trackedProc) preWritten(v *gocrpb.Vma) (written []spans.Span, whole bool) {
	for _, ps := range tp.pre {
		if ps.end <= v.Start || ps.start >= v.End {
			continue
		}
		if ps.start != v.Start || ps.end != v.End || ps.failed {
			return nil, true
		}
		written = ps.written
	}
	return written, false
}
