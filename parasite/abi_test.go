//go:build linux

package parasite

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestABIMatchesC reads the C side's offset asserts and defines and checks
// every one against the Go constants.
func TestABIMatchesC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"PARASITE_BLOB_MAX": blobMax, "PARASITE_CTL_OFF": ctlOff,
		"PARASITE_STACK_OFF": stackOff, "PARASITE_STACK_SIZE": stackSize,
		"PARASITE_DATA_OFF": dataOff, "PARASITE_DATA_SIZE": dataSize,
		"PARASITE_REGION_SIZE":      regionSize,
		"PARASITE_HELPER_STACK_OFF": helperStackOff, "PARASITE_HELPER_STACK_SIZE": helperStackSize,
		"PARASITE_STREAMS_MAX": MaxStreams, "PARASITE_STREAMS_OFF": streamsOff,
		"PCMD_DUMP_STATE": cmdDumpState, "PCMD_DUMP_PAGES": cmdDumpPages, "PCMD_FINI": cmdFini, "PCMD_RECV_FD": cmdRecvFd, "PCMD_WRITE_STREAMS": cmdWriteStreams,
		"parasite_ctl.cmd_seq": ctlCmdSeq, "parasite_ctl.done_seq": ctlDoneSeq,
		"parasite_ctl.cmd": ctlCmd, "parasite_ctl.ret": ctlRet, "parasite_ctl.args": ctlArgs,
		"parasite_ctl.data_fd": ctlDataFd, "parasite_ctl.sock": ctlSock, "parasite_ctl.cmd_fd": ctlCmdFd, "parasite_ctl.frame": ctlFrame,
		"sizeof parasite_ctl":       ctlSize,
		"parasite_state.sigactions": stSigactions, "parasite_state.altstack_sp": stAltstackSp,
		"parasite_state.altstack_flags": stAltstackFlags, "parasite_state.altstack_size": stAltstackSize,
		"parasite_state.itimers": stItimers, "parasite_state.tid_address": stTidAddress,
		"parasite_state.dumpable": stDumpable, "parasite_state.pdeathsig": stPdeathsig,
		"parasite_state.child_subreaper": stChildSubreaper, "parasite_state.no_new_privs": stNoNewPrivs,
		"sizeof parasite_state":   stSize,
		"parasite_stream.iov_off": streamIovOff, "parasite_stream.nr_iov": streamNrIov,
		"parasite_stream.file_off": streamFileOff, "parasite_stream.fd": streamFd,
		"parasite_stream.ret": streamRet, "parasite_stream.running": streamRunning,
		"parasite_stream.tid": streamTid, "sizeof parasite_stream": streamSize,
		"PARASITE_THREAD_STUB_OFF":              threadStubOff,
		"parasite_thread_state.altstack_sp":     tsAltstackSp,
		"parasite_thread_state.altstack_flags":  tsAltstackFlags,
		"parasite_thread_state.altstack_size":   tsAltstackSize,
		"parasite_thread_state.altstack_ret":    tsAltstackRet,
		"parasite_thread_state.tid_address":     tsTidAddress,
		"parasite_thread_state.tid_address_ret": tsTidAddressRet,
		"sizeof parasite_thread_state":          threadStateSize,
	}
	got := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+) (0x[0-9a-fA-F]+|\d+)$`).FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.ParseInt(m[2], 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		got[m[1]] = v
	}
	for _, m := range regexp.MustCompile(`BUILD_BUG_ON_OFFSET\(struct (\w+), (\w+), (\d+)\)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.ParseInt(m[3], 10, 64)
		got[m[1]+"."+m[2]] = v
	}
	for _, m := range regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		got["sizeof "+m[1]] = v
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not found in c/abi.h", name)
			continue
		}
		if g != w {
			t.Errorf("%s: C says %d, Go says %d", name, g, w)
		}
	}
}

func TestBlobFitsRegion(t *testing.T) {
	if len(blob) == 0 || len(blob) > blobMax {
		t.Fatalf("parasite blob is %d bytes, must be 1..%d", len(blob), blobMax)
	}
}
