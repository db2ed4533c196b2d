//go:build linux

package parasite

// Layout of the shared region and the control block, mirrored from
// parasite/c/abi.h. abi_test.go checks every #define there against the
// constant here that mirrors it, and every offset and size against the
// _Static_asserts, so the two sides cannot drift apart.
const (
	blobMax   = 0x10000
	ctlOff    = 0x10000
	stackOff  = 0x11000
	stackSize = 0x10000
	dataOff   = 0x21000
	dataSize  = 0x100000
	// One stack per page-stream helper thread, then the region ends.
	helperStackOff  = 0x121000
	helperStackSize = 0x4000
	regionSize      = 0x131000

	// MaxStreams is how many page streams one WriteStreams takes.
	MaxStreams = 4

	// nsig is _NSIG (arch/x86/include/asm/signal.h): signals are
	// 1..nsig, one sigaction each in struct parasite_state.
	nsig = 64

	cmdDumpState    = 1
	cmdDumpPages    = 2
	cmdFini         = 3
	cmdRecvFd       = 4
	cmdWriteStreams = 5
	cmdPosixTimers  = 6
	cmdSnapshot     = 7
	cmdRelease      = 8
	cmdSetup        = 9
	cmdPeerPids     = 17

	// The snapshot (parasite/c/abi.h PCMD_SNAPSHOT): its block in the
	// control page, the stacks of the fork child and of the snapshot
	// process.
	snapshotOff      = 0x10200
	snapshotRseqMax  = 32
	forkStackTop     = 0x121000
	snapshotStackTop = 0x125000
	snapPid          = 0
	snapErr          = 4
	snapRseqAddr     = 8
	snapRseqLen      = 16
	snapRseq         = 24
	snapSeq          = 56
	snapSize         = 64

	// struct parasite_ctl
	ctlCmdSeq    = 0
	ctlDoneSeq   = 4
	ctlCmd       = 8
	ctlRet       = 12
	ctlArgs      = 16
	ctlDataFd    = 48
	ctlSock      = 56
	ctlCmdFd     = 60
	ctlCureRip   = 64
	ctlCureSp    = 72
	ctlMemfd     = 80
	ctlMoved     = 84
	ctlLife      = 88
	ctlUffd      = 92
	ctlStubs     = 96
	ctlSetupRet  = 100
	ctlSetupFds  = 104
	ctlUffdFlags = 112
	ctlSize      = 120
	// ctlSetupRet until the setup is done; done_seq after one that failed.
	setupPending = 1
	setupFailed  = 0xffffffff
	ctlNrArgs    = 4 // u64 each, at ctlArgs

	// struct parasite_state
	stSigactions     = 0
	stAltstackSp     = 2048
	stAltstackFlags  = 2056
	stAltstackSize   = 2064
	stItimers        = 2072
	stTidAddress     = 2168
	stDumpable       = 2176
	stPdeathsig      = 2180
	stChildSubreaper = 2184
	stNoNewPrivs     = 2188
	stSecurebits     = 2192
	stLDT            = 2196
	stSize           = 2200
	// The struct parasite_attrs PCMD_DUMP_STATE writes too, from dataOff.
	stateAttrsOff = 0x1000

	// struct parasite_sigaction and struct parasite_itimer, arrays in
	// struct parasite_state
	sigactionSize = 32
	itimerSize    = 32

	// struct parasite_posix_timer, an array at dataOff
	ptID           = 0
	ptOverrun      = 4
	ptIntervalSec  = 8
	ptIntervalNsec = 16
	ptValueSec     = 24
	ptValueNsec    = 32
	ptSize         = 40

	// struct parasite_iovec
	iovecBase = 0
	iovecLen  = 8
	iovecSize = 16

	// The thread-state stub's offset in the blob.
	threadStubOff = 0x40

	// struct parasite_stream, an array of MaxStreams at streamsOff
	streamsOff    = 0x10100
	streamIovOff  = 0
	streamNrIov   = 8
	streamFileOff = 16
	streamFd      = 24
	streamRet     = 28
	streamRunning = 32
	streamTid     = 36
	streamSumsOff = 40
	streamSumCut  = 48
	streamSkipOff = 56
	streamSize    = 64
)
