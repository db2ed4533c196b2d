//go:build linux

// Package dump checkpoints a process: it freezes it with ptrace, reads
// what /proc and ptrace show from outside, infects it with the parasite
// for what only the process itself can tell and for its memory, cures it,
// and writes the images. A dump that fails at any step leaves the process
// running exactly as it was and the image directory as it was (a
// checkpoint already there whole: images.Create).
package dump

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// Options say what to dump and where.
type Options struct {
	Pid          int // the root of the tree to dump
	Pgid, Sid    int // or: a whole process group, or session (its leader is the root)
	Dir          string
	LeaveRunning bool   // let the processes run on after the dump
	Version      string // gocr's version, recorded in the inventory
	// PageTransfer is how page data reaches the image: "write" (the
	// parasite pwritev()s it into the image file, the default) or
	// "splice" (vmsplice into pipes, gocr splices them into the file).
	// Both avoid gocr's memory; docs/PERFORMANCE.md compares them.
	PageTransfer string
	// PageStreams is how many page images (each written by its own
	// thread in the target) a process's memory is split over in write
	// mode; 0 lets gocr choose by size and CPUs.
	PageStreams int
	// Alone dumps Pid without its live descendants (cr_checkpoint --pid):
	// they are not in the dump, and the restored process has none of
	// them; its zombie children, whose exit status it may still
	// collect, are kept. What it shares with a child left out is refused
	// (checkLeftOut).
	Alone bool
	// Save says which mapped files' contents go into the dump (ParseSave).
	Save SaveFiles
	// BeforeFreeze, if set, runs before the processes are frozen, with
	// the root's PID (the callbacks package: processes that registered
	// checkpoint callbacks get ready). Its error fails the dump, nothing
	// frozen. The function it returns is told at the end whether the
	// checkpoint was taken (complete), once the processes run on or
	// were ended.
	BeforeFreeze func(ctx context.Context, root int) (after func(taken bool), err error)
	// ExternalUnix: unix sockets connected outside the dump that are
	// dumped anyway (files.LinkOptions).
	ExternalUnix []string
	// External: pipes to outside the dump, not stdio, that are dumped
	// anyway, for the restore to be given (files.LinkOptions).
	External []string
	// TCPEstablished dumps TCP connections to peers outside the dump
	// too, blocked until the restore (files.CaptureConnections).
	TCPEstablished bool
	// With LeaveRunning the processes are frozen only while a
	// copy-on-write snapshot of each is taken, and run on while their
	// private memory is written from it (snapshot.go); NoSnapshot keeps
	// them frozen until their memory is written instead.
	NoSnapshot bool
	// InheritStdio are the caller's own standard files, given to the
	// processes: their fds 0 to 2 on these are dumped as inherited
	// stdio (files.LinkOptions.Stdio).
	InheritStdio []files.FileID
	// GhostLimit is the largest deleted file (open, or mapped) whose
	// contents the dump saves to make it again at restore (ghosts.go);
	// a larger one is refused. 0: DefaultGhostLimit.
	GhostLimit int64
	// Prev names the previous dump of the same job: pages not written
	// since it are listed as its own, not written again (incremental.go).
	// Where the job's writes since Prev are not known, the dump is full.
	Prev string
	// Track keeps tracking the pages the processes write after the
	// dump (with LeaveRunning), for a later dump given this one as Prev;
	// Prev implies it.
	Track bool
	// PrevRef, if set, is how the dump names Prev in its inventory
	// (parent_dir) instead of Prev's path relative to Dir: where the
	// parent will be found at restore.
	PrevRef string
	// TrackHolder is the command that runs a holder of the trackers
	// between dumps, its listening socket as fd 3 (wptrack.Serve).
	TrackHolder []string
}

