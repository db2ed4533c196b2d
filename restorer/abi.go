//go:build linux

package restorer

import "golang.org/x/sys/unix"

// The restore plan, mirrored from restorer/c/abi.h. encoding/binary lays a
// struct out field after field with no padding, so these structs carry the
// C side's padding explicitly; abi_test.go checks every field offset
// against the _Static_asserts in abi.h (the `c` tags name the C fields),
// and every #define of abi.h against the constant here that mirrors it.

const (
	rstTreeMagic = 0x45455254524f4347

	rstProcSetsid   = 1
	rstProcSetpgid  = 2
	rstProcJoinPgid = 4
	// rstProcJoinRootPgid: join the root's group (Pgid holds the root's
	// PID), which was led from outside the dump.
	rstProcJoinRootPgid = 8
	// rstProcShareFiles, rstProcShareFs: cloned with CLONE_FILES
	// (CLONE_FS), sharing its parent's fd table (cwd, root and umask).
	rstProcShareFiles = 16
	rstProcShareFs    = 32

	rstTreePidns  = 1
	rstTreeTimens = 2

	rstMagic   = 0x31545352524f4347
	rstVersion = 8

	rstPageStreamsMax = 4
	rstSharersMax     = 64

	rstStateRunning = 0
	rstStateDone    = 1
	rstStateFailed  = 2

	rstHoleCandidates = 8

	// The restorer's fds as launch starts it: os/exec gives
	// ExtraFiles[i] fd 3+i (os/exec Cmd.ExtraFiles), so the plan is
	// ExtraFiles[0] and the sources follow.
	rstPlanFd        = 3
	rstFirstSourceFd = 4

	// rstNsig is _NSIG (arch/x86/include/asm/signal.h): signals are
	// 1..rstNsig, one sigaction each in the plan.
	rstNsig = 64

	// rstCPUMaskBytes is the room for a thread's CPU affinity mask in
	// the plan: 1024 CPUs.
	rstCPUMaskBytes = 128
)

// The restorer's hole, besides its image and the plan (RST_RESTORER_STACK,
// RST_PARK_SIZE, RST_THREAD_STACK; holeSizeFor adds them up as
// restorer/c/restorer.c relocate lays them out).
const (
	// restorerStack is the restorer's own stack once it has moved.
	restorerStack = 256 << 10
	// parkSize holds the kernel's vDSO and vvar pages while everything
	// else is unmapped.
	parkSize = 1 << 20
	// threadStack is the stack of each restored thread but the leader,
	// and of each page-stream helper: they only make a few system calls
	// before they park or exit.
	threadStack = 16 << 10
)

// Restore steps (RST_STEP_*): the restorer reports the one that failed.
const (
	rstStepClone       = 1
	rstStepFds         = 2
	rstStepHole        = 3
	rstStepSpecial     = 4
	rstStepUnmap       = 5
	rstStepMmap        = 6
	rstStepPages       = 7
	rstStepMprotect    = 8
	rstStepMm          = 9
	rstStepSignals     = 10
	rstStepTimers      = 11
	rstStepThread      = 12
	rstStepFs          = 13
	rstStepRlimits     = 14
	rstStepCreds       = 15
	rstStepPending     = 16
	rstStepPrctl       = 17
	rstStepTree        = 18
	rstStepFixups      = 19
	rstStepPosixTimers = 20
	rstStepPidfd       = 21
	rstStepSched       = 22
	rstStepPidns       = 23
	rstStepTimens      = 24
	rstStepStage       = 25
	rstStepPageSum     = 26
	rstStepAttrs       = 40
)

