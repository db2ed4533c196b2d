//go:build linux

// Package dump checkpoints a process: it freezes it with ptrace, reads
// what /proc and ptrace show from outside, infects it with the parasite
// for what only the process itself can tell and for its memory, cures it,
// and writes the images. A dump that fails at any step leaves the process
// running exactly as it was and no image directory that looks complete.
package dump

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
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
}

// Run dumps the process tree opts selects into opts.Dir.
func Run(opts Options) (err error) {
	switch opts.PageTransfer {
	case "":
		opts.PageTransfer = "write"
	case "write", "splice":
	default:
		return fmt.Errorf("unknown page transfer %q: use write or splice", opts.PageTransfer)
	}
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

	dir, err := images.Create(opts.Dir)
	if err != nil {
		return fmt.Errorf("create image directory %s: %w", opts.Dir, err)
	}
	defer func() {
		if err != nil {
			dir.Abort()
		}
	}()

	start := time.Now()
	var stats Stats
	t := ptrace.NewTracer()
	defer t.Close()
	tree, err := freezeTree(t, root)
	stats.FreezeNs = time.Since(start).Nanoseconds()
	// From here on the processes are frozen; every error path releases
	// them as they were, with any signal they were about to take.
	released := false
	release := func() {
		if !released {
			released = true
			tree.release(t)
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
	frozen := time.Now()
	if err := tree.checkSelection(opts); err != nil {
		return err
	}

	collectStart := time.Now()
	states := make([]*state, len(tree.procs))
	for i, fp := range tree.procs {
		if fp.zombie {
			states[i] = &state{task: zombieTask(fp)}
			continue
		}
		if states[i], err = collect(t, fp.pid, fp); err != nil {
			return fmt.Errorf("dump pid %d: %w", fp.pid, err)
		}
	}
	if err := linkFiles(states); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if err := dumpMemfds(dir, states); err != nil {
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
	if err := captureAll(t, dir, states, mems, &stats, pageOptions{transfer: opts.PageTransfer, streams: opts.PageStreams}); err != nil {
		return err
	}
	stats.MemoryNs = time.Since(start).Nanoseconds()
	// Everything is captured and cured: with --leave-running the
	// processes go on now, while the images are synced.
	if opts.LeaveRunning {
		release()
		stats.FrozenNs = time.Since(frozen).Nanoseconds()
	}
	writeStart := time.Now()
	if err := writeImages(dir, states, mems, opts.Version); err != nil {
		return fmt.Errorf("dump pid %d: %w", root, err)
	}
	stats.WriteNs = time.Since(writeStart).Nanoseconds()
	if !opts.LeaveRunning {
		// The images are complete and synced: only now may the
		// processes go.
		released = true
		tree.kill(t)
		stats.FrozenNs = time.Since(frozen).Nanoseconds()
	}
	stats.TotalNs = time.Since(start).Nanoseconds()
	writeStats(opts.Dir, &stats)
	return nil
}

// captureAll captures every process's memory, two at a time: the page
// data of one moves while the other is infected or cured on the tracer
// thread, so both cores work. A process alone gets every CPU for its page
// streams; with two at a time, half each.
func captureAll(t *ptrace.Tracer, dir *images.Dir, states []*state, mems []*capturedMemory, stats *Stats, po pageOptions) error {
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
	po.cpus = max(1, runtime.NumCPU()/min(atOnce, max(withMemory, 1)))
	slots := make(chan struct{}, atOnce)
	for i, st := range states {
		if st.mm == nil {
			continue
		}
		slots <- struct{}{}
		mu.Lock()
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
			m, err := captureMemory(t, pid, dir, st, &ps, po)
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
}

func writeImages(dir *images.Dir, states []*state, mems []*capturedMemory, version string) error {
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
	var uts unix.Utsname
	unix.Uname(&uts)
	return dir.WriteInventory(&gocrpb.Inventory{
		FormatVersion:  images.FormatVersion,
		GocrVersion:    version,
		RootPid:        states[0].task.Pid,
		Pids:           pids,
		DumpTimeUnixNs: time.Now().UnixNano(),
		KernelRelease:  unix.ByteSliceToString(uts.Release[:]),
		Xcr0:           ptrace.XCR0(states[0].task.Threads[0].Xsave),
		PageSize:       uint64(os.Getpagesize()),
	})
}

// StatsFile is the file in the image directory that holds a dump's Stats
// as JSON.
const StatsFile = "stats-dump.json"

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
}

func writeStats(dir string, s *Stats) {
	b, _ := json.MarshalIndent(s, "", "  ")
	os.WriteFile(filepath.Join(dir, StatsFile), append(b, '\n'), 0o600)
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

func checkDumpable(pid int) error {
	status, err := proc.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, proc.ErrNoProcess) {
			return fmt.Errorf("no process with pid %d", pid)
		}
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	if status.Uid[0] != status.Uid[1] || status.Uid[1] != status.Uid[2] ||
		status.Gid[0] != status.Gid[1] || status.Gid[1] != status.Gid[2] {
		return fmt.Errorf("pid %d (%s) runs set-id (uids %v, gids %v): refusing to dump it", pid, status.Name, status.Uid[:3], status.Gid[:3])
	}
	// A restored process would run without its filter: gocr does not read
	// filters back (PTRACE_SECCOMP_GET_FILTER, man 2 ptrace) or install
	// them yet, and a sandbox silently dropped is worse than no dump.
	// Seccomp: 1 strict, 2 filter (Documentation/filesystems/proc.rst).
	if status.Seccomp != 0 {
		return fmt.Errorf("pid %d (%s) runs under seccomp (mode %d), which gocr cannot restore yet: refusing to dump it", pid, status.Name, status.Seccomp)
	}
	if ns, err := foreignNamespace(pid); err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, status.Name, err)
	} else if ns != "" {
		return fmt.Errorf("pid %d (%s) is in another %s namespace than gocr, which gocr cannot restore yet: refusing to dump it", pid, status.Name, ns)
	}
	if _, err := proc.Exe(pid); err != nil {
		return fmt.Errorf("pid %d (%s) has no executable (a kernel thread?): %w", pid, status.Name, err)
	}
	if status.TracerPid != 0 {
		return fmt.Errorf("pid %d (%s) is already traced by pid %d", pid, status.Name, status.TracerPid)
	}
	if status.State == 'Z' {
		return fmt.Errorf("pid %d (%s) is a zombie", pid, status.Name)
	}
	return nil
}

// foreignNamespace names the first namespace pid is in that gocr is not,
// or "" if it shares all of gocr's. A restore recreates processes in
// gocr's own namespaces, so anything else would come back changed (other
// PIDs, mounts, network). Two processes share a namespace exactly when
// their /proc/PID/ns links name the same inode (man 7 namespaces); a kind
// this kernel lacks has no link in either.
func foreignNamespace(pid int) (string, error) {
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"} {
		own, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			continue
		}
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			return "", fmt.Errorf("read its %s namespace: %w", ns, err)
		}
		if theirs != own {
			return ns, nil
		}
	}
	return "", nil
}

