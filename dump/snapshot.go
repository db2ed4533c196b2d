//go:build linux

package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
)

// A copy-on-write snapshot (Options.LeaveRunning without NoSnapshot):
// while the process is frozen, the parasite forks it
// (parasite.TakeSnapshot), which costs the copy of its page tables; the
// process then runs on while the snapshot process writes the private
// memory it had at that instant into the page images. What fork does not
// copy is written while the process is still frozen, by the parasite,
// into a page stream of its own: shared memory (the
// snapshot would see the process's later writes), mappings excluded from
// fork (MADV_DONTFORK: absent in the child; MADV_WIPEONFORK: empty in the
// child; mm/mmap.c dup_mmap). Threads, registers, fds and signals are
// read while frozen as always.

// coveredBySnapshot says whether a mapping's pages come from the
// snapshot: private memory that fork shares copy on write.
func coveredBySnapshot(v *gocrpb.Vma) bool {
	switch v.Kind {
	case gocrpb.VmaKind_VMA_ANON_PRIVATE, gocrpb.VmaKind_VMA_FILE_PRIVATE:
	default:
		return false
	}
	return !slices.Contains(v.VmFlags, "dc") && !slices.Contains(v.VmFlags, "wf")
}

func notCoveredBySnapshot(v *gocrpb.Vma) bool { return !coveredBySnapshot(v) }

// snapshotOrRest takes the snapshot of the process's private memory, or,
// where none can be had, writes that memory now, while the process is
// frozen, as without a snapshot. Precondition: the frozen part is
// written (c.write), p is infected and the process frozen.
func (c *capturedMemory) snapshotOrRest(ctx context.Context, p *parasite.Parasite, pid int, dir *images.Dir, st *state, stats *Stats, po pageOptions) error {
	why, err := whyNoSnapshot(ctx, pid, po.subreapers, st.room)
	if err != nil {
		return err
	}
	if why == "" {
		var addr uint64
		var size uint32
		if rs := st.task.Threads[0].Rseq; rs != nil {
			addr, size = rs.AbiPointer, rs.AbiSize
		}
		t0 := time.Now()
		snap, err := p.TakeSnapshot(addr, size)
		stats.SnapshotNs += time.Since(t0).Nanoseconds()
		if err == nil {
			c.snap = snap
			c.flagsBefore = st.flagsBefore
			c.numa = st.numa
			testhook.PauseContext(ctx, testhook.PauseAfterSnapshot)
			return nil
		}
		// The kernel refused a step (fork's EAGAIN or ENOMEM: RLIMIT_NPROC,
		// the pids cgroup, the commit limit, man 2 fork); the parasite
		// answered, so the process is as it was. A parasite that did not
		// answer fails the dump.
		var errno unix.Errno
		if !errors.As(err, &errno) {
			return err
		}
		why = err.Error()
	}
	stats.SnapshotFrozen = append(stats.SnapshotFrozen, fmt.Sprintf("pid %d: %s", pid, why))
	if err := st.numa.check(pid); err != nil {
		return err
	}
	if st.flagsBefore {
		// No snapshot to vouch for them: the process, still frozen,
		// does (its "uw" gocr's own tracking, incremental.go).
		ms, err := proc.ReadMaps(pid)
		if err != nil {
			return err
		}
		if po.tracking != nil {
			ms = withoutFlag(ms, "uw")
		}
		if err := checkFlagsBefore(st.mm, ms); err != nil {
			return err
		}
	}
	t0 := time.Now()
	runs, err := pagesToDump(pid, st.mm, coveredBySnapshot)
	if err == nil {
		runs, err = c.splitInherit(runs)
	}
	stats.PagemapNs += time.Since(t0).Nanoseconds()
	if err != nil {
		return err
	}
	from := c.extend(runs)
	return c.write(p, pid, dir, po.transfer, from)
}

// snapshotChunk is how much each page stream writes before the snapshot
// lets go of what it wrote (parasite.Snapshot.Release): the memory a
// snapshot holds shrinks as it is written.
const snapshotChunk = 64 << 20

