//go:build linux

package dump

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

const pageSize = 4096

// run is a stretch of pages to dump, inside one VMA.
type run struct {
	addr, npages uint64
	readable     bool
	// swapped: the pages are not present but their PTEs hold swap
	// entries, which pagemap shows alike for a page swapped out and
	// for a userfaultfd write-protect marker (fs/proc/task_mmu.c
	// pte_to_pagemap_entry: PM_SWAP for every swap PTE); an
	// incremental dump never takes such pages of a file mapping from
	// its parent (incremental.go).
	swapped bool
	vma     int   // index in mm.Vmas: runs never cross a VMA boundary
	stream  int   // the page image it goes to
	off     int64 // its data's offset in that image, from PagesDataOffset
}

// pagesToDump lists, from /proc/PID/pagemap, the pages whose contents only
// the process has: for private mappings every page present or swapped that
// is not the file's own page cache page (PM_FILE clear, i.e. anonymous or
// copied on write); for shared anonymous mappings every present page.
// Shared file mappings keep their data in the file. Pages never touched
// are not present and are not written
// (Documentation/admin-guide/mm/pagemap.rst), nor are those the parent
// holds for the process (Vma.fork_shared, forkshared.go). With only set,
// only the mappings it accepts are read.
func pagesToDump(pid int, mm *gocrpb.Mm, only func(*gocrpb.Vma) bool) ([]run, error) {
	// Opened at the first mapping to read: a snapshot dump of private
	// memory alone reads none while the process is frozen.
	var pm *proc.Pagemap
	defer func() {
		if pm != nil {
			pm.Close()
		}
	}()
	var runs []run
	var buf []uint64
	var err error
	const chunk = 64 << 20 // bytes of address space per pagemap read
	for vi, v := range mm.Vmas {
		switch v.Kind {
		case gocrpb.VmaKind_VMA_ANON_PRIVATE, gocrpb.VmaKind_VMA_FILE_PRIVATE, gocrpb.VmaKind_VMA_ANON_SHARED:
		default:
			continue
		}
		if only != nil && !only(v) {
			continue
		}
		if pm == nil {
			if pm, err = proc.OpenPagemap(pid); err != nil {
				return nil, err
			}
		}
		readable := v.Prot&unix.PROT_READ != 0
		// Runs never cross a VMA boundary: restore fills each mapping
		// from its own ranges.
		first := len(runs)
		next := 0 // in v.ForkShared
		for start := v.Start; start < v.End; start += chunk {
			end := min(start+chunk, v.End)
			if buf, err = pm.Read(start, end, buf); err != nil {
				return nil, err
			}
			for i, e := range buf {
				var want bool
				switch v.Kind {
				case gocrpb.VmaKind_VMA_ANON_SHARED:
					want = e&(proc.PagemapPresent|proc.PagemapSwapped) != 0
				default:
					want = e&proc.PagemapSwapped != 0 ||
						(e&proc.PagemapPresent != 0 && e&proc.PagemapFileOrShared == 0)
				}
				addr := start + uint64(i)*pageSize
				if !want || inForkShared(v, addr, &next) {
					continue
				}
				swapped := e&proc.PagemapPresent == 0
				if n := len(runs); n > first && runs[n-1].addr+runs[n-1].npages*pageSize == addr &&
					runs[n-1].readable == readable && runs[n-1].swapped == swapped {
					runs[n-1].npages++
				} else {
					runs = append(runs, run{addr: addr, npages: 1, readable: readable, swapped: swapped, vma: vi})
				}
				v.DumpedPages++
			}
		}
	}
	return runs, nil
}