// state is everything collected from a frozen process.
type state struct {
	task  *gocrpb.Task
	mm    *gocrpb.Mm
	files *gocrpb.Files
	maps  []proc.Mapping
	vdso  uint64
}

func fileRef(path string) (*gocrpb.FileRef, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &gocrpb.FileRef{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}, nil
}

// requeue gives back the signals the freeze caught on their way to
// delivery: detaching cannot carry them from an event stop.
func requeue(t *ptrace.Tracer, tid int, sigs [][ptrace.SiginfoSize]byte) error {
	if len(sigs) == 0 {
		return nil
	}
	regs, err := t.GetRegs(tid)
	if err != nil {
		return err
	}
	insn, err := ptrace.FindSyscallInsn(tid)
	if err != nil {
		return err
	}
	if err := t.Requeue(tid, insn, sigs); err != nil {
		return err
	}
	if err := t.ReturnToEventStop(tid); err != nil {
		return err
	}
	return t.SetRegs(tid, &regs)
}

func collect(t *ptrace.Tracer, pid int, fr *frozenProc) (*state, error) {
	stat, err := proc.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	status, err := proc.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	task := &gocrpb.Task{
		Pid: int32(pid), Ppid: int32(stat.PPid), Pgid: int32(stat.Pgrp), Sid: int32(stat.Session),
		Comm: status.Name, Umask: status.Umask,
		Creds: &gocrpb.Creds{
			Ruid: status.Uid[0], Euid: status.Uid[1], Suid: status.Uid[2], Fsuid: status.Uid[3],
			Rgid: status.Gid[0], Egid: status.Gid[1], Sgid: status.Gid[2], Fsgid: status.Gid[3],
			Groups: status.Groups, CapInh: status.CapInh, CapPrm: status.CapPrm, CapEff: status.CapEff,
			CapBnd: status.CapBnd, CapAmb: status.CapAmb,
		},
	}
	if !status.HasUmask {
		return nil, fmt.Errorf("read umask: /proc/%d/status has no Umask line", pid)
	}
	if task.Personality, err = proc.ReadPersonality(pid); err != nil {
		return nil, err
	}
	if task.Cwd, err = proc.Cwd(pid); err != nil {
		return nil, err
	}
	if task.Root, err = proc.Root(pid); err != nil {
		return nil, err
	}
	for _, p := range []string{task.Cwd, task.Root} {
		if strings.HasSuffix(p, " (deleted)") {
			return nil, fmt.Errorf("cwd or root %q was deleted", p)
		}
	}
	limits, err := proc.ReadLimits(pid)
	if err != nil {
		return nil, err
	}
	for _, l := range limits {
		task.Rlimits = append(task.Rlimits, &gocrpb.Rlimit{Resource: uint32(l.Resource), Cur: l.Cur, Max: l.Max})
	}
	shared, err := t.PeekSiginfo(pid, true)
	if err != nil {
		return nil, err
	}
	for _, si := range shared {
		task.SharedPending = append(task.SharedPending, sigInfo(si))
	}

	for _, tid := range fr.tids {
		th, err := collectThread(t, tid, fr.sigs[tid])
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		task.Threads = append(task.Threads, th)
	}

	mm, maps, vdso, err := collectMm(pid, &stat)
	if err != nil {
		return nil, err
	}
	files, err := collectFiles(pid)
	if err != nil {
		return nil, err
	}
	return &state{task: task, mm: mm, files: files, maps: maps, vdso: vdso}, nil
}

