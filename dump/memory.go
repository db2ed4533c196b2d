//go:build linux

package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"gocr/images"
	"gocr/parasite"
	"gocr/proc"
	gocrpb "gocr/proto"
	"gocr/ptrace"
)

const pageSize = 4096

// run is a stretch of pages to dump, inside one VMA.
type run struct {
	addr, npages uint64
	readable     bool
}

// pagesToDump lists, from /proc/PID/pagemap, the pages whose contents only
// the process has: for private mappings every page present or swapped that
// is not the file's own page cache page (PM_FILE clear, i.e. anonymous or
// copied on write); for shared anonymous mappings every present page.
// Shared file mappings keep their data in the file. Pages never touched
// are not present and are not written
// (Documentation/admin-guide/mm/pagemap.rst).
func pagesToDump(pid int, mm *gocrpb.Mm) ([]run, error) {
	pm, err := proc.OpenPagemap(pid)
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	var runs []run
	var buf []uint64
	const chunk = 64 << 20 // bytes of address space per pagemap read
	for _, v := range mm.Vmas {
		switch v.Kind {
		case gocrpb.VmaKind_VMA_ANON_PRIVATE, gocrpb.VmaKind_VMA_FILE_PRIVATE, gocrpb.VmaKind_VMA_ANON_SHARED:
		default:
			continue
		}
		readable := v.Prot&unix.PROT_READ != 0
		// Runs never cross a VMA boundary: restore fills each mapping
		// from its own ranges.
		first := len(runs)
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
				if !want {
					continue
				}
				addr := start + uint64(i)*pageSize
				if n := len(runs); n > first && runs[n-1].addr+runs[n-1].npages*pageSize == addr && runs[n-1].readable == readable {
					runs[n-1].npages++
				} else {
					runs = append(runs, run{addr: addr, npages: 1, readable: readable})
				}
				v.DumpedPages++
			}
		}
	}
	return runs, nil
}

// capturedMemory is memory taken from a process whose image files are not
// yet finished: the page image holds the data, unsynced.
type capturedMemory struct {
	runs    []run
	pages   *os.File
	written int64
}

// captureMemory takes the process's memory into the page image. Readable
// memory goes through the parasite (vmsplice -> pipe -> splice -> file);
// memory the process cannot read itself (PROT_NONE, write-only) is read
// through /proc/PID/mem, which may (FOLL_FORCE, fs/proc/base.c mem_rw).
// When it returns the process is cured and nothing of it is needed any
// more: it may run again before the images are synced.
func captureMemory(t *ptrace.Tracer, pid int, dir *images.Dir, st *state, stats *Stats, transfer string) (*capturedMemory, error) {
	t0 := time.Now()
	runs, err := pagesToDump(pid, st.mm)
	stats.PagemapNs += time.Since(t0).Nanoseconds()
	if err != nil {
		return nil, err
	}
	pages, err := dir.CreatePages(pid)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	p, err := parasite.Infect(t, pid, parasite.Options{VdsoStart: st.vdso})
	if err != nil {
		pages.Close()
		return nil, err
	}
	// Test hook: hold the parasite in place, so a test can kill gocr
	// while it runs (test/refusal_test.go TestGocrKilledMidDump).
	if d, err := time.ParseDuration(os.Getenv("GOCR_TEST_PAUSE_AFTER_INFECT")); err == nil {
		time.Sleep(d)
	}
	var t2 time.Time
	written, derr := func() (int64, error) {
		defer func() { stats.PagesNs += time.Since(t2).Nanoseconds() }()
		ps, err := p.DumpState()
		if err != nil {
			return 0, err
		}
		fillTaskFromParasite(st.task, ps)
		for _, th := range st.task.Threads[1:] {
			ts, err := p.ThreadState(int(th.Tid))
			if err != nil {
				return 0, err
			}
			th.Sigaltstack = &gocrpb.SigAltStack{Sp: ts.AltstackSp, Flags: ts.AltstackFlags, Size: ts.AltstackSize}
			th.ClearChildTid = ts.TidAddress
		}
		t2 = time.Now()
		stats.InfectNs += t2.Sub(t1).Nanoseconds()
		return writeRuns(p, pid, runs, pages, transfer)
	}()
	t3 := time.Now()
	cerr := p.Cure()
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
		pages.Close()
		return nil, derr
	}
	return &capturedMemory{runs: runs, pages: pages, written: written}, nil
}

// finish syncs the page image and writes the page map.
func (c *capturedMemory) finish(pid int, dir *images.Dir) error {
	defer c.pages.Close()
	if err := images.FinishPages(c.pages, c.written); err != nil {
		return err
	}
	pmw, err := dir.CreatePagemap(pid)
	if err != nil {
		return err
	}
	for _, r := range c.runs {
		if err := pmw.Add(&gocrpb.PageRange{Vaddr: r.addr, NrPages: r.npages}); err != nil {
			pmw.Close()
			return err
		}
	}
	return pmw.Close()
}

func writeRuns(p *parasite.Parasite, pid int, runs []run, pages *os.File, transfer string) (int64, error) {
	var written int64
	var spans []parasite.Span
	flush := func() error {
		if len(spans) == 0 {
			return nil
		}
		var n int64
		var err error
		if transfer == "write" {
			n, err = p.WritePages(spans, pages)
			if errors.Is(err, parasite.ErrCannotPassFile) {
				// e.g. the process is at its fd limit: the pipes
				// it already has still work.
				transfer = "splice"
			}
		}
		if transfer == "splice" {
			n, err = p.DumpPages(spans, pages)
		}
		written += n
		spans = spans[:0]
		return err
	}
	var mem *os.File
	defer func() {
		if mem != nil {
			mem.Close()
		}
	}()
	for _, r := range runs {
		if r.readable {
			spans = append(spans, parasite.Span{Addr: r.addr, Len: r.npages * pageSize})
			continue
		}
		if err := flush(); err != nil {
			return written, err
		}
		if mem == nil {
			var err error
			if mem, err = os.Open(fmt.Sprintf("/proc/%d/mem", pid)); err != nil {
				return written, err
			}
		}
		n, err := io.Copy(pages, io.NewSectionReader(mem, int64(r.addr), int64(r.npages*pageSize)))
		written += n
		if err != nil {
			return written, fmt.Errorf("read unreadable pages at %#x: %w", r.addr, err)
		}
	}
	if err := flush(); err != nil {
		return written, err
	}
	return written, nil
}

func fillTaskFromParasite(task *gocrpb.Task, ps *parasite.State) {
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
	th := task.Threads[0]
	th.Sigaltstack = &gocrpb.SigAltStack{Sp: ps.AltstackSp, Flags: ps.AltstackFlags, Size: ps.AltstackSize}
	th.ClearChildTid = ps.TidAddress
}
