//go:build linux

package parasite

import (
	"os"
	"testing"

	"github.com/gocr/gocr/internal/cheader"
	"github.com/gocr/gocr/ptrace"
)

// abiDefines is every #define of c/abi.h with the Go constant that
// mirrors it. TestDefinesMatchC fails for a define missing here, so a
// constant added on the C side cannot be forgotten on the Go side.
var abiDefines = map[string]uint64{
	"PARASITE_BLOB_MAX":          blobMax,
	"PARASITE_CTL_OFF":           ctlOff,
	"PARASITE_STACK_OFF":         stackOff,
	"PARASITE_STACK_SIZE":        stackSize,
	"PARASITE_DATA_OFF":          dataOff,
	"PARASITE_DATA_SIZE":         dataSize,
	"PARASITE_HELPER_STACK_OFF":  helperStackOff,
	"PARASITE_HELPER_STACK_SIZE": helperStackSize,
	"PARASITE_STREAMS_MAX":       MaxStreams,
	"PARASITE_REGION_SIZE":       regionSize,
	"PARASITE_STREAMS_OFF":       streamsOff,
	"PARASITE_THREAD_STUB_OFF":   threadStubOff,
	"PARASITE_NSIG":              nsig,
	"PARASITE_NR_ARGS":           ctlNrArgs,

	// The thread-state stub's reach into the rt_sigframe gocr builds
	// (ptrace/sigframe_amd64.go): the ucontext, which uc_flags opens, and
	// uc_stack.
	"PARASITE_SIGFRAME_UC":       ptrace.SigframeUc,
	"PARASITE_SIGFRAME_UC_STACK": ptrace.SigframeUcStack,

	"PCMD_DUMP_STATE":        cmdDumpState,
	"PCMD_DUMP_PAGES":        cmdDumpPages,
	"PCMD_FINI":              cmdFini,
	"PCMD_RECV_FD":           cmdRecvFd,
	"PCMD_WRITE_STREAMS":     cmdWriteStreams,
	"PCMD_POSIX_TIMERS":      cmdPosixTimers,
	"PCMD_SNAPSHOT":          cmdSnapshot,
	"PCMD_RELEASE":           cmdRelease,
	"PCMD_SETUP":             cmdSetup,
	"PARASITE_SETUP_PENDING": setupPending,
	"PARASITE_SETUP_FAILED":  setupFailed,

	"PARASITE_SNAPSHOT_OFF":       snapshotOff,
	"PARASITE_SNAPSHOT_RSEQ_MAX":  snapshotRseqMax,
	"PARASITE_FORK_STACK_TOP":     forkStackTop,
	"PARASITE_SNAPSHOT_STACK_TOP": snapshotStackTop,
	"PCMD_ATTRS":                  cmdAttrs,
	"PCMD_PEER_PIDS":              cmdPeerPids,

	"PARASITE_NODE_WORDS":      nodeWords,
	"PARASITE_STATE_ATTRS_OFF": stateAttrsOff,
}

// cOnlyDefines are the defines of c/abi.h Go has no use for, each with the
// reason.
var cOnlyDefines = map[string]string{
	"GOCR_PARASITE_ABI_H": "include guard, no value",
}