func sigInfo(si [128]byte) *gocrpb.SigInfo {
	// siginfo_t starts with int si_signo (include/uapi/asm-generic/siginfo.h).
	return &gocrpb.SigInfo{Signo: uint32(si[0]) | uint32(si[1])<<8 | uint32(si[2])<<16 | uint32(si[3])<<24, Siginfo: si[:]}
}

func collectThread(t *ptrace.Tracer, tid int, sigs [][ptrace.SiginfoSize]byte) (*gocrpb.Thread, error) {
	snap, err := t.Snapshot(tid)
	if err != nil {
		return nil, err
	}
	th := &gocrpb.Thread{
		Tid: int32(tid), Regs: ptrace.RegsToProto(&snap.Regs), Xsave: snap.Xstate,
		XstateBv: ptrace.XstateBV(snap.Xstate), Sigmask: snap.Sigmask,
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", tid, tid)); err == nil {
		th.Comm = strings.TrimSuffix(string(comm), "\n")
	}
	for _, si := range snap.Pending {
		th.Pending = append(th.Pending, sigInfo(si))
	}
	// Signals the freeze caught on their way to delivery were already
	// dequeued; they are pending again in the image, before the rest.
	if len(sigs) > 0 {
		caught := make([]*gocrpb.SigInfo, 0, len(sigs)+len(th.Pending))
		for _, si := range sigs {
			caught = append(caught, sigInfo(si))
		}
		th.Pending = append(caught, th.Pending...)
	}
	if rseq := snap.Rseq; rseq.AbiPointer != 0 {
		th.Rseq = &gocrpb.Rseq{AbiPointer: rseq.AbiPointer, AbiSize: rseq.AbiSize, Flags: rseq.Flags, Signature: rseq.Signature}
	}
	if th.RobustList, th.RobustListLen, err = getRobustList(tid); err != nil {
		return nil, fmt.Errorf("get_robust_list %d: %w", tid, err)
	}
	return th, nil
}