// rstSteps says what each step does, for error messages; abi_test.go
// checks every RST_STEP_* has one.
var rstSteps = map[uint32]string{
	rstStepClone:       "create the process (clone3 set_tid)",
	rstStepFds:         "restore file descriptors",
	rstStepHole:        "find room for the restorer",
	rstStepSpecial:     "move the vDSO",
	rstStepUnmap:       "unmap the restorer's old mappings",
	rstStepMmap:        "map memory",
	rstStepPages:       "read pages",
	rstStepMprotect:    "set memory protection",
	rstStepMm:          "restore mm fields (PR_SET_MM_MAP)",
	rstStepSignals:     "restore signal handlers",
	rstStepTimers:      "restore interval timers",
	rstStepThread:      "restore per-thread kernel state",
	rstStepFs:          "restore cwd/root",
	rstStepRlimits:     "restore resource limits",
	rstStepCreds:       "restore credentials",
	rstStepPending:     "queue pending signals",
	rstStepPrctl:       "restore process flags (prctl)",
	rstStepTree:        "rebuild the process tree (fork, session, group)",
	rstStepFixups:      "finish the fds inside the process (epoll watches, locks)",
	rstStepPosixTimers: "recreate POSIX timers (timer_create with their IDs)",
	rstStepPidfd:       "hand gocr the new process's pidfd",
	rstStepSched:       "restore thread scheduling (nice, policy, CPU affinity)",
	rstStepPidns:       "set up the PID namespace (its /proc, its first process)",
	rstStepTimens:      "make the time namespace (unshare CLONE_NEWTIME, /proc/self/timens_offsets)",
	rstStepStage:       "map the memory shared with children since fork before they are forked",
	rstStepPageSum:     "verify page data as it is read in",
	rstStepAttrs:       "restore process and thread attributes",
}

// Kernel values the plan carries that golang.org/x/sys/unix does not name.
const (
	// ssDisable is SS_DISABLE (include/uapi/linux/signal.h): the thread
	// has no alternate signal stack.
	ssDisable = 2
	// rlimNlimits is RLIM_NLIMITS (include/uapi/asm-generic/resource.h),
	// one past the last resource, RLIMIT_RTTIME.
	rlimNlimits = unix.RLIMIT_RTTIME + 1
)

// VMA kinds (RST_VMA_*).
const (
	rstVmaAnonPrivate = 1
	rstVmaAnonShared  = 2
	rstVmaFilePrivate = 3
	rstVmaFileShared  = 4
	rstVmaVdso        = 5
	rstVmaVvar        = 6
	rstVmaVvarVclock  = 7
	rstVmaSysvShm     = 8
)

// madvise requests (RST_MADV_*).
const (
	rstMadvHugepage      = 1
	rstMadvNohugepage    = 2
	rstMadvDontfork      = 4
	rstMadvDontdump      = 8
	rstMadvWipeonfork    = 16
	rstMadvMlock         = 32
	rstMadvSequential    = 64
	rstMadvRandom        = 128
	rstMadvMergeable     = 256
	rstMadvMlockOnfault  = 512
	rstMadvHugepageFirst = 1024
)

type rstVma struct {
	Start     uint64 `c:"start"`
	End       uint64 `c:"end"`
	Pgoff     uint64 `c:"pgoff"`
	Prot      uint32 `c:"prot"`
	Kind      uint32 `c:"kind"`
	MmapFlags uint32 `c:"mmap_flags"`
	Madv      uint32 `c:"madv"`
	PathOff   uint32 `c:"path_off"`
	OpenFlags uint32 `c:"open_flags"`
	MapProt   uint32 `c:"map_prot"`
	MapFd     int32  `c:"map_fd"`
	Shmid     int32  `c:"shmid"`
	ShmFlags  uint32 `c:"shm_flags"`
	Stage     uint64 `c:"stage"`
	Flags     uint32 `c:"flags"` // rstVmaStage, rstVmaInherit
	Pad       uint32
}

// rst_vma flags (RST_VMA_STAGE, RST_VMA_INHERIT): memory shared since
// fork, mapped at Stage while the tree is built (stage.go).
const (
	rstVmaStage   = 1
	rstVmaInherit = 2
	// rstVmaAtStage: at the stage even where its place is free, so
	// that tests see a mapping moved into place (testhook.ForkSharedAtStage).
	rstVmaAtStage = 4
)