// pageOptions say how page data reaches the image.
type pageOptions struct {
	transfer string // "write" or "splice" (Options.PageTransfer)
	streams  int    // page streams per process; 0 chooses (streamsFor)
	cpus     int    // CPUs this process's capture may use
	snapshot bool   // private memory from a copy-on-write snapshot (snapshot.go)
	// leaveRunning: the processes run on after the dump, so what is
	// written while they are frozen is not checksummed then (sumFrozen).
	leaveRunning bool
	// subreapers: which dumped processes would adopt a snapshot
	// process (snapshot mode).
	subreapers *subreapers
	// tracking: write tracking for incremental dumps (incremental.go),
	// or nil.
	tracking *tracking
	// pidns: the job is in a PID namespace of its own (pidns.go).
	pidns bool
	// releaseAtCure, if set, lets the process run on right after its
	// cure, on the tracer thread in the same turn, once its capture is
	// complete: a dump that has nothing more to do while it is frozen.
	releaseAtCure func()
}

// maxStreams is the most page streams a process's memory is split over:
// what the parasite writes at once and the image format allows.
const maxStreams = min(parasite.MaxStreams, images.MaxPageStreams)

// minStreamBytes is the least memory worth a stream of its own: a helper
// thread and a file cost about 0.1 ms, copying 32 MiB about 10 ms.
const minStreamBytes = 32 << 20

// streamsFor says over how many page images (each written by its own
// thread in the target, so by its own core) a process's memory is split.
// Splice mode has one: gocr's single splice loop is its bound.
func streamsFor(bytes uint64, o pageOptions) int {
	if o.transfer != "write" {
		return 1
	}
	if o.streams > 0 {
		return min(o.streams, maxStreams)
	}
	return max(1, min(o.cpus, maxStreams, int(bytes/minStreamBytes)))
}

// assignStreams splits runs over n streams of about equal size, in
// address order, cutting a run where a stream is full, and gives each run
// its offset in its stream's page image. Streams fill in order, so the
// streams used are 0..k-1.
func assignStreams(runs []run, n int) []run {
	return assignStreamsAfter(runs, n, make([]int64, n))
}

// assignStreamsAfter is assignStreams into page images that already hold
// base[s] bytes of page data: the runs' data follows it. The page map
// lists each stream's ranges in the order of their data, so ranges
// written at different times need not be in address order
// (restorer/plan.go).
func assignStreamsAfter(runs []run, n int, base []int64) []run {
	var total uint64
	for _, r := range runs {
		total += r.npages
	}
	quota := (total + uint64(n) - 1) / uint64(n)
	out := make([]run, 0, len(runs)+n)
	offs := slices.Clone(base)
	stream, filled := 0, uint64(0)
	for _, r := range runs {
		for r.npages > 0 {
			if filled >= quota && stream < n-1 {
				stream, filled = stream+1, 0
			}
			k := r.npages
			if stream < n-1 {
				k = min(k, quota-filled)
			}
			piece := r
			piece.npages, piece.stream, piece.off = k, stream, offs[stream]
			out = append(out, piece)
			offs[stream] += int64(k * pageSize)
			filled += k
			r.addr += k * pageSize
			r.npages -= k
		}
	}
	return out
}

// capturedMemory is memory taken from a process whose image files are not
// yet finished: the page images hold the data, unsynced.
type capturedMemory struct {
	runs    []run
	pages   []*os.File // by stream
	written []int64    // page data bytes, by stream
	// snap, if set, still has the process's private memory to write
	// (writeSnapshot); mm is the process's, whose mappings it covers.
	snap *parasite.Snapshot
	mm   *gocrpb.Mm
	// dir is the dump's, which keeps the checksums the parasite takes
	// (dataSums).
	dir *images.Dir
	// sumFrozen: the parasite checksums what it writes while the process
	// is frozen. Not when the process runs on after the dump: its stall
	// would grow by the checksums (about 12 % of the copy), which the
	// seal takes instead once it runs.
	sumFrozen bool
	// flagsBefore: mm's flags were read before the freeze, and the
	// snapshot's smaps must confirm them (checkFlagsBefore).
	flagsBefore bool
	// numa is the NUMA policy check the snapshot's numa_maps answers
	// (collectAttrs).
	numa *numaCheck
	// frozenStream is the stream holding only what was written while
	// the process was frozen before a snapshot took the rest, or -1.
	frozenStream int
	// inherit are the pages an incremental dump takes from its parent
	// (incremental.go): listed in the page map, not written.
	inherit []run
	// split, in an incremental dump, divides the pages the snapshot
	// holds into those to write and those taken from the parent
	// (tracking.splitRuns).
	split func(runs []run) (data, inherit []run, err error)
}

