//go:build linux

package restorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

const pageSize = 4096

// sigevThreadID is SIGEV_THREAD_ID (include/uapi/asm-generic/siginfo.h).
const sigevThreadID = 4

// plan is the restore plan for one process, built from its images and
// encoded into the flat layout the restorer reads (restorer/c/abi.h).
type plan struct {
	args    rstArgs
	vmas    []rstVma
	pages   []rstPages
	fds     []rstFd
	sigs    []rstSiginfo
	threads []rstThread
	fixups  []rstFixup
	cttyFd  int32 // rst_proc.ctty_fd
	timers  []rstPosixTimer
	rlimits []rstRlimit
	groups  []uint32
	// pageFiles are the fds of the page images rstPages.File indexes:
	// this dump's streams first, in order, then a parent dump's
	// (chain.go).
	pageFiles []int32
	// inherit are the page ranges an incremental dump takes from its
	// parent (PageRange.from_parent), for the chain to resolve.
	inherit []*gocrpb.PageRange
	auxv    []byte
	strtab  bytes.Buffer
	strOff  map[string]uint32
	offset  uint32           // where the plan sits in the restore mapping
	saved   map[uint64]int32 // saved file id: the source of its copy (savedfiles.go)

	// Attribute calls (attrs.go), and what each sets, for error messages.
	calls     []rstCall
	callNames []string

	forkShared []rstSpan // pages of inherited mappings that are the parent's (stage.go)

	// The page files, their data not yet verified (pagesums.go), and
	// the checksums the restorer verifies it with: by page file, and
	// by chunk.
	unverified []unverifiedPages
	sumFiles   []rstSumFile
	chunkSums  []rstChunkSum
	// pageErrors, by page file, name a bad chunk the restorer found.
	pageErrors []func() error
}

func (p *plan) str(s string) uint32 {
	if off, ok := p.strOff[s]; ok {
		return off
	}
	off := uint32(p.strtab.Len())
	p.strtab.WriteString(s)
	p.strtab.WriteByte(0)
	p.strOff[s] = off
	return off
}

// madvFlags maps smaps VmFlags mnemonics (fs/proc/task_mmu.c
// show_smap_vma_flags) to what the restorer must re-apply.
var madvFlags = map[string]uint32{
	"hg": rstMadvHugepage, "nh": rstMadvNohugepage, "dc": rstMadvDontfork,
	"dd": rstMadvDontdump, "wf": rstMadvWipeonfork, "lo": rstMadvMlock,
	"lf": rstMadvMlockOnfault, "sr": rstMadvSequential, "rr": rstMadvRandom, "mg": rstMadvMergeable,
}

var vmaKinds = map[gocrpb.VmaKind]uint32{
	gocrpb.VmaKind_VMA_ANON_PRIVATE: rstVmaAnonPrivate, gocrpb.VmaKind_VMA_ANON_SHARED: rstVmaAnonShared,
	gocrpb.VmaKind_VMA_FILE_PRIVATE: rstVmaFilePrivate, gocrpb.VmaKind_VMA_FILE_SHARED: rstVmaFileShared,
	gocrpb.VmaKind_VMA_VDSO: rstVmaVdso, gocrpb.VmaKind_VMA_VVAR: rstVmaVvar,
	gocrpb.VmaKind_VMA_VVAR_VCLOCK: rstVmaVvarVclock, gocrpb.VmaKind_VMA_SYSV_SHM: rstVmaSysvShm,
}