// rstSpan is a run of pages of the fork_shared list.
type rstSpan struct {
	Vaddr   uint64 `c:"vaddr"`
	NrPages uint64 `c:"nr_pages"`
}

type rstTree struct {
	Magic     uint64 `c:"magic"`
	Version   uint32 `c:"version"`
	Size      uint32 `c:"size"`
	NrProcs   uint32 `c:"nr_procs"`
	ProcsOff  uint32 `c:"procs_off"`
	Created   uint32 `c:"created"`
	PidfdSock int32  `c:"pidfd_sock"`
	Flags     uint32 `c:"flags"`
	Pad0      uint32
	// With rstTreeTimens: the offsets from the machine's initial time
	// namespace.
	TimensMonotonicNs int64 `c:"timens_monotonic_ns"`
	TimensBoottimeNs  int64 `c:"timens_boottime_ns"`
}

type rstProc struct {
	Pid        int32    `c:"pid"`
	Parent     int32    `c:"parent"`
	Pgid       int32    `c:"pgid"`
	Flags      uint32   `c:"flags"`
	Zombie     uint32   `c:"zombie"`
	ExitStatus uint32   `c:"exit_status"`
	PlanOff    uint32   `c:"plan_off"`
	ExitSignal uint32   `c:"exit_signal"`
	Comm       [16]byte `c:"comm"`
	CttyFd     int32    `c:"ctty_fd"`
	TableReady uint32   `c:"table_ready"`
}

type rstPages struct {
	Vaddr   uint64 `c:"vaddr"`
	NrPages uint64 `c:"nr_pages"`
	FileOff uint64 `c:"file_off"`
	Stream  uint32 `c:"stream"`
	Flags   uint32 `c:"flags"` // rstPagesHuge
	File    uint32 `c:"file"`  // index into the plan's page files
	Pad0    uint32
}

// rstSumFile (struct rst_sum_file) is a page file whose chunks the
// restorer verifies as it reads them in (pagesums.go); the fields after
// Here are the restorer's.
type rstSumFile struct {
	DataOff  uint64 `c:"data_off"`
	DataSize uint64 `c:"data_size"`
	Chunk    uint64 `c:"chunk"`
	First    uint32 `c:"first"`
	Here     uint32 `c:"here"`
	Done     uint32 `c:"done"`
	Open     uint32 `c:"open"`
	AtChunk  uint64 `c:"at_chunk"`
	Next     uint64 `c:"next"`
	Crc      uint32 `c:"crc"`
	Pad0     uint32
}

// rstChunkSum (struct rst_chunk_sum) is one chunk's stored checksum.
type rstChunkSum struct {
	Crc  uint32 `c:"crc"`
	Here uint32 `c:"here"`
}

// rstPagesHuge (RST_PAGES_HUGE) marks a run of whole 2 MiB extents that
// get a huge page each before their data is read in (thp.go).
const rstPagesHuge = 1

// rstPagesStaged (RST_PAGES_STAGED) marks a run read in at its mapping's
// stage address before the process forks its children (stage.go).
const rstPagesStaged = 2

type rstFd struct {
	Target  int32  `c:"target"`
	Src     int32  `c:"src"`
	Cloexec uint32 `c:"cloexec"`
	Pad0    uint32
}

type rstSiginfo struct {
	Signo uint32
	Tid   int32 // 0: process-wide
	Info  [128]byte
}

// rstTimerSignalQueued (RST_TIMER_SIGNAL_QUEUED): the timer's own
// signal was queued at the dump, and the restorer has the timer queue it.
const rstTimerSignalQueued = 1

type rstPosixTimer struct {
	ID         int32  `c:"id"`
	ClockID    int32  `c:"clock_id"`
	Notify     int32  `c:"notify"`
	Signo      int32  `c:"signo"`
	Sigval     uint64 `c:"sigval"`
	NotifyTid  int32  `c:"notify_tid"`
	Flags      uint32 `c:"flags"` // rstTimerSignalQueued
	ValueNs    int64  `c:"value_ns"`
	IntervalNs int64  `c:"interval_ns"`
}