// splitInherit keeps, of runs, the pages to write, and adds those taken
// from the parent to c.inherit.
func (c *capturedMemory) splitInherit(runs []run) ([]run, error) {
	if c.split == nil {
		return runs, nil
	}
	data, inherit, err := c.split(runs)
	if err != nil {
		return nil, err
	}
	c.inherit = append(c.inherit, inherit...)
	return data, nil
}

func (c *capturedMemory) total() int64 {
	var n int64
	for _, w := range c.written {
		n += w
	}
	return n
}

func (c *capturedMemory) close() {
	if c.snap != nil {
		c.snap.Kill()
		c.snap = nil
	}
	for _, f := range c.pages {
		f.Close()
	}
}

// captureMemory takes the process's memory into its page images. Readable
// memory is written by the parasite (pwritev from one thread per stream,
// or vmsplice -> pipe -> splice); memory the process cannot read itself
// (PROT_NONE, write-only) is read through /proc/PID/mem, which may
// (FOLL_FORCE, fs/proc/base.c mem_rw). When it returns the process is
// cured and nothing of it is needed any more: it may run again before the
// images are synced. With po.snapshot, only the memory a snapshot cannot
// cover is written here; the returned capture holds the snapshot of the
// rest, for writeSnapshot once the process runs again (snapshot.go).
func captureMemory(ctx context.Context, t *ptrace.Tracer, pid int, dir *images.Dir, st *state, stats *Stats, po pageOptions) (*capturedMemory, error) {
	if po.subreapers != nil {
		// Unknown, should this fail first: a descendant's snapshot
		// then counts it as a subreaper and is not taken.
		defer po.subreapers.set(pid, true)
	}
	t0 := time.Now()
	var only func(*gocrpb.Vma) bool
	if po.snapshot {
		only = notCoveredBySnapshot
	}
	// Which pages were written is known once the frozen process is
	// scanned (the scan protects them again); which of them hold data
	// at this instant, the snapshot's pagemap tells as well as the
	// process's, once the process runs again (writeSnapshot).
	runs, err := pagesToDump(pid, st.mm, only)
	var inherit []run
	if err == nil {
		err = po.tracking.scanWrites(pid, st)
	}
	if err == nil {
		runs, inherit, err = po.tracking.splitRuns(pid, st, runs)
	}
	stats.PagemapNs += time.Since(t0).Nanoseconds()
	if err != nil {
		return nil, err
	}
	var bytes uint64
	for _, r := range runs {
		bytes += r.npages * pageSize
	}
	c := &capturedMemory{mm: st.mm, dir: dir, sumFrozen: !po.leaveRunning, frozenStream: -1, inherit: inherit}
	if po.tracking != nil {
		c.split = func(runs []run) ([]run, []run, error) { return po.tracking.splitRuns(pid, st, runs) }
	}
	used := 1
	if po.snapshot {
		// The snapshot's pages are counted only once the process runs
		// again; its anonymous memory says how much to expect. What is
		// written now goes to a stream of its own, the last, so that
		// every stream's ranges are in address order (finish).
		used = streamsFor(bytes+anonBytes(pid), po)
		if len(runs) > 0 && po.streams == 0 {
			used = max(used, min(2, maxStreams))
		}
		c.runs = assignStreams(runs, 1)
		if used > 1 && len(runs) > 0 {
			c.frozenStream = used - 1
			for i := range c.runs {
				c.runs[i].stream = c.frozenStream
			}
		}
	} else {
		c.runs = assignStreams(runs, streamsFor(bytes, po))
	}
	for _, r := range c.runs {
		used = max(used, r.stream+1)
	}
	// The page images are made on another CPU while the process is
	// infected: nothing writes to them before pagesMade.
	made := make(chan error, 1)
	go func() {
		for i := 0; i < used; i++ {
			f, err := dir.CreatePages(st.imagePid, i)
			if err != nil {
				made <- err
				return
			}
			c.pages = append(c.pages, f)
		}
		made <- nil
	}()
	pagesMade := sync.OnceValue(func() error { return <-made })
	t1 := time.Now()
	p, err := parasite.Infect(t, pid, parasite.Options{VdsoStart: st.vdso, Threads: len(st.task.Threads),
		Userfaultfd: po.tracking.infectFlags(pid), LowestMapping: lowestMapping(st.mm)})
	if p != nil {
		st.carryInfectionSignals(pid, p.InfectionSignals)
	}
	if err != nil {
		pagesMade()
		c.close()
		return nil, err
	}
	testhook.PauseContext(ctx, testhook.PauseAfterInfect)
	var t2 time.Time
	derr := func() error {
		defer func() { stats.PagesNs += time.Since(t2).Nanoseconds() }()
		// Each step below is a command the parasite finishes before
		// the next; told to stop, gocr cures it between two.
		if err := stopped(ctx); err != nil {
			return err
		}
		ps, err := p.DumpState()
		if err != nil {
			return err
		}
		if err := checkLDT(ps.LDT); err != nil {
			return err
		}
		if po.subreapers != nil {
			po.subreapers.set(pid, ps.ChildSubreaper != 0)
		}
		if err := fillTaskFromParasite(st.task, ps); err != nil {
			return err
		}
		if err := timerValues(p, st.task); err != nil {
			return err
		}
		if po.pidns {
			if err := peerPidsInNamespace(p, st.files); err != nil {
				return err
			}
		}
		if err := parasiteAttrs(p, pid, st.task); err != nil {
			return err
		}
		var tids []int
		var xstates [][]byte
		for _, th := range st.task.Threads[1:] {
			tids = append(tids, int(th.Tid))
			xstates = append(xstates, th.Xsave)
		}
		states, err := p.ThreadStates(tids, xstates)
		if err != nil {
			return err
		}
		for i, th := range st.task.Threads[1:] {
			ts := states[i]
			// Credentials are per thread (man 7 capabilities), but
			// restored as the process's: the rest of them are
			// compared from /proc (collect).
			if ts.Securebits != ps.Securebits {
				return fmt.Errorf("thread %d has securebits %#x, its process %#x: threads with credentials of their own are not supported", th.Tid, ts.Securebits, ps.Securebits)
			}
			th.Sigaltstack = &gocrpb.SigAltStack{Sp: ts.AltstackSp, Flags: ts.AltstackFlags, Size: ts.AltstackSize}
			th.ClearChildTid = ts.TidAddress
			if err := threadAttrs(th, ts.Attrs); err != nil {
				return err
			}
		}
		t2 = time.Now()
		stats.InfectNs += t2.Sub(t1).Nanoseconds()
		if err := pagesMade(); err != nil {
			return err
		}
		if err := stopped(ctx); err != nil {
			return err
		}
		if err := c.write(p, pid, dir, po.transfer, 0); err != nil {
			return err
		}
		po.tracking.arm(p, pid, st)
		if po.snapshot {
			return c.snapshotOrRest(ctx, p, pid, dir, st, stats, po)
		}
		return nil
	}()
	t3 := time.Now()
	cerr := p.CureThen(func(cerr error) {
		if derr == nil && cerr == nil && len(p.Signals) == 0 && po.releaseAtCure != nil {
			po.releaseAtCure()
		}
	})
	stats.CureNs += time.Since(t3).Nanoseconds()
	if len(p.Signals) > 0 && derr == nil {
		derr = fmt.Errorf("signals %v arrived while the parasite ran", p.Signals)
	}
	if derr == nil {
		derr = cerr
	} else if cerr != nil {
		derr = fmt.Errorf("%w (cure also failed: %v)", derr, cerr)
	}
	if derr != nil {
		pagesMade()
		c.close()
		return nil, derr
	}
	stats.PageStreams = max(stats.PageStreams, len(c.pages))
	return c, nil
}