func collectMm(pid int, stat *proc.Stat) (*gocrpb.Mm, []proc.Mapping, uint64, error) {
	maps, err := proc.ReadMaps(pid)
	if err != nil {
		return nil, nil, 0, err
	}
	auxv, err := proc.ReadAuxv(pid)
	if err != nil {
		return nil, nil, 0, err
	}
	exe, err := proc.Exe(pid)
	if err != nil {
		return nil, nil, 0, err
	}
	if strings.HasSuffix(exe, " (deleted)") {
		return nil, nil, 0, fmt.Errorf("executable %s was deleted", strings.TrimSuffix(exe, " (deleted)"))
	}
	exeRef, err := fileRef(exe)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("executable: %w", err)
	}
	brk, err := currentBrk(stat, maps)
	if err != nil {
		return nil, nil, 0, err
	}
	mm := &gocrpb.Mm{
		Pid: int32(pid), StartCode: stat.StartCode, EndCode: stat.EndCode, StartData: stat.StartData,
		EndData: stat.EndData, StartBrk: stat.StartBrk, Brk: brk, StartStack: stat.StartStack,
		ArgStart: stat.ArgStart, ArgEnd: stat.ArgEnd, EnvStart: stat.EnvStart, EnvEnd: stat.EnvEnd,
		Auxv: auxv, Exe: exeRef,
	}
	var vdso uint64
	refs := map[string]*gocrpb.FileRef{}
	for _, m := range maps {
		v, err := vmaFromMapping(m, refs)
		if err != nil {
			return nil, nil, 0, err
		}
		if v == nil {
			continue
		}
		if v.Kind == gocrpb.VmaKind_VMA_VDSO {
			vdso = v.Start
		}
		mm.Vmas = append(mm.Vmas, v)
	}
	if vdso == 0 {
		return nil, nil, 0, fmt.Errorf("process has no [vdso] mapping")
	}
	return mm, maps, vdso, nil
}

// currentBrk is the program break. /proc/PID/stat shows start_brk but not
// brk itself; the [heap] mapping ends at brk rounded up to a page
// (mm/mmap.c brk), which is what a restore can reproduce.
func currentBrk(stat *proc.Stat, maps []proc.Mapping) (uint64, error) {
	for _, m := range maps {
		if m.Path == "[heap]" {
			return m.End, nil
		}
	}
	return stat.StartBrk, nil
}

func vmaFromMapping(m proc.Mapping, refs map[string]*gocrpb.FileRef) (*gocrpb.Vma, error) {
	v := &gocrpb.Vma{Start: m.Start, End: m.End, Pgoff: m.Offset, Prot: uint32(m.Prot), Name: m.Path, VmFlags: m.VmFlags}
	switch {
	case m.Path == "[vdso]":
		v.Kind = gocrpb.VmaKind_VMA_VDSO
	case m.Path == "[vvar]":
		v.Kind = gocrpb.VmaKind_VMA_VVAR
	case m.Path == "[vvar_vclock]":
		v.Kind = gocrpb.VmaKind_VMA_VVAR_VCLOCK
	case m.Path == "[vsyscall]":
		return nil, nil
	case m.HasVmFlag("ht"):
		return nil, fmt.Errorf("mapping %#x-%#x: hugetlbfs mappings are not supported yet", m.Start, m.End)
	case m.HasVmFlag("io") || m.HasVmFlag("pf"):
		return nil, fmt.Errorf("mapping %#x-%#x %s: device (I/O or PFN) mappings cannot be checkpointed", m.Start, m.End, m.Path)
	case m.Inode == 0 && (m.Path == "" || m.Path == "[heap]" || m.Path == "[stack]" || strings.HasPrefix(m.Path, "[anon:")):
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_ANON_SHARED
			v.ShmemId = m.Inode
		} else {
			v.Kind = gocrpb.VmaKind_VMA_ANON_PRIVATE
		}
	case m.Shared && (strings.HasPrefix(m.Path, "/dev/zero") || strings.HasPrefix(m.Path, "/SYSV")):
		// MAP_SHARED|MAP_ANONYMOUS shows as "/dev/zero (deleted)"
		// (mm/shmem.c shmem_zero_setup).
		if strings.HasPrefix(m.Path, "/SYSV") {
			return nil, fmt.Errorf("mapping %#x-%#x: System V shared memory is not supported yet", m.Start, m.End)
		}
		v.Kind = gocrpb.VmaKind_VMA_ANON_SHARED
		v.ShmemId = m.Inode
	case isMemfdPath(m.Path):
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_FILE_SHARED
		} else {
			v.Kind = gocrpb.VmaKind_VMA_FILE_PRIVATE
		}
		v.MemfdId = m.Inode
	case strings.HasPrefix(m.Path, "/"):
		if m.Deleted {
			return nil, fmt.Errorf("mapping %#x-%#x: file %s was deleted", m.Start, m.End, m.Path)
		}
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_FILE_SHARED
		} else {
			v.Kind = gocrpb.VmaKind_VMA_FILE_PRIVATE
		}
		ref := refs[m.Path]
		if ref == nil {
			var err error
			if ref, err = fileRef(m.Path); err != nil {
				return nil, fmt.Errorf("mapping %#x-%#x: %w", m.Start, m.End, err)
			}
			refs[m.Path] = ref
		}
		if ref.Ino != m.Inode {
			return nil, fmt.Errorf("mapping %#x-%#x: file %s was replaced since it was mapped", m.Start, m.End, m.Path)
		}
		v.File = ref
	default:
		return nil, fmt.Errorf("mapping %#x-%#x %q: unsupported kind of mapping", m.Start, m.End, m.Path)
	}
	return v, nil
}