// newPlan builds a process's restore plan. ranges are its page map;
// dataSizes[s] is how many data bytes stream s's page image holds (each
// must equal the pages its ranges name), dataOffs[s] where they start in
// the file the restorer reads them from (images.Data).
func newPlan(task *gocrpb.Task, mm *gocrpb.Mm, ranges []*gocrpb.PageRange, dataSizes, dataOffs []int64) (*plan, error) {
	p := &plan{strOff: map[string]uint32{}}
	a := &p.args
	a.Magic = rstMagic
	a.Version = rstVersion
	a.Pid = task.Pid
	if len(dataOffs) != len(dataSizes) {
		return nil, fmt.Errorf("%d page streams with %d data offsets", len(dataSizes), len(dataOffs))
	}
	if len(dataSizes) < 1 || len(dataSizes) > rstPageStreamsMax {
		return nil, fmt.Errorf("%d page streams, want 1..%d", len(dataSizes), rstPageStreamsMax)
	}
	a.NrPageStreams = uint32(len(dataSizes))

	for i, v := range mm.Vmas {
		kind, ok := vmaKinds[v.Kind]
		if !ok {
			return nil, fmt.Errorf("mapping %d (%#x-%#x): unknown kind %v", i, v.Start, v.End, v.Kind)
		}
		if v.Start >= v.End || v.Start%pageSize != 0 || v.End%pageSize != 0 {
			return nil, fmt.Errorf("mapping %d: bad bounds %#x-%#x", i, v.Start, v.End)
		}
		if i > 0 && v.Start < mm.Vmas[i-1].End {
			return nil, fmt.Errorf("mapping %d (%#x-%#x) overlaps the one before", i, v.Start, v.End)
		}
		rv := rstVma{Start: v.Start, End: v.End, Pgoff: v.Pgoff, Prot: v.Prot, Kind: kind}
		for _, f := range v.VmFlags {
			rv.Madv |= madvFlags[f]
			switch f {
			case "gd":
				rv.MmapFlags |= unix.MAP_GROWSDOWN
			case "nr":
				rv.MmapFlags |= unix.MAP_NORESERVE
			}
		}
		if (kind == rstVmaFilePrivate || kind == rstVmaFileShared) && v.MemfdId == 0 {
			if v.File == nil {
				return nil, fmt.Errorf("mapping %d (%#x-%#x): file mapping without a file", i, v.Start, v.End)
			}
			rv.PathOff = p.str(v.File.Path)
			rv.OpenFlags = unix.O_RDONLY
			if kind == rstVmaFileShared && hasFlag(v.VmFlags, "mw") {
				rv.OpenFlags = unix.O_RDWR
			}
		}
		if kind == rstVmaSysvShm {
			rv.Shmid = v.SysvShmId
			rv.ShmFlags = sysvShmFlags(v)
		}
		p.vmas = append(p.vmas, rv)
	}
	// How each VMA is first mapped decides whether the kernel accounts it
	// as writable (VM_ACCOUNT, smaps "ac"; mm/mmap.c accountable_mapping),
	// and two neighbours that differ only in that never merge. So an
	// accounted VMA is mapped writable and mprotected afterwards, exactly
	// as its process did, and an unaccounted one that needs its pages
	// written in is mapped MAP_NORESERVE, which writes without accounting.
	// Then /proc/PID/maps comes back with the dumped boundaries.
	hasPages := map[int]bool{}
	for _, r := range ranges {
		if i := findVmaIndex(mm.Vmas, r.Vaddr); i >= 0 {
			hasPages[i] = true
		}
	}
	for i, v := range mm.Vmas {
		rv := &p.vmas[i]
		rv.MapProt = v.Prot
		switch {
		case rv.Kind == rstVmaSysvShm:
			rv.MapProt = sysvShmProt(rv.ShmFlags)
		case rv.Kind == rstVmaFileShared || rv.Kind >= rstVmaVdso:
		case hasFlag(v.VmFlags, "ac"):
			rv.MapProt |= unix.PROT_WRITE
		case hasPages[i]:
			rv.MapProt |= unix.PROT_WRITE
			// A shared mapping is never accounted, and MAP_NORESERVE
			// would show on it as "nr" (mm/mmap.c accountable_mapping).
			if rv.Kind != rstVmaAnonShared {
				rv.MmapFlags |= unix.MAP_NORESERVE
			}
		}
	}

	// Every page range must lie inside a mapping that takes pages, and
	// every stream's ranges must fill its page image exactly.
	offs := make([]uint64, len(dataSizes))
	for i, r := range ranges {
		if r.NrPages == 0 || r.Vaddr%pageSize != 0 {
			return nil, fmt.Errorf("page range %d: bad range %#x+%d pages", i, r.Vaddr, r.NrPages)
		}
		// Compared in pages: r.Vaddr + r.NrPages*pageSize wraps for a
		// huge NrPages, and a wrapped end passed this check while adding
		// nothing (NrPages*pageSize mod 2^64) to its stream's offset.
		// findVma's mapping holds r.Vaddr, so v.End-r.Vaddr cannot wrap.
		v := findVma(mm.Vmas, r.Vaddr)
		if v == nil || r.NrPages > (v.End-r.Vaddr)/pageSize || v.Kind == gocrpb.VmaKind_VMA_FILE_SHARED || v.Kind >= gocrpb.VmaKind_VMA_VDSO {
			return nil, fmt.Errorf("page range %d (%#x+%d pages) is not inside a mapping that holds pages", i, r.Vaddr, r.NrPages)
		}
		if r.FromParent {
			p.inherit = append(p.inherit, r)
			continue
		}
		if int(r.Stream) >= len(dataSizes) {
			return nil, fmt.Errorf("page range %d (%#x+%d pages) is in page stream %d, the dump has %d", i, r.Vaddr, r.NrPages, r.Stream, len(dataSizes))
		}
		p.pages = append(p.pages, rstPages{Vaddr: r.Vaddr, NrPages: r.NrPages,
			FileOff: uint64(dataOffs[r.Stream]) + offs[r.Stream], Stream: r.Stream, File: r.Stream})
		offs[r.Stream] += r.NrPages * pageSize
	}
	for s, size := range dataSizes {
		if offs[s] != uint64(size) {
			return nil, fmt.Errorf("page map lists %d pages in stream %d, its page image holds %d bytes", offs[s]/pageSize, s, size)
		}
	}

	a.ExePathOff = p.str(mm.Exe.GetPath())
	a.Mm = rstMmMap{
		StartCode: mm.StartCode, EndCode: mm.EndCode, StartData: mm.StartData, EndData: mm.EndData,
		StartBrk: mm.StartBrk, Brk: mm.Brk, StartStack: mm.StartStack, ArgStart: mm.ArgStart,
		ArgEnd: mm.ArgEnd, EnvStart: mm.EnvStart, EnvEnd: mm.EnvEnd,
	}
	p.auxv = mm.Auxv
	// saved_auxv holds AT_VECTOR_SIZE longs (include/linux/mm_types.h);
	// PR_SET_MM_MAP refuses more.
	if len(p.auxv) > 2*(2+20+1)*8*2 || len(p.auxv)%16 != 0 {
		return nil, fmt.Errorf("auxv of %d bytes is malformed", len(p.auxv))
	}

	if len(task.Threads) == 0 || task.Threads[0].Tid != task.Pid {
		return nil, fmt.Errorf("the first thread must be the thread-group leader %d", task.Pid)
	}
	timersQueued, timerQueued := queuedTimerSignals(task)
	seen := map[int32]bool{}
	for _, th := range task.Threads {
		if th.Tid <= 0 || seen[th.Tid] {
			return nil, fmt.Errorf("thread id %d is invalid or repeated", th.Tid)
		}
		seen[th.Tid] = true
		if th.Regs == nil {
			return nil, fmt.Errorf("thread %d: no registers", th.Tid)
		}
		rt := rstThread{Tid: th.Tid, CommOff: p.str(threadComm(task, th)), ClearChildTid: th.ClearChildTid,
			RobustList: th.RobustList, RobustListLen: th.RobustListLen, AltstackFlags: ssDisable}
		if r := th.Rseq; r != nil {
			rt.RseqPtr, rt.RseqLen, rt.RseqSig = r.AbiPointer, r.AbiSize, r.Signature
		}
		if ss := th.Sigaltstack; ss != nil {
			rt.AltstackSp, rt.AltstackFlags, rt.AltstackSize = ss.Sp, ss.Flags, ss.Size
		}
		if err := planSched(&rt, th.Sched); err != nil {
			return nil, fmt.Errorf("thread %d: %w", th.Tid, err)
		}
		p.threads = append(p.threads, rt)
		for _, si := range th.Pending {
			if timerQueued[si] {
				continue
			}
			s, err := siginfo(si, th.Tid)
			if err != nil {
				return nil, err
			}
			p.sigs = append(p.sigs, s)
		}
	}
	a.ThreadStack = threadStack
	for _, sa := range task.Sigactions {
		if sa.Signo < 1 || sa.Signo > rstNsig {
			return nil, fmt.Errorf("sigaction for invalid signal %d", sa.Signo)
		}
		a.Sigactions[sa.Signo-1] = rstSigaction{Handler: sa.Handler, Flags: sa.Flags, Restorer: sa.Restorer, Mask: sa.Mask}
	}
	for _, it := range task.Itimers {
		if it.Which > unix.ITIMER_PROF {
			return nil, fmt.Errorf("itimer %d: invalid", it.Which)
		}
		a.Itimers[it.Which] = rstItimer{
			IntervalSec: it.IntervalUs / 1e6, IntervalUsec: it.IntervalUs % 1e6,
			ValueSec: it.ValueUs / 1e6, ValueUsec: it.ValueUs % 1e6,
		}
	}
	a.Personality = task.Personality
	a.Umask = task.Umask
	a.CwdOff = p.str(task.Cwd)
	a.RootOff = p.str(task.Root)
	a.CommOff = p.str(task.Comm)
	if f := task.Flags; f != nil {
		a.PdeathSig = f.PdeathSignal
		a.Dumpable = 0
		if f.Dumpable {
			a.Dumpable = 1
		}
		if f.ChildSubreaper {
			a.ChildSubreaper = 1
		}
		if f.NoNewPrivs {
			a.NoNewPrivs = 1
		}
	} else {
		a.Dumpable = 1
	}
	a.Mdwe = task.GetAttrs().GetMdwe()
	if c := task.Creds; c != nil {
		// Every thread sets them all, as root too: a root process
		// may have other groups than gocr, and fewer capabilities.
		a.SetCreds = 1
		a.Uids = [4]uint32{c.Ruid, c.Euid, c.Suid, c.Fsuid}
		a.Gids = [4]uint32{c.Rgid, c.Egid, c.Sgid, c.Fsgid}
		p.groups = c.Groups
		last, err := capLastCap()
		if err != nil {
			return nil, err
		}
		// Capabilities this kernel does not have cannot be held; a
		// bounding set names every one its kernel had.
		known := uint64(1)<<(last+1) - 1
		if unknown := (c.CapEff | c.CapPrm | c.CapInh | c.CapAmb) &^ known; unknown != 0 {
			return nil, fmt.Errorf("the process holds capabilities %#x this kernel does not have (its last is %d)", unknown, last)
		}
		a.CapEff, a.CapPrm, a.CapInh, a.CapAmb = c.CapEff, c.CapPrm, c.CapInh, c.CapAmb
		a.CapBnd = c.CapBnd & known
		a.Securebits = c.Securebits
		a.CapLast = uint32(last)
	}
	for _, si := range task.SharedPending {
		if timerQueued[si] {
			continue
		}
		s, err := siginfo(si, 0)
		if err != nil {
			return nil, err
		}
		p.sigs = append(p.sigs, s)
	}
	// /proc/PID/timers lists the newest timer first (the kernel adds
	// each to the head of its list, kernel/time/posix-timers.c), so
	// creating them from last to first lists them as before.
	for i := len(task.PosixTimers) - 1; i >= 0; i-- {
		t := task.PosixTimers[i]
		if t.Notify&sigevThreadID != 0 && !seen[t.NotifyTid] {
			return nil, fmt.Errorf("POSIX timer %d notifies thread %d, which is not in the process", t.Id, t.NotifyTid)
		}
		if t.ValueNs < 0 || t.IntervalNs < 0 {
			return nil, fmt.Errorf("POSIX timer %d: negative time", t.Id)
		}
		rt := rstPosixTimer{ID: t.Id, ClockID: t.ClockId, Notify: t.Notify, Signo: t.Signo,
			Sigval: t.Sigval, NotifyTid: t.NotifyTid, ValueNs: t.ValueNs, IntervalNs: t.IntervalNs}
		if timersQueued[t.Id] {
			rt.Flags = rstTimerSignalQueued
		}
		p.timers = append(p.timers, rt)
	}
	for _, rl := range task.Rlimits {
		if rl.Resource >= rlimNlimits {
			return nil, fmt.Errorf("rlimit %d: unknown resource", rl.Resource)
		}
		p.rlimits = append(p.rlimits, rstRlimit{Resource: rl.Resource, Cur: rl.Cur, Max: rl.Max})
	}
	if err := p.planAttrs(task); err != nil {
		return nil, err
	}
	return p, nil
}