// Fixup operations (RST_FIXUP_*).
const (
	rstFixupEpollAdd  = 1
	rstFixupPosixLock = 2
	rstFixupFlock     = 3
	rstFixupOpen      = 4
	rstFixupTtyPgrp   = 5
	rstFixupClose     = 6
	rstFixupDup       = 7
)

type rstFixup struct {
	Op       uint32 `c:"op"`
	Fd       int32  `c:"fd"`
	Target   int32  `c:"target"`
	Events   uint32 `c:"events"`
	Data     uint64 `c:"data"`
	Start    int64  `c:"start"`
	Len      int64  `c:"len"`
	LockType uint32 `c:"lock_type"`
	FileFd   int32  `c:"file_fd"`
}

type rstThread struct {
	Tid           int32  `c:"tid"`
	CommOff       uint32 `c:"comm_off"`
	ClearChildTid uint64 `c:"clear_child_tid"`
	RobustList    uint64 `c:"robust_list"`
	RobustListLen uint64 `c:"robust_list_len"`
	RseqPtr       uint64 `c:"rseq_ptr"`
	RseqLen       uint32 `c:"rseq_len"`
	RseqSig       uint32 `c:"rseq_sig"`
	AltstackSp    uint64 `c:"altstack_sp"`
	AltstackFlags int32  `c:"altstack_flags"`
	Pad0          uint32
	AltstackSize  uint64                `c:"altstack_size"`
	SchedSet      uint32                `c:"sched_set"`
	SchedPolicy   uint32                `c:"sched_policy"`
	SchedNice     int32                 `c:"sched_nice"`
	SchedPriority uint32                `c:"sched_priority"`
	SchedFlags    uint64                `c:"sched_flags"`
	CPUMask       [rstCPUMaskBytes]byte `c:"cpu_mask"`
}

type rstRlimit struct {
	Resource uint32
	Pad0     uint32
	Cur      uint64
	Max      uint64
}

type rstSigaction struct {
	Handler, Flags, Restorer, Mask uint64
}

type rstItimer struct {
	IntervalSec, IntervalUsec, ValueSec, ValueUsec int64
}

// rstMmMap is struct prctl_mm_map (include/uapi/linux/prctl.h).
type rstMmMap struct {
	StartCode, EndCode, StartData, EndData uint64
	StartBrk, Brk, StartStack              uint64
	ArgStart, ArgEnd, EnvStart, EnvEnd     uint64
	Auxv                                   uint64
	AuxvSize                               uint32
	ExeFd                                  uint32
}