// Run dumps the process tree opts selects into opts.Dir. When ctx ends
// first, the dump stops at its next step, or at once where it waits for a
// process to stop, and fails as at any other error: every process runs on
// as it was and no complete-looking dump is left. The error then wraps
// context.Cause(ctx). Once the images are complete the dump is finished
// instead.
func Run(ctx context.Context, opts Options) (err error) {
	switch opts.PageTransfer {
	case "":
		opts.PageTransfer = "write"
	case "write", "splice":
	default:
		return fmt.Errorf("unknown page transfer %q: use write or splice", opts.PageTransfer)
	}
	switch {
	case opts.GhostLimit == 0:
		opts.GhostLimit = DefaultGhostLimit
	case opts.GhostLimit < 0:
		return fmt.Errorf("invalid --ghost-limit %d: use a size in bytes", opts.GhostLimit)
	}
	if opts.Prev != "" {
		opts.Track = true
	}
	snapshot := opts.LeaveRunning && !opts.NoSnapshot
	if opts.PageStreams < 0 || opts.PageStreams > maxStreams {
		return fmt.Errorf("invalid --page-streams %d: use 1 to %d, or 0 to let gocr choose", opts.PageStreams, maxStreams)
	}
	root, err := pickRoot(opts)
	if err != nil {
		return err
	}
	if err := checkDumpable(root); err != nil {
		return err
	}

	trk, err := startTracking(opts, root)
	if err != nil {
		return err
	}
	defer trk.close()

	// The images go to a new private directory that takes the place of
	// opts.Dir only once they are complete (images.Create).
	dir, err := images.Create(opts.Dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			dir.Abort()
		}
		dir.Close()
	}()

	if opts.BeforeFreeze != nil {
		after, berr := opts.BeforeFreeze(ctx, root)
		if berr != nil {
			return berr
		}
		// Deferred before the tracer's and the release's, so it runs
		// after them, with the images in place (WriteInventory).
		defer func() { after(err == nil) }()
	}

	warmImageTypes()
	kthreads := findKernelThreads()
	defer kthreads.close()
	start := time.Now()
	var stats Stats
	// Before the freeze: what a snapshot dump need not read while the
	// processes are frozen (preReadMaps).
	var pre preReadMaps
	if snapshot {
		pre = preReadTree(root)
		stats.MapsBeforeNs = time.Since(start).Nanoseconds()
		start = time.Now()
	}
	// An incremental dump scans the job's writes once before the
	// freeze, so that the scan while frozen finds only the last ones
	// (prescan.go).
	if trk != nil {
		trk.preScan(ctx, pre)
		stats.PreScanNs = time.Since(start).Nanoseconds()
		start = time.Now()
	}
	t := ptrace.NewTracer()
	defer t.Close()
	tree, err := freezeTree(ctx, t, root, opts.Alone && opts.Pid != 0)
	stats.FreezeNs = time.Since(start).Nanoseconds()
	// From here on the processes are frozen; every error path releases
	// them as they were, with any signal they were about to take.
	released := false
	var frozen time.Time
	var frozenNs int64
	release := func() {
		if !released {
			released = true
			if last := tree.release(t); !last.IsZero() {
				frozenNs = last.Sub(frozen).Nanoseconds()
			} else {
				frozenNs = time.Since(frozen).Nanoseconds()
			}
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	if err != nil {
		return err
	}
	frozen = time.Now()
	// What needs no ptrace is read beside the rest (beside.go). Never
	// left running, as it reads through kthreads' pidfds; on the way out
	// of a failed dump, the processes go first.
	side := startBeside(tree, kthreads, snapshot)
	defer func() {
		if err != nil {
			release()
		}
		side.wait()
	}()
	timeOffsets, err := jobTimeOffsets(tree)
	if err != nil {
		return err
	}
	clocks, err := readClocks(timeOffsets)
	if err != nil {
		return err
	}
	if err := tree.checkSelection(opts); err != nil {
		return err
	}
	if err := tree.checkGroups(); err != nil {
		return err
	}
	if err := tree.checkSharing(); err != nil {
		return err
	}
	if opts.Alone {
		if err := tree.checkLeftOut(); err != nil {
			return err
		}
	}
	// A job in a PID namespace of gocr's restore is recorded with the
	// PIDs it sees (pidns.go).
	var pids *pidTranslation
	if ns, err := jobPidNamespace(root); err != nil {
		return fmt.Errorf("pid %d: %w", root, err)
	} else if ns != nil {
		if pids, err = newPidTranslation(ns, tree); err != nil {
			return err
		}
	}

	collectStart := time.Now()
	saver := newFileSaver(dir, opts.Save)
	states := make([]*state, len(tree.procs))
	for i, fp := range tree.procs {
		if fp.zombie {
			states[i] = &state{task: zombieTask(fp)}
			continue
		}
		if err := stopped(ctx); err != nil {
			return fmt.Errorf("dump pid %d: %w", root, err)
		}
		// On the tracer thread at once: its ptrace requests, one or
		// more per thread, then pay for no hand-off each
		// (ptrace.Tracer.Do).
		t.Do(func() { states[i], err = collect(t, fp.pid, fp, saver, pre, trk, side.of(i)) })
		if err != nil {
			return fmt.Errorf("dump pid %d: %w", fp.pid, err)
		}
		states[i].imagePid = pids.imagePid(fp.pid)
	}
	if err := checkCgroups(states); err != nil {
		return err
	}
	if err := linkFiles(dir, saver, states, files.LinkOptions{ExternalUnix: opts.ExternalUnix, Stdio: opts.InheritStdio, External: opts.External, PidNamespace: pids != nil}, opts.GhostLimit); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	unhold, err := holdConnectionUsers(t, tree, states)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	conns, err := captureConnections(states, opts)
	if herr := unhold(); herr != nil {
		err = errors.Join(err, conns.Close(), herr)
		conns = nil
	}
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer func() {
		if cerr := conns.Close(); cerr != nil {
			fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", cerr)
		}
	}()
	sysv, err := collectSysvIpc(dir, states, side.sysv())
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}

	stats.CollectNs = time.Since(collectStart).Nanoseconds()
	mems := make([]*capturedMemory, len(states))
	defer func() {
		for _, m := range mems {
			if m != nil {
				m.close()
			}
		}
	}()
	po := pageOptions{transfer: opts.PageTransfer, streams: opts.PageStreams, snapshot: snapshot, leaveRunning: opts.LeaveRunning, tracking: trk, pidns: pids != nil}
	if opts.LeaveRunning && len(states) == 1 && pids == nil {
		// One process, and nothing to do but write once it is
		// captured: it runs on as soon as it is cured.
		po.releaseAtCure = func() {
			dir.LeaveCPUFree()
			release()
		}
	}
	forkShared, err := findForkShared(states)
	if err != nil {
		return fmt.Errorf("dump pid %d: %w", root, err)
	}
	if err := captureAll(ctx, t, dir, states, mems, &stats, po); err != nil {
		return err
	}
	// The tracee check, on every task of the machine, is waited for
	// only now, before the processes run on or end: everything done to
	// them until now is undone should it refuse.
	if err := side.tracees(); err != nil {
		return err
	}
	if stats.ForkSharedLostBytes, err = forkShared.check(states, mems); err != nil {
		return fmt.Errorf("dump pid %d: %w", root, err)
	}
	stats.ForkSharedBytes = forkShared.bytes()
	stats.MemoryNs = time.Since(start).Nanoseconds()
	if pids != nil {
		if err := pids.apply(states); err != nil {
			return fmt.Errorf("dump pid %d: %w", root, err)
		}
	}
	// Everything is captured and cured: with --leave-running the
	// processes go on now, while the images are synced.
	if opts.LeaveRunning {
		dir.LeaveCPUFree()
		release()
		stats.FrozenNs = frozenNs
		defer moveOffJobCPUs(states, snapshotPids(mems)).back()
	}
	if err := writeSnapshots(ctx, mems, &stats); err != nil {
		return fmt.Errorf("dump pid %d: %w", root, err)
	}
	writeStart := time.Now()
	if err := writeImages(ctx, dir, states, mems, opts.Version, pids != nil, sysv, trk, clocks, &stats); err != nil {
		return fmt.Errorf("dump pid %d: %w", root, err)
	}
	if trk != nil {
		stats.IncrementalReusedBytes = trk.reused
		stats.IncrementalFull = trk.full
		switch {
		case len(trk.full) == 0:
		case opts.Prev != "":
			fmt.Fprintf(os.Stderr, "gocr: not incremental for %s\n", strings.Join(trk.full, "; "))
		default:
			fmt.Fprintf(os.Stderr, "gocr: writes not tracked for %s\n", strings.Join(trk.full, "; "))
		}
		if err := trk.handOver(images.DumpID(dir.Inventory().GetDumpId())); err != nil {
			// The dump is complete; only the next one's increment is lost.
			fmt.Fprintf(os.Stderr, "gocr: warning: %v: the next dump will be full\n", err)
		}
	}
	stats.WriteNs = time.Since(writeStart).Nanoseconds()
	if !opts.LeaveRunning {
		// The images are complete and synced: only now may the
		// processes go. Should gocr die while it ends them, the TCP
		// watchdog ends those holding connections and seals them.
		if err := conns.Complete(); err != nil {
			fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
		}
		testhook.Pause(testhook.PauseBeforeEndingJob)
		released = true
		tree.kill(t)
		if err := conns.Seal(); err != nil {
			fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
		}
		stats.FrozenNs = time.Since(frozen).Nanoseconds()
	}
	stats.TotalNs = time.Since(start).Nanoseconds()
	writeStats(dir, &stats)
	if err := dir.Leftover(); err != nil {
		// The dump is complete and in place; only tidying up failed.
		fmt.Fprintf(os.Stderr, "gocr: warning: %v\n", err)
	}
	return nil
}