// Scheduling policies and flags the plan carries (include/uapi/linux/sched.h).
const (
	schedFlagResetOnFork = 0x01
	minNice, maxNice     = -20, 19
	maxRtPriority        = 99 // MAX_RT_PRIO-1 (include/linux/sched/prio.h)
)

// planSched puts a thread's scheduling in its plan; an image from before
// it was recorded leaves the thread as it is created.
func planSched(rt *rstThread, s *gocrpb.Sched) error {
	if s == nil {
		return nil
	}
	rt.SchedSet = 1
	switch s.Policy {
	case unix.SCHED_NORMAL, unix.SCHED_BATCH, unix.SCHED_IDLE:
		if s.RtPriority != 0 {
			return fmt.Errorf("policy %d with RT priority %d", s.Policy, s.RtPriority)
		}
	case unix.SCHED_FIFO, unix.SCHED_RR:
		if s.RtPriority < 1 || s.RtPriority > maxRtPriority {
			return fmt.Errorf("RT priority %d is out of range", s.RtPriority)
		}
	default:
		return fmt.Errorf("scheduling policy %d is not restored", s.Policy)
	}
	if s.Nice < minNice || s.Nice > maxNice {
		return fmt.Errorf("nice %d is out of range", s.Nice)
	}
	rt.SchedPolicy, rt.SchedNice, rt.SchedPriority = s.Policy, s.Nice, s.RtPriority
	if s.ResetOnFork {
		rt.SchedFlags = schedFlagResetOnFork
	}
	if len(s.CpuAffinity) > len(rt.CPUMask) {
		return fmt.Errorf("a CPU affinity mask of %d bytes, the restorer takes %d", len(s.CpuAffinity), len(rt.CPUMask))
	}
	copy(rt.CPUMask[:], s.CpuAffinity)
	if rt.CPUMask == [rstCPUMaskBytes]byte{} {
		return fmt.Errorf("an empty CPU affinity mask")
	}
	return nil
}