// carryInfectionSignals keeps signals the leader dequeued at the
// infection's injected calls as collect keeps those of its own injected
// calls: given back to the thread when the processes are let go
// (frozenProc.sigs), and recorded first among its pending ones.
func (st *state) carryInfectionSignals(pid int, sigs [][ptrace.SiginfoSize]byte) {
	if len(sigs) == 0 {
		return
	}
	st.frozen.sigs[pid] = append(st.frozen.sigs[pid], sigs...)
	var infos []*gocrpb.SigInfo
	for _, si := range sigs {
		infos = append(infos, sigInfo(si))
	}
	th := st.task.Threads[0]
	th.Pending = append(infos, th.Pending...)
}

// lowestMapping is the start of the lowest of mm's mappings, or 0 if it
// has none.
func lowestMapping(mm *gocrpb.Mm) uint64 {
	var lowest uint64
	for _, v := range mm.GetVmas() {
		if lowest == 0 || v.Start < lowest {
			lowest = v.Start
		}
	}
	return lowest
}

// finish records the page images' sizes and writes the page map; the
// images are checksummed and synced with the others (images.SealData).
func (c *capturedMemory) finish(pid int, dir *images.Dir) error {
	defer c.close()
	// A snapshot may hold fewer pages than its process's anonymous
	// memory promised: the streams it did not reach go, so that every
	// page image is one the page map names.
	used := 1
	for _, r := range c.runs {
		used = max(used, r.stream+1)
	}
	for len(c.pages) > used {
		n := len(c.pages) - 1
		if err := dir.Discard(c.pages[n]); err != nil {
			return err
		}
		c.pages, c.written = c.pages[:n], c.written[:n]
	}
	for i, f := range c.pages {
		if err := images.FinishPages(f, c.written[i]); err != nil {
			return err
		}
	}
	pmw, err := dir.CreatePagemap(pid)
	if err != nil {
		return err
	}
	for _, r := range inAddressOrder(c.runs) {
		if err := pmw.Add(&gocrpb.PageRange{Vaddr: r.addr, NrPages: r.npages, Stream: uint32(r.stream)}); err != nil {
			pmw.Close()
			return err
		}
	}
	for _, r := range c.inherit {
		if err := pmw.Add(&gocrpb.PageRange{Vaddr: r.addr, NrPages: r.npages, FromParent: true}); err != nil {
			pmw.Close()
			return err
		}
	}
	return pmw.Close()
}