// abiLayout is every offset ("struct.field") and size ("sizeof struct")
// asserted in c/abi.h with the Go constant that mirrors it.
var abiLayout = map[string]uint64{
	"parasite_ctl.cmd_seq": ctlCmdSeq, "parasite_ctl.done_seq": ctlDoneSeq,
	"parasite_ctl.cmd": ctlCmd, "parasite_ctl.ret": ctlRet, "parasite_ctl.args": ctlArgs,
	"parasite_ctl.data_fd": ctlDataFd, "parasite_ctl.sock": ctlSock, "parasite_ctl.cmd_fd": ctlCmdFd,
	"parasite_ctl.cure_rip": ctlCureRip, "parasite_ctl.cure_sp": ctlCureSp, "parasite_ctl.memfd": ctlMemfd,
	"parasite_ctl.moved": ctlMoved, "parasite_ctl.life": ctlLife, "parasite_ctl.uffd": ctlUffd, "parasite_ctl.stubs": ctlStubs,
	"parasite_ctl.setup_ret": ctlSetupRet, "parasite_ctl.setup_fds": ctlSetupFds, "parasite_ctl.uffd_flags": ctlUffdFlags,
	"sizeof parasite_ctl": ctlSize,

	"parasite_posix_timer.id": ptID, "parasite_posix_timer.overrun": ptOverrun,
	"parasite_posix_timer.interval_sec": ptIntervalSec, "parasite_posix_timer.interval_nsec": ptIntervalNsec,
	"parasite_posix_timer.value_sec": ptValueSec, "parasite_posix_timer.value_nsec": ptValueNsec,
	"sizeof parasite_posix_timer": ptSize,

	"sizeof parasite_sigaction": sigactionSize,
	"sizeof parasite_itimer":    itimerSize,

	"parasite_state.sigactions": stSigactions, "parasite_state.altstack_sp": stAltstackSp,
	"parasite_state.altstack_flags": stAltstackFlags, "parasite_state.altstack_size": stAltstackSize,
	"parasite_state.itimers": stItimers, "parasite_state.tid_address": stTidAddress,
	"parasite_state.dumpable": stDumpable, "parasite_state.pdeathsig": stPdeathsig,
	"parasite_state.child_subreaper": stChildSubreaper, "parasite_state.no_new_privs": stNoNewPrivs,
	"parasite_state.securebits": stSecurebits, "parasite_state.ldt": stLDT, "sizeof parasite_state": stSize,

	"parasite_iovec.base": iovecBase, "parasite_iovec.len": iovecLen, "sizeof parasite_iovec": iovecSize,

	"parasite_stream.iov_off": streamIovOff, "parasite_stream.nr_iov": streamNrIov,
	"parasite_stream.file_off": streamFileOff, "parasite_stream.fd": streamFd,
	"parasite_stream.ret": streamRet, "parasite_stream.running": streamRunning,
	"parasite_stream.tid": streamTid, "parasite_stream.sums_off": streamSumsOff,
	"parasite_stream.sum_cut": streamSumCut, "parasite_stream.skip_off": streamSkipOff,
	"sizeof parasite_stream": streamSize,

	"parasite_snapshot.pid": snapPid, "parasite_snapshot.err": snapErr,
	"parasite_snapshot.rseq_addr": snapRseqAddr, "parasite_snapshot.rseq_len": snapRseqLen,
	"parasite_snapshot.rseq": snapRseq, "parasite_snapshot.seq": snapSeq, "sizeof parasite_snapshot": snapSize,

	"parasite_thread_state.altstack_sp":     tsAltstackSp,
	"parasite_thread_state.altstack_flags":  tsAltstackFlags,
	"parasite_thread_state.altstack_size":   tsAltstackSize,
	"parasite_thread_state.altstack_ret":    tsAltstackRet,
	"parasite_thread_state.tid_address":     tsTidAddress,
	"parasite_thread_state.tid_address_ret": tsTidAddressRet,
	"parasite_thread_state.securebits":      tsSecurebits,
	"parasite_thread_state.timer_slack":     tsTimerSlack,
	"parasite_thread_state.tsc_ret":         tsTscRet,
	"parasite_thread_state.tsc":             tsTsc,
	"parasite_thread_state.cpuid":           tsCpuid,
	"parasite_thread_state.mce_kill":        tsMceKill,
	"parasite_thread_state.l1d_flush":       tsL1dFlush,
	"parasite_thread_state.thread_keyring":  tsThreadKeyring,
	"sizeof parasite_thread_state":          threadStateSize,

	"parasite_attrs.thp_disable": atThpDisable, "parasite_attrs.memory_merge": atMemoryMerge,
	"parasite_attrs.futex_slots": atFutexSlots, "parasite_attrs.keyrings": atKeyrings,
	"parasite_attrs.user_session": atUserSession, "parasite_attrs.mempolicy_ret": atMempolicyRet,
	"parasite_attrs.mempolicy_mode": atMempolicyMode, "parasite_attrs.mempolicy_nodes": atMempolicyNodes,
	"parasite_attrs.timer_slack": atTimerSlack, "parasite_attrs.tsc_ret": atTscRet,
	"parasite_attrs.tsc": atTsc, "parasite_attrs.cpuid": atCpuid, "parasite_attrs.mce_kill": atMceKill, "parasite_attrs.l1d_flush": atL1dFlush, "parasite_attrs.mdwe": atMdwe,
	"parasite_attrs.membarrier": atMembarrier, "parasite_attrs.membarrier_probed": atMembarrierProb, "sizeof parasite_attrs": atSize,
}

// TestDefinesMatchC checks every #define of c/abi.h against abiDefines,
// both ways.
func TestDefinesMatchC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	defs, errs := cheader.Defines(string(src), cOnlyDefines)
	errs = append(errs, cheader.Compare(defs, abiDefines, "abiDefines (or, if C alone uses it, cOnlyDefines saying why)")...)
	for _, err := range errs {
		t.Error(err)
	}
	if len(State{}.SigActions) != nsig {
		t.Errorf("State.SigActions holds %d signals, PARASITE_NSIG is %d", len(State{}.SigActions), nsig)
	}
}

// TestABIMatchesC checks every offset and size the C side asserts against
// abiLayout, both ways.
func TestABIMatchesC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range cheader.Compare(cheader.Layout(string(src)), abiLayout, "abiLayout") {
		t.Error(err)
	}
}

func TestBlobFitsRegion(t *testing.T) {
	if len(blob) == 0 || len(blob) > blobMax {
		t.Fatalf("parasite blob is %d bytes, must be 1..%d", len(blob), blobMax)
	}
}