// writeSnapshot has the snapshot process write the private memory it
// holds into the page images, after what was written while the process
// was frozen, then ends it. The process runs meanwhile. It adds to stats
// the bytes written and those the process copied on write while the
// snapshot still held them: what the snapshot cost in memory.
func (c *capturedMemory) writeSnapshot(ctx context.Context) (written, copied int64, err error) {
	snap := c.snap
	spid := snap.Pid()
	defer func() {
		if err != nil {
			err = fmt.Errorf("snapshot process %d: %w", spid, err)
		}
	}()
	if c.flagsBefore {
		ms, err := proc.ReadMaps(spid)
		if err != nil {
			return 0, 0, err
		}
		if err := checkFlagsBefore(c.mm, ms); err != nil {
			return 0, 0, err
		}
	}
	if err := c.numa.check(spid); err != nil {
		return 0, 0, err
	}
	// The snapshot's mappings are the process's but for the region and
	// what fork leaves out, which is not read here.
	runs, err := pagesToDump(spid, c.mm, coveredBySnapshot)
	if err == nil {
		runs, err = c.splitInherit(runs)
	}
	if err != nil {
		return 0, 0, err
	}
	from := c.extend(runs)
	for _, f := range c.pages {
		if _, err := snap.PassFile(f); err != nil {
			return 0, 0, err
		}
	}
	pm, err := proc.OpenPagemap(spid)
	if err != nil {
		return 0, 0, err
	}
	defer pm.Close()

	// Each stream's readable runs, in the order of their data; the
	// unreadable ones are copied by gocr through /proc/PID/mem.
	queues := make([][]run, len(c.pages))
	for _, r := range c.runs[from:] {
		written += int64(r.npages * pageSize)
		if !r.readable {
			if err := copyUnreadable(spid, c.pages[r.stream], r); err != nil {
				return 0, 0, err
			}
			continue
		}
		queues[r.stream] = append(queues[r.stream], r)
	}
	var buf []uint64
	for {
		if err := stopped(ctx); err != nil {
			return 0, 0, err
		}
		var streams []parasite.Stream
		var done []parasite.Span
		for i, q := range queues {
			var s *parasite.Stream
			var n uint64
			for len(q) > 0 && n < snapshotChunk {
				r := &q[0]
				if s != nil && s.Off+int64(n) != images.PagesDataOffset+r.off {
					break
				}
				k := min(r.npages, (snapshotChunk-n)/pageSize)
				if s == nil {
					streams = append(streams, parasite.Stream{File: c.pages[i], Off: images.PagesDataOffset + r.off,
						Sums: dataSums(c.dir, c.pages[i])})
					s = &streams[len(streams)-1]
				}
				s.Skip = append(s.Skip, !c.summable(*r))
				sp := parasite.Span{Addr: r.addr, Len: k * pageSize}
				s.Spans = append(s.Spans, sp)
				done = append(done, sp)
				n += sp.Len
				r.addr += sp.Len
				r.off += int64(sp.Len)
				r.npages -= k
				if r.npages == 0 {
					q = q[1:]
				}
			}
			queues[i] = q
		}
		if len(streams) == 0 {
			break
		}
		if _, err := snap.WriteStreams(streams); err != nil {
			return 0, 0, err
		}
		// A page only the snapshot maps is one the process has written
		// (or dropped) since the fork: its copy is what the snapshot
		// costs (pagemap's exclusive bit, page mapped once).
		for _, sp := range done {
			if buf, err = pm.Read(sp.Addr, sp.Addr+sp.Len, buf); err != nil {
				return 0, 0, err
			}
			for _, e := range buf {
				if e&proc.PagemapPresent != 0 && e&proc.PagemapExclusive != 0 {
					copied += pageSize
				}
			}
		}
		if err := snap.Release(done); err != nil {
			return 0, 0, err
		}
		testhook.PauseContext(ctx, testhook.PauseInSnapshotWrite)
	}
	c.snap = nil
	if err := snap.Close(); err != nil {
		return 0, 0, err
	}
	return written, copied, nil
}

// copyUnreadable copies a run the process cannot read itself (PROT_NONE)
// through /proc/PID/mem (FOLL_FORCE, fs/proc/base.c mem_rw) into its
// place in f.
func copyUnreadable(pid int, f *os.File, r run) error {
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer mem.Close()
	w := io.NewOffsetWriter(f, images.PagesDataOffset+r.off)
	if _, err := io.Copy(w, io.NewSectionReader(mem, int64(r.addr), int64(r.npages*pageSize))); err != nil {
		return fmt.Errorf("copy pages the process cannot read, at %#x: %w", r.addr, err)
	}
	return nil
}