func collectFiles(pid int) (*gocrpb.Files, error) {
	fds, err := proc.ListFds(pid)
	if err != nil {
		return nil, err
	}
	files := &gocrpb.Files{Pid: int32(pid)}
	for _, fd := range fds {
		target, err := proc.FdTarget(pid, fd)
		if err != nil {
			return nil, err
		}
		info, err := proc.ReadFdInfo(pid, fd)
		if err != nil {
			return nil, err
		}
		f := &gocrpb.Fd{
			Fd: int32(fd), Flags: info.Flags &^ unix.O_CLOEXEC, Pos: info.Pos,
			Cloexec: info.Flags&unix.O_CLOEXEC != 0, SharedWith: -1, Description: target,
		}
		// What kind of file: stat through /proc/PID/fd/N, which follows
		// to the open file itself (man 5 proc).
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join("/proc", fmt.Sprint(pid), "fd", fmt.Sprint(fd)), &st); err != nil {
			return nil, fmt.Errorf("fd %d (%s): %w", fd, target, err)
		}
		mode := st.Mode & unix.S_IFMT
		deleted := strings.HasSuffix(target, " (deleted)")
		switch {
		case mode == unix.S_IFREG && isMemfdPath(target):
			f.Kind = gocrpb.FdKind_FD_MEMFD
			f.MemfdId = st.Ino
		case mode == unix.S_IFREG && strings.HasPrefix(target, "/") && !deleted:
			f.Kind = gocrpb.FdKind_FD_REGULAR
		case mode == unix.S_IFDIR && strings.HasPrefix(target, "/") && !deleted:
			f.Kind = gocrpb.FdKind_FD_DIRECTORY
		case mode == unix.S_IFCHR && strings.HasPrefix(target, "/dev/") && !isTTY(st) && !deleted:
			f.Kind = gocrpb.FdKind_FD_CHARDEV
		case target == "anon_inode:[eventfd]":
			f.Kind = gocrpb.FdKind_FD_EVENTFD
			e, err := proc.ReadEventfd(pid, fd)
			if err != nil {
				return nil, err
			}
			f.EventfdCount, f.EventfdSemaphore = e.Count, e.Semaphore
		case target == "anon_inode:[eventpoll]":
			f.Kind = gocrpb.FdKind_FD_EPOLL
			ws, err := proc.ReadEpollWatches(pid, fd)
			if err != nil {
				return nil, err
			}
			for _, w := range ws {
				f.EpollWatches = append(f.EpollWatches, &gocrpb.EpollWatch{Tfd: int32(w.Tfd), Events: w.Events, Data: w.Data})
			}
		case strings.HasPrefix(target, "pipe:["):
			f.Kind = gocrpb.FdKind_FD_PIPE
			f.PipeId = st.Ino
		case mode == unix.S_IFIFO && strings.HasPrefix(target, "/") && !deleted:
			f.Kind = gocrpb.FdKind_FD_FIFO
			f.PipeId = st.Ino
		case target == "anon_inode:[signalfd]":
			f.Kind = gocrpb.FdKind_FD_SIGNALFD
			if f.SignalfdMask, err = proc.ReadSignalfd(pid, fd); err != nil {
				return nil, err
			}
		case target == "anon_inode:[timerfd]":
			f.Kind = gocrpb.FdKind_FD_TIMERFD
			// A periodic timer that fired and was not read is brought
			// up to date (ticks, next expiry) only by read or
			// timerfd_gettime (fs/timerfd.c timerfd_gettime,
			// hrtimer_forward); fdinfo alone shows it stale and
			// disarmed. gettime on gocr's own handle of the same file
			// does that without touching the process.
			if err := refreshTimerfd(pid, fd); err != nil {
				return nil, fmt.Errorf("fd %d: timerfd: %w", fd, err)
			}
			tf, err := proc.ReadTimerfd(pid, fd)
			if err != nil {
				return nil, err
			}
			f.TimerfdClockid, f.TimerfdTicks = int32(tf.ClockID), tf.Ticks
			f.TimerfdValueNs, f.TimerfdIntervalNs = tf.ValueNs, tf.IntervalNs
		case target == "anon_inode:inotify":
			f.Kind = gocrpb.FdKind_FD_INOTIFY
			ws, err := proc.ReadInotify(pid, fd)
			if err != nil {
				return nil, err
			}
			for _, w := range ws {
				path, err := inotifyPath(w)
				if err != nil {
					return nil, fmt.Errorf("fd %d: inotify watch %d: %w", fd, w.Wd, err)
				}
				f.InotifyWatches = append(f.InotifyWatches, &gocrpb.InotifyWatch{
					Wd: int32(w.Wd), Path: path, Mask: w.Mask, IgnoredMask: w.IgnoredMask})
			}
		case fd <= 2:
			// stdio joined to something outside the dump (a terminal,
			// a pipe from the shell): the restore gives its own.
			f.Kind = gocrpb.FdKind_FD_INHERIT
		case deleted:
			return nil, fmt.Errorf("fd %d: file %s was deleted (not supported yet)", fd, strings.TrimSuffix(target, " (deleted)"))
		default:
			return nil, fmt.Errorf("fd %d (%s): this kind of file is not supported yet", fd, target)
		}
		// Every fd but inherited stdio records the file's identity:
		// linkFiles finds shared open file descriptions among fds of
		// the same (dev, ino), anonymous inodes (eventfd, epoll, ...)
		// included.
		switch f.Kind {
		case gocrpb.FdKind_FD_INHERIT:
		default:
			f.File = &gocrpb.FileRef{Path: target, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}
		}
		files.Fds = append(files.Fds, f)
	}
	open := map[int32]bool{}
	for _, f := range files.Fds {
		open[f.Fd] = true
	}
	for _, f := range files.Fds {
		for _, w := range f.EpollWatches {
			// An epoll item outlives its fd while another fd keeps the
			// file open (man 7 epoll, Q6); it could not be re-added.
			if !open[w.Tfd] {
				return nil, fmt.Errorf("epoll fd %d watches fd %d, which is closed: not supported", f.Fd, w.Tfd)
			}
		}
	}
	return files, nil
}

func refreshTimerfd(pid, fd int) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	tfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	var cur unix.ItimerSpec
	return unix.TimerfdGettime(tfd, &cur)
}

// isTTY: terminal majors are 4 (tty), 5 (/dev/tty, ptmx) and 136-143
// (Unix98 pts), Documentation/admin-guide/devices.txt.
func isTTY(st unix.Stat_t) bool {
	major := unix.Major(st.Rdev)
	return major == 4 || major == 5 || (major >= 136 && major <= 143)
}