// capLastCap is this kernel's highest capability number (man 7
// capabilities, /proc/sys/kernel/cap_last_cap).
func capLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("/proc/sys/kernel/cap_last_cap: %q is not a capability number", b)
	}
	return n, nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func findVma(vmas []*gocrpb.Vma, addr uint64) *gocrpb.Vma {
	if i := findVmaIndex(vmas, addr); i >= 0 {
		return vmas[i]
	}
	return nil
}

func findVmaIndex(vmas []*gocrpb.Vma, addr uint64) int {
	i := sort.Search(len(vmas), func(i int) bool { return vmas[i].End > addr })
	if i < len(vmas) && vmas[i].Start <= addr {
		return i
	}
	return -1
}

// threadComm is a thread's name; images from before per-thread names carry
// only the process's.
func threadComm(task *gocrpb.Task, th *gocrpb.Thread) string {
	if th.Comm != "" {
		return th.Comm
	}
	return task.Comm
}

func siginfo(si *gocrpb.SigInfo, tid int32) (rstSiginfo, error) {
	var s rstSiginfo
	if si.Signo < 1 || si.Signo > rstNsig || len(si.Siginfo) != len(s.Info) {
		return s, fmt.Errorf("pending signal %d: malformed siginfo", si.Signo)
	}
	s.Signo = si.Signo
	s.Tid = tid
	copy(s.Info[:], si.Siginfo)
	return s, nil
}