type rstArgs struct {
	Magic              uint64                    `c:"magic"`
	Version            uint32                    `c:"version"`
	Size               uint32                    `c:"size"`
	State              uint32                    `c:"state"`
	Err                int32                     `c:"err"`
	ErrStep            uint32                    `c:"err_step"`
	ErrIndex           uint32                    `c:"err_index"`
	RestorerBase       uint64                    `c:"restorer_base"`
	RestorerSize       uint64                    `c:"restorer_size"`
	Pid                int32                     `c:"pid"`
	NrPageStreams      uint32                    `c:"nr_page_streams"`
	ExePathOff         uint32                    `c:"exe_path_off"`
	NrVmas             uint32                    `c:"nr_vmas"`
	VmasOff            uint32                    `c:"vmas_off"`
	NrPages            uint32                    `c:"nr_pages"`
	PagesOff           uint32                    `c:"pages_off"`
	NrFds              uint32                    `c:"nr_fds"`
	FdsOff             uint32                    `c:"fds_off"`
	NrSiginfo          uint32                    `c:"nr_siginfo"`
	SiginfoOff         uint32                    `c:"siginfo_off"`
	NrRlimits          uint32                    `c:"nr_rlimits"`
	RlimitsOff         uint32                    `c:"rlimits_off"`
	StrtabOff          uint32                    `c:"strtab_off"`
	AuxvOff            uint32                    `c:"auxv_off"`
	AuxvSize           uint32                    `c:"auxv_size"`
	NrPosixTimers      uint32                    `c:"nr_posix_timers"`
	PosixTimersOff     uint32                    `c:"posix_timers_off"`
	HoleCandidates     [rstHoleCandidates]uint64 `c:"hole_candidates"`
	HoleSize           uint64                    `c:"hole_size"`
	Mm                 rstMmMap                  `c:"mm"`
	Sigactions         [rstNsig]rstSigaction     `c:"sigactions"`
	NrThreads          uint32                    `c:"nr_threads"`
	ThreadsOff         uint32                    `c:"threads_off"`
	ThreadsReady       uint32                    `c:"threads_ready"`
	ThreadStack        uint32                    `c:"thread_stack"`
	Itimers            [3]rstItimer              `c:"itimers"`
	NrFixups           uint32                    `c:"nr_fixups"`
	FixupsOff          uint32                    `c:"fixups_off"`
	LifelineFd         int32                     `c:"lifeline_fd"`
	Pad2               uint32
	NrPageFiles        uint32 `c:"nr_page_files"`
	PageFilesOff       uint32 `c:"page_files_off"`
	Pad3               uint64
	NrCalls            uint32    `c:"nr_calls"`
	CallsOff           uint32    `c:"calls_off"`
	NrForkShared       uint32    `c:"nr_fork_shared"`
	ForkSharedOff      uint32    `c:"fork_shared_off"`
	Personality        uint32    `c:"personality"`
	Umask              uint32    `c:"umask"`
	CwdOff             uint32    `c:"cwd_off"`
	RootOff            uint32    `c:"root_off"`
	CommOff            uint32    `c:"comm_off"`
	PdeathSig          int32     `c:"pdeathsig"`
	Dumpable           int32     `c:"dumpable"`
	ChildSubreaper     int32     `c:"child_subreaper"`
	NoNewPrivs         int32     `c:"no_new_privs"`
	SetCreds           uint32    `c:"set_creds"`
	Uids               [4]uint32 `c:"uids"`
	Gids               [4]uint32 `c:"gids"`
	NrGroups           uint32    `c:"nr_groups"`
	GroupsOff          uint32    `c:"groups_off"`
	MaxFd              uint32    `c:"max_fd"`
	Pad1               uint32
	PageHelperTids     [rstPageStreamsMax]int32  `c:"page_helper_tids"`
	PageHelpersRunning [rstPageStreamsMax]uint32 `c:"page_helpers_running"`
	CapEff             uint64                    `c:"cap_eff"`
	CapPrm             uint64                    `c:"cap_prm"`
	CapInh             uint64                    `c:"cap_inh"`
	CapBnd             uint64                    `c:"cap_bnd"`
	CapAmb             uint64                    `c:"cap_amb"`
	Securebits         uint32                    `c:"securebits"`
	CapLast            uint32                    `c:"cap_last"`
	Mdwe               uint32                    `c:"mdwe"`
	Pad4               uint32
	NrChunkSums        uint32 `c:"nr_chunk_sums"`
	ChunkSumsOff       uint32 `c:"chunk_sums_off"`
	SumTablesOff       uint32 `c:"sum_tables_off"`
	SumLane            uint32 `c:"sum_lane"`
	NrSumFiles         uint32 `c:"nr_sum_files"`
	SumFilesOff        uint32 `c:"sum_files_off"`
}

// Offsets of the words gocr writes into an encoded plan or watches while
// the restorer runs.
const (
	offSize         = 12
	offState        = 16
	offErr          = 20
	offErrStep      = 24
	offErrIndex     = 28
	offRestorerBase = 32
	offRestorerSize = 40
	offLifelineFd   = 2464
)