// captureAll captures every process's memory, two at a time: the page
// data of one moves while the other is infected or cured on the tracer
// thread, so both cores work. A process alone gets every CPU for its page
// streams; with two at a time, half each.
func captureAll(ctx context.Context, t *ptrace.Tracer, dir *images.Dir, states []*state, mems []*capturedMemory, stats *Stats, po pageOptions) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	const atOnce = 2
	withMemory := 0
	for _, st := range states {
		if st.mm != nil {
			withMemory++
		}
	}
	cpus := runtime.NumCPU()
	if po.snapshot {
		// The processes run on while the snapshot's streams are
		// written: they keep a CPU (images.Dir.LeaveCPUFree).
		cpus = max(1, cpus-1)
	}
	po.cpus = max(1, cpus/min(atOnce, max(withMemory, 1)))
	if po.snapshot {
		po.subreapers = newSubreapers(states)
	}
	slots := make(chan struct{}, atOnce)
	for i, st := range states {
		if st.mm == nil {
			continue
		}
		slots <- struct{}{}
		mu.Lock()
		if err := stopped(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("dump pid %d: %w", st.task.Pid, err)
		}
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			<-slots
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			var ps Stats
			pid := int(st.task.Pid)
			m, err := captureMemory(ctx, t, pid, dir, st, &ps, po)
			mu.Lock()
			defer mu.Unlock()
			mems[i] = m
			stats.add(&ps)
			if m != nil {
				stats.PagesBytes += m.total()
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("dump pid %d: %w", pid, err)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func (s *Stats) add(o *Stats) {
	s.PagemapNs += o.PagemapNs
	s.InfectNs += o.InfectNs
	s.PagesNs += o.PagesNs
	s.CureNs += o.CureNs
	s.PageStreams = max(s.PageStreams, o.PageStreams)
	s.SnapshotNs += o.SnapshotNs
	s.SnapshotFrozen = append(s.SnapshotFrozen, o.SnapshotFrozen...)
}

// writeSnapshots writes the memory each snapshot holds, one process
// after the other, each with all its page streams, while the processes
// run on.
func writeSnapshots(ctx context.Context, mems []*capturedMemory, stats *Stats) error {
	start := time.Now()
	for _, m := range mems {
		if m == nil || m.snap == nil {
			continue
		}
		written, copied, err := m.writeSnapshot(ctx)
		stats.SnapshotWriteNs = time.Since(start).Nanoseconds()
		if err != nil {
			return err
		}
		stats.SnapshotBytes += written
		stats.SnapshotCopiedBytes += copied
		stats.PagesBytes += written
	}
	return nil
}

func writeImages(ctx context.Context, dir *images.Dir, states []*state, mems []*capturedMemory, version string, pidns bool, sysv *gocrpb.SysvIpc, trk *tracking, clocks *gocrpb.Clocks, stats *Stats) error {
	var pids []int32
	for i, st := range states {
		pid := int(st.task.Pid)
		pids = append(pids, st.task.Pid)
		if err := dir.WriteTask(st.task); err != nil {
			return err
		}
		if st.mm == nil {
			continue
		}
		if err := mems[i].finish(pid, dir); err != nil {
			return err
		}
		mems[i] = nil
		if err := dir.WriteMm(st.mm); err != nil {
			return err
		}
		if err := dir.WriteFiles(st.files); err != nil {
			return err
		}
	}
	// Every page and memfd image is checksummed and synced at once,
	// over every CPU (with --leave-running, the processes already run).
	sealStart := time.Now()
	if err := dir.SealData(); err != nil {
		return err
	}
	stats.SealNs = time.Since(sealStart).Nanoseconds()
	stats.SealReadBytes = dir.SealReadBytes()
	if dir.SealSumsDistrusted() {
		fmt.Fprintf(os.Stderr, "gocr: warning: a page checksum the parasite took as it wrote disagreed with the data; every checksum was computed again from the images\n")
	}
	// The inventory makes the dump complete: the last moment to stop.
	if err := stopped(ctx); err != nil {
		return err
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	bootID, err := proc.BootID()
	if err != nil {
		return fmt.Errorf("read the boot ID: %w", err)
	}
	label, err := proc.ReadLSMLabel(os.Getpid())
	if err != nil && !errors.Is(err, proc.ErrNotShown) {
		return fmt.Errorf("read gocr's LSM label: %w", err)
	}
	inv := &gocrpb.Inventory{
		FormatVersion:  images.FormatVersion,
		GocrVersion:    version,
		RootPid:        states[0].task.Pid,
		Pids:           pids,
		DumpTimeUnixNs: time.Now().UnixNano(),
		KernelRelease:  unix.ByteSliceToString(uts.Release[:]),
		Xcr0:           ptrace.XCR0(states[0].task.Threads[0].Xsave),
		PageSize:       uint64(os.Getpagesize()),
		PidNamespace:   pidns,
		BootId:         bootID,
		SysvIpc:        sysv,
		Clocks:         clocks,
		LsmLabel:       label,
	}
	if trk != nil && trk.used {
		inv.ParentDumpId = trk.parent.Inventory().GetDumpId()
		inv.ParentDir = trk.parentRef
	}
	return dir.WriteInventory(inv)
}

// StatsFile is the file in the image directory that holds a dump's Stats
// as JSON.
const StatsFile = images.StatsName

// Stats is what a dump measured, written to StatsFile in the image
// directory (not an image: informational, for benchmarks and users).
type Stats struct {
	FrozenNs   int64 `json:"frozen_ns"`   // from the freeze until the process ran on or was killed
	MemoryNs   int64 `json:"memory_ns"`   // from the start until memory was captured
	TotalNs    int64 `json:"total_ns"`    // the whole dump, images synced
	PagesBytes int64 `json:"pages_bytes"` // page data written
	// PageStreams is the most page images one process's memory went to.
	PageStreams int `json:"page_streams"`
	// Where the time went, summed over the processes.
	FreezeNs  int64 `json:"freeze_ns"`  // seizing and stopping every thread
	CollectNs int64 `json:"collect_ns"` // /proc, registers, fds: what can be read from outside
	PagemapNs int64 `json:"pagemap_ns"` // finding the pages to dump
	InfectNs  int64 `json:"infect_ns"`  // injecting the parasite and reading its state
	PagesNs   int64 `json:"pages_ns"`   // moving page data to the image
	CureNs    int64 `json:"cure_ns"`    // removing the parasite
	WriteNs   int64 `json:"write_ns"`   // syncing the page images and writing the rest
	SealNs    int64 `json:"seal_ns"`    // of WriteNs: checksumming and syncing the page and memfd images
	// SealReadBytes: of the page and memfd images' data, what the seal
	// read back to checksum it; the rest the parasite summed as it
	// wrote it.
	SealReadBytes int64 `json:"seal_read_bytes"`
	// Copy-on-write snapshots (with LeaveRunning): the forks, while
	// frozen; the smaps read before the freeze (not in TotalNs); the
	// page data written from them after the processes ran on, and how
	// long that took; of that data, the pages the processes wrote (or
	// dropped) while a snapshot still held them, each a copy the
	// snapshot cost in memory (at most SnapshotBytes: a snapshot lets go
	// of its pages as it writes them). SnapshotFrozen names the
	// processes whose memory was written while frozen instead, and why.
	SnapshotNs          int64    `json:"snapshot_ns,omitempty"`
	MapsBeforeNs        int64    `json:"maps_before_ns,omitempty"`
	SnapshotBytes       int64    `json:"snapshot_bytes,omitempty"`
	SnapshotWriteNs     int64    `json:"snapshot_write_ns,omitempty"`
	SnapshotCopiedBytes int64    `json:"snapshot_copied_bytes,omitempty"`
	SnapshotFrozen      []string `json:"snapshot_frozen,omitempty"`
	// PreScanNs: an incremental dump's scan of the job's writes before
	// the freeze (not in TotalNs).
	PreScanNs int64 `json:"pre_scan_ns,omitempty"`
	// Incremental dumps (Prev): the page data taken from the parent
	// instead of written, and why processes were written whole.
	IncrementalReusedBytes int64    `json:"incremental_reused_bytes,omitempty"`
	IncrementalFull        []string `json:"incremental_full,omitempty"`
	// Pages children share with their parent processes since a fork,
	// left out of the children's images (forkshared.go), and those
	// found shared at the freeze that were not any more once captured.
	ForkSharedBytes     int64 `json:"fork_shared_bytes,omitempty"`
	ForkSharedLostBytes int64 `json:"fork_shared_lost_bytes,omitempty"`
}

// writeStats writes s into the dump, now in place; it is informational,
// so a failure to write it does not fail the dump.
func writeStats(dir *images.Dir, s *Stats) {
	b, _ := json.MarshalIndent(s, "", "  ")
	dir.WriteStats(append(b, '\n'))
}

// stopped returns why ctx ended (context.Cause), or nil while it runs.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// waitGone waits until the killed tracee has exited, so that when gocr
// returns the process no longer runs (its parent still reaps it).
func waitGone(t *ptrace.Tracer, pid int) {
	for i := 0; i < 100; i++ {
		s, err := t.Wait(pid)
		if err != nil || s.Kind == ptrace.Exited || s.Kind == ptrace.Killed {
			return
		}
		t.Cont(pid, 0)
	}
}