// inAddressOrder lists the runs in address order, as the page map keeps
// them (docs/IMAGES.md), where that keeps every stream's runs in the
// order of their data, which is how a restore finds each one's offset
// (restorer/plan.go); otherwise as they are.
func inAddressOrder(runs []run) []run {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b run) int { return cmp.Compare(a.addr, b.addr) })
	end := map[int]int64{}
	for _, r := range sorted {
		if e, ok := end[r.stream]; ok && r.off < e {
			return runs
		}
		end[r.stream] = r.off + int64(r.npages*pageSize)
	}
	return sorted
}

// write puts the pages of every run from c.runs[from] on at its offset in
// its stream's page image.
func (c *capturedMemory) write(p *parasite.Parasite, pid int, dir *images.Dir, transfer string, from int) error {
	// With nothing to write, no file is passed: a snapshot dump of
	// private memory alone writes nothing while the process is frozen,
	// and each pass is a round trip with the frozen parasite. The
	// snapshot is passed the files it writes (writeSnapshot).
	if transfer == "write" && from < len(c.runs) {
		// Every file must reach the parasite before the streams are
		// fixed; a process near its fd limit takes fewer (the first
		// fits: the infection needed one more fd than it keeps), and
		// should even the first fail, the pipes carry the pages.
		for i, f := range c.pages {
			if _, err := p.PassFile(f); err != nil {
				if !errors.Is(err, parasite.ErrCannotPassFile) {
					return err
				}
				if i == 0 {
					transfer = "splice"
				}
				if err := c.restream(dir, max(i, 1)); err != nil {
					return err
				}
				break
			}
		}
	}
	c.countWritten()

	// Unreadable runs first, from gocr; then the readable ones in groups
	// that are contiguous in their image.
	var mem *os.File
	defer func() {
		if mem != nil {
			mem.Close()
		}
	}()
	type group struct {
		off   int64
		len   uint64
		spans []parasite.Span
		skip  []bool // by span: not c.summable, the parasite sums it not
		sum   bool   // some span is summable
	}
	groups := make([][]group, len(c.pages))
	for _, r := range c.runs[from:] {
		n := r.npages * pageSize
		if !r.readable {
			if mem == nil {
				var err error
				if mem, err = os.Open(fmt.Sprintf("/proc/%d/mem", pid)); err != nil {
					return err
				}
			}
			w := io.NewOffsetWriter(c.pages[r.stream], images.PagesDataOffset+r.off)
			if _, err := io.Copy(w, io.NewSectionReader(mem, int64(r.addr), int64(n))); err != nil {
				return fmt.Errorf("copy pages the process cannot read, at %#x: %w", r.addr, err)
			}
			continue
		}
		gs := groups[r.stream]
		sum := c.sumFrozen && c.summable(r)
		if k := len(gs) - 1; k >= 0 && gs[k].off+int64(gs[k].len) == r.off {
			gs[k].spans = append(gs[k].spans, parasite.Span{Addr: r.addr, Len: n})
			gs[k].skip = append(gs[k].skip, !sum)
			gs[k].len += n
			gs[k].sum = gs[k].sum || sum
		} else {
			gs = append(gs, group{off: r.off, len: n, spans: []parasite.Span{{Addr: r.addr, Len: n}}, skip: []bool{!sum}, sum: sum})
		}
		groups[r.stream] = gs
	}
	for {
		var streams []parasite.Stream
		for i, gs := range groups {
			if len(gs) == 0 {
				continue
			}
			st := parasite.Stream{File: c.pages[i], Off: images.PagesDataOffset + gs[0].off, Spans: gs[0].spans}
			if gs[0].sum {
				st.Sums, st.Skip = dataSums(dir, c.pages[i]), gs[0].skip
			}
			streams = append(streams, st)
			groups[i] = gs[1:]
		}
		if len(streams) == 0 {
			return nil
		}
		if transfer == "write" {
			if _, err := p.WriteStreams(streams); err != nil {
				return err
			}
			continue
		}
		for _, s := range streams {
			if _, err := s.File.Seek(s.Off, io.SeekStart); err != nil {
				return err
			}
			if _, err := p.DumpPages(s.Spans, s.File); err != nil {
				return err
			}
		}
	}
}

