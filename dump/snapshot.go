//go:build linux

package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
)

// A copy-on-write snapshot (Options.Snapshot): while the process is
// frozen, the parasite forks it (parasite.TakeSnapshot), which costs the
// copy of its page tables; the process then runs on while the snapshot
// process writes the private memory it had at that instant into the page
// images. What fork does not copy is written while the process is still
// frozen, by the parasite, into stream 0 first: shared memory (the
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

// anonBytes is the process's resident anonymous memory, from
// /proc/PID/statm: resident less shared (file and shmem) pages (man 5
// proc_pid_statm). It is what a snapshot can cost at most: each page is
// copied at most once, when the process first writes it.
func anonBytes(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0
	}
	res, err1 := strconv.ParseUint(f[1], 10, 64)
	shared, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || shared > res {
		return 0
	}
	return (res - shared) * pageSize
}

// whyNoSnapshot says why the process cannot be snapshotted, or "".
//   - A child subreaper, the process or one of its ancestors in the dump,
//     would adopt the snapshot process when the fork child that made it
//     exits (kernel/exit.c find_new_reaper walks up from the fork child's
//     parent): the job would see a child of its own.
//   - The pages the job writes while the snapshot holds the old ones are
//     copies, charged to the job's memory cgroup (mm/memory.c wp_page_copy,
//     mem_cgroup_charge): where a memory cgroup's limit, or the machine's
//     available memory, leaves less room than the job's anonymous memory,
//     the snapshot could push the job into an OOM killer.
func whyNoSnapshot(ctx context.Context, pid int, sr *subreapers) (string, error) {
	adopter, err := sr.adopter(ctx, pid)
	if err != nil {
		return "", err
	}
	if adopter == pid {
		return "it is a child subreaper, which would adopt the snapshot process", nil
	}
	if adopter != 0 {
		return fmt.Sprintf("pid %d of the dump, a child subreaper, would adopt the snapshot process", adopter), nil
	}
	return whyNoRoom(pid), nil
}

// whyNoRoom says why the snapshot of pid would not fit, or "".
func whyNoRoom(pid int) string {
	need := anonBytes(pid)
	if avail, err := memAvailable(); err != nil {
		return fmt.Sprintf("the memory available is unknown: %v", err)
	} else if avail < need {
		return fmt.Sprintf("%d bytes of memory are available, the snapshot may need %d", avail, need)
	}
	room, where, err := memcgRoom(pid)
	if err != nil {
		return fmt.Sprintf("its memory cgroup's room is unknown: %v", err)
	}
	if where != "" && room < need {
		return fmt.Sprintf("memory cgroup %s has %d bytes free below its limit, the snapshot may need %d", where, room, need)
	}
	return ""
}

// memAvailable is MemAvailable of /proc/meminfo: what the kernel
// estimates can be allocated without swapping (man 5 proc_meminfo).
func memAvailable() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable line")
}

// memcgRoom is the least room left below a memory limit in the process's
// memory cgroup and its ancestors, and the cgroup that has it; "" where
// none has a limit. cgroup v2 shows memory.max and memory.current
// (Documentation/admin-guide/cgroup-v2.rst), v1 memory.limit_in_bytes
// and memory.usage_in_bytes (cgroup-v1/memory.rst), each hierarchy
// mounted under /sys/fs/cgroup as systemd and Debian do.
func memcgRoom(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, "", err
	}
	var least uint64
	var where string
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controllers:path (man 7 cgroups)
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var root, maxName, curName string
		switch {
		case f[0] == "0" && f[1] == "":
			root, maxName, curName = "/sys/fs/cgroup", "memory.max", "memory.current"
		case slices.Contains(strings.Split(f[1], ","), "memory"):
			root, maxName, curName = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		for p := filepath.Join(root, f[2]); ; p = filepath.Dir(p) {
			room, limited, err := cgroupRoom(p, maxName, curName)
			if err != nil {
				return 0, "", err
			}
			if limited && (where == "" || room < least) {
				least, where = room, p
			}
			if p == root || !strings.HasPrefix(p, root) {
				break
			}
		}
	}
	return least, where, nil
}