// encode lays the plan out: header, arrays, string table, each 8-byte
// aligned, the whole rounded to a page.
func (p *plan) encode() ([]byte, error) {
	var body bytes.Buffer
	hdr := binary.Size(p.args)
	place := func(v any, n int) uint32 {
		for (hdr+body.Len())%8 != 0 {
			body.WriteByte(0)
		}
		off := uint32(hdr + body.Len())
		if n > 0 {
			binary.Write(&body, binary.LittleEndian, v)
		}
		return off
	}
	a := &p.args
	a.NrVmas, a.VmasOff = uint32(len(p.vmas)), place(p.vmas, len(p.vmas))
	a.NrPages, a.PagesOff = uint32(len(p.pages)), place(p.pages, len(p.pages))
	a.NrFds, a.FdsOff = uint32(len(p.fds)), place(p.fds, len(p.fds))
	a.NrSiginfo, a.SiginfoOff = uint32(len(p.sigs)), place(p.sigs, len(p.sigs))
	a.NrRlimits, a.RlimitsOff = uint32(len(p.rlimits)), place(p.rlimits, len(p.rlimits))
	a.NrThreads, a.ThreadsOff = uint32(len(p.threads)), place(p.threads, len(p.threads))
	a.NrFixups, a.FixupsOff = uint32(len(p.fixups)), place(p.fixups, len(p.fixups))
	a.NrPosixTimers, a.PosixTimersOff = uint32(len(p.timers)), place(p.timers, len(p.timers))
	a.NrCalls, a.CallsOff = uint32(len(p.calls)), place(p.calls, len(p.calls))
	a.NrForkShared, a.ForkSharedOff = uint32(len(p.forkShared)), place(p.forkShared, len(p.forkShared))
	a.NrGroups, a.GroupsOff = uint32(len(p.groups)), place(p.groups, len(p.groups))
	a.NrPageFiles, a.PageFilesOff = uint32(len(p.pageFiles)), place(p.pageFiles, len(p.pageFiles))
	p.encodeSums(place)
	a.AuxvSize, a.AuxvOff = uint32(len(p.auxv)), place(p.auxv, len(p.auxv))
	a.StrtabOff = place(p.strtab.Bytes(), p.strtab.Len())
	total := hdr + body.Len()
	total = (total + pageSize - 1) &^ (pageSize - 1)
	if total > 1<<31 {
		return nil, fmt.Errorf("restore plan of %d bytes is too large", total)
	}
	a.Size = uint32(total)
	var out bytes.Buffer
	out.Grow(total)
	if err := binary.Write(&out, binary.LittleEndian, a); err != nil {
		return nil, err
	}
	out.Write(body.Bytes())
	for out.Len() < total {
		out.WriteByte(0)
	}
	return out.Bytes(), nil
}