// summable says whether the parasite may checksum r's memory as it
// writes it (parasite.Sums): only private anonymous memory, which nothing
// outside the frozen process can take away; another process could
// truncate the file under a file or shared mapping meanwhile, and the
// parasite's own read would then fault (SIGBUS, man 2 mmap).
func (c *capturedMemory) summable(r run) bool {
	vmas := c.mm.GetVmas()
	return r.vma >= 0 && r.vma < len(vmas) && vmas[r.vma].GetKind() == gocrpb.VmaKind_VMA_ANON_PRIVATE
}

// dataSums has the checksums the parasite takes of what it writes to f
// recorded for the seal (images.Dir.AddDataSum).
func dataSums(dir *images.Dir, f *os.File) *parasite.Sums {
	return &parasite.Sums{From: images.PagesDataOffset, Chunk: images.DataChunkSize, Add: func(off, n int64, crc uint32) {
		dir.AddDataSum(f, off, n, crc)
	}}
}

// countWritten sets c.written from c.runs: each stream's page data.
func (c *capturedMemory) countWritten() {
	c.written = make([]int64, len(c.pages))
	for _, r := range c.runs {
		c.written[r.stream] += int64(r.npages * pageSize)
	}
}

// extend adds runs after those c holds, over every stream, and returns
// the index of the first.
func (c *capturedMemory) extend(runs []run) int {
	c.countWritten()
	from := len(c.runs)
	n := len(c.pages)
	if c.frozenStream == n-1 {
		n--
	}
	c.runs = append(c.runs, assignStreamsAfter(runs, n, c.written[:n])...)
	c.countWritten()
	return from
}