// noLimit is where a v1 limit means none: the kernel shows "no limit" as
// the largest page-aligned counter (PAGE_COUNTER_MAX), above 2^62.
const noLimit = 1 << 62

// cgroupRoom reads one cgroup's memory limit and use; limited is false
// where it has none (or no such files: not that hierarchy's).
func cgroupRoom(dir, maxName, curName string) (room uint64, limited bool, err error) {
	max, err := os.ReadFile(filepath.Join(dir, maxName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(max))
	if s == "max" {
		return 0, false, nil
	}
	limit, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, maxName, err)
	}
	if limit >= noLimit {
		return 0, false, nil
	}
	cur, err := os.ReadFile(filepath.Join(dir, curName))
	if err != nil {
		return 0, false, err
	}
	used, err := strconv.ParseUint(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, curName, err)
	}
	if limit > used {
		room = limit - used
	}
	return room, true, nil
}

// snapshotOrRest takes the snapshot of the process's private memory, or,
// where none can be had, writes that memory now, while the process is
// frozen, as without a snapshot. Precondition: the frozen part is
// written (c.write), p is infected and the process frozen.
func (c *capturedMemory) snapshotOrRest(ctx context.Context, p *parasite.Parasite, pid int, dir *images.Dir, st *state, stats *Stats, po pageOptions) error {
	why, err := whyNoSnapshot(ctx, pid, po.subreapers)
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
	if st.flagsBefore {
		// No snapshot to vouch for them: the process, still frozen,
		// does.
		ms, err := proc.ReadMaps(pid)
		if err != nil {
			return err
		}
		if err := checkFlagsBefore(st.mm, ms); err != nil {
			return err
		}
	}
	t0 := time.Now()
	runs, err := pagesToDump(pid, st.mm, coveredBySnapshot)
	stats.PagemapNs += time.Since(t0).Nanoseconds()
	if err != nil {
		return err
	}
	from := c.extend(runs)
	return c.write(p, pid, dir, po.transfer, from)
}

// subreapers says which of the dumped processes are child subreapers,
// each known once its parasite has read its state (or failed to).
type subreapers struct {
	parent map[int]int // the dumped processes' parents
	known  map[int]chan struct{}
	mu     sync.Mutex
	is     map[int]bool
}

func newSubreapers(states []*state) *subreapers {
	sr := &subreapers{parent: map[int]int{}, known: map[int]chan struct{}{}, is: map[int]bool{}}
	for _, st := range states {
		pid := int(st.task.Pid)
		sr.parent[pid] = int(st.task.Ppid)
		sr.known[pid] = make(chan struct{})
		if st.mm == nil {
			// A zombie adopts nothing: its children went on its exit.
			sr.set(pid, false)
		}
	}
	return sr
}

// set records once whether pid is a child subreaper; unknown counts as
// one.
func (sr *subreapers) set(pid int, is bool) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	select {
	case <-sr.known[pid]:
	default:
		sr.is[pid] = is
		close(sr.known[pid])
	}
}

// adopter is the dumped process that would adopt an orphan of pid's: pid
// itself or its nearest ancestor in the dump that is a child subreaper,
// or 0. It waits until each one's flag is known: every ancestor's
// capture started before pid's (captureAll goes down the tree in order).
func (sr *subreapers) adopter(ctx context.Context, pid int) (int, error) {
	if sr == nil {
		return 0, fmt.Errorf("no subreaper flags for pid %d", pid)
	}
	for p := pid; ; p = sr.parent[p] {
		ch, in := sr.known[p]
		if !in {
			return 0, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		sr.mu.Lock()
		is := sr.is[p]
		sr.mu.Unlock()
		if is {
			return p, nil
		}
	}
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
	// The snapshot's mappings are the process's but for the region and
	// what fork leaves out, which is not read here.
	runs, err := pagesToDump(spid, c.mm, coveredBySnapshot)
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
					streams = append(streams, parasite.Stream{File: c.pages[i], Off: images.PagesDataOffset + r.off})
					s = &streams[len(streams)-1]
				}
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