// restream splits the runs over n streams instead (n < the streams
// planned), discarding the page images no longer used. Nothing has been
// written yet.
func (c *capturedMemory) restream(dir *images.Dir, n int) error {
	merged := c.runs[:0:0]
	for _, r := range c.runs {
		if k := len(merged) - 1; k >= 0 && merged[k].addr+merged[k].npages*pageSize == r.addr &&
			merged[k].readable == r.readable && merged[k].vma == r.vma {
			merged[k].npages += r.npages
			continue
		}
		merged = append(merged, r)
	}
	c.runs = assignStreams(merged, n)
	c.frozenStream = -1
	for _, f := range c.pages[n:] {
		if err := dir.Discard(f); err != nil {
			return err
		}
	}
	c.pages = c.pages[:n]
	return nil
}

// fillTaskFromParasite takes what the parasite read of the process,
// refusing a dumpable mode the restorer cannot set: PR_GET_DUMPABLE gives
// 2 (SUID_DUMP_ROOT) to a process that changed its credentials or ran a
// set-id program while fs.suid_dumpable was 2 (man 5 proc_sys_fs), and
// PR_SET_DUMPABLE takes only 0 and 1 (kernel/sys.c).
func fillTaskFromParasite(task *gocrpb.Task, ps *parasite.State) error {
	if ps.Dumpable != 0 && ps.Dumpable != 1 {
		return fmt.Errorf("it is dumpable in mode %d (fs.suid_dumpable, PR_GET_DUMPABLE), which PR_SET_DUMPABLE cannot set again", ps.Dumpable)
	}
	for i, sa := range ps.SigActions {
		signo := uint32(i + 1)
		if signo == uint32(unix.SIGKILL) || signo == uint32(unix.SIGSTOP) {
			continue
		}
		task.Sigactions = append(task.Sigactions, &gocrpb.SigAction{
			Signo: signo, Handler: sa.Handler, Flags: sa.Flags, Restorer: sa.Restorer, Mask: sa.Mask,
		})
	}
	for i, it := range ps.Itimers {
		task.Itimers = append(task.Itimers, &gocrpb.Itimer{Which: uint32(i), IntervalUs: it.IntervalUsec, ValueUs: it.ValueUsec})
	}
	task.Flags = &gocrpb.ProcessFlags{
		Dumpable: ps.Dumpable == 1, NoNewPrivs: ps.NoNewPrivs != 0,
		ChildSubreaper: ps.ChildSubreaper != 0, PdeathSignal: ps.PdeathSig,
	}
	task.Creds.Securebits = uint32(ps.Securebits)
	th := task.Threads[0]
	th.Sigaltstack = &gocrpb.SigAltStack{Sp: ps.AltstackSp, Flags: ps.AltstackFlags, Size: ps.AltstackSize}
	th.ClearChildTid = ps.TidAddress
	return nil
}
