//go:build linux

package parasite

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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

	"PARASITE_FRAME_OFF": frameOff,
	// The parasite's reach into the rt_sigframe gocr builds
	// (sigframe_amd64.go): the ucontext, which uc_flags opens, and
	// uc_stack.
	"PARASITE_SIGFRAME_UC":       frUcFlags,
	"PARASITE_SIGFRAME_UC_STACK": frUcStack,

	"PCMD_DUMP_STATE":    cmdDumpState,
	"PCMD_DUMP_PAGES":    cmdDumpPages,
	"PCMD_FINI":          cmdFini,
	"PCMD_RECV_FD":       cmdRecvFd,
	"PCMD_WRITE_STREAMS": cmdWriteStreams,
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
	"parasite_ctl.data_fd": ctlDataFd, "parasite_ctl.sock": ctlSock, "parasite_ctl.cmd_fd": ctlCmdFd, "parasite_ctl.frame": ctlFrame,
	"sizeof parasite_ctl": ctlSize,

	"sizeof parasite_sigaction": sigactionSize,
	"sizeof parasite_itimer":    itimerSize,

	"parasite_state.sigactions": stSigactions, "parasite_state.altstack_sp": stAltstackSp,
	"parasite_state.altstack_flags": stAltstackFlags, "parasite_state.altstack_size": stAltstackSize,
	"parasite_state.itimers": stItimers, "parasite_state.tid_address": stTidAddress,
	"parasite_state.dumpable": stDumpable, "parasite_state.pdeathsig": stPdeathsig,
	"parasite_state.child_subreaper": stChildSubreaper, "parasite_state.no_new_privs": stNoNewPrivs,
	"sizeof parasite_state": stSize,

	"parasite_iovec.base": iovecBase, "parasite_iovec.len": iovecLen, "sizeof parasite_iovec": iovecSize,

	"parasite_stream.iov_off": streamIovOff, "parasite_stream.nr_iov": streamNrIov,
	"parasite_stream.file_off": streamFileOff, "parasite_stream.fd": streamFd,
	"parasite_stream.ret": streamRet, "parasite_stream.running": streamRunning,
	"parasite_stream.tid": streamTid, "sizeof parasite_stream": streamSize,

	"parasite_thread_state.altstack_sp":     tsAltstackSp,
	"parasite_thread_state.altstack_flags":  tsAltstackFlags,
	"parasite_thread_state.altstack_size":   tsAltstackSize,
	"parasite_thread_state.altstack_ret":    tsAltstackRet,
	"parasite_thread_state.tid_address":     tsTidAddress,
	"parasite_thread_state.tid_address_ret": tsTidAddressRet,
	"sizeof parasite_thread_state":          threadStateSize,
}

// TestDefinesMatchC checks every #define of c/abi.h against abiDefines,
// both ways.
func TestDefinesMatchC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	defs, errs := cDefines(string(src), cOnlyDefines)
	for _, err := range errs {
		t.Error(err)
	}
	compare(t, defs, abiDefines, "abiDefines (or, if C alone uses it, cOnlyDefines saying why)")
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
	got := map[string]uint64{}
	for _, m := range regexp.MustCompile(`BUILD_BUG_ON_OFFSET\(struct (\w+), (\w+), (\d+)\)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.ParseUint(m[3], 10, 64)
		got[m[1]+"."+m[2]] = v
	}
	for _, m := range regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.ParseUint(m[2], 10, 64)
		got["sizeof "+m[1]] = v
	}
	compare(t, got, abiLayout, "abiLayout")
}

// compare reports every name whose values in c/abi.h and in the Go table
// differ, or that only one side has.
func compare(t *testing.T, c, goSide map[string]uint64, table string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(c)) {
		g, ok := goSide[name]
		switch {
		case !ok:
			t.Errorf("%s (%#x) in c/abi.h has no Go constant in %s", name, c[name], table)
		case g != c[name]:
			t.Errorf("%s: C says %#x, Go says %#x", name, c[name], g)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(goSide)) {
		if _, ok := c[name]; !ok {
			t.Errorf("%s: in %s but not in c/abi.h", name, table)
		}
	}
}

var (
	defineLine = regexp.MustCompile(`^\s*#\s*define\s+(\w+)(\(?)(.*)$`)
	cComment   = regexp.MustCompile(`/\*.*?\*/|//.*$`)
	cInteger   = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*$`)
	cName      = regexp.MustCompile(`^[A-Za-z_]\w*$`)
)

// cDefines reads every #define of a C header. A value must be an integer
// literal (C's decimal, octal or hex, with any U/L suffix) or the name of
// a define before it: anything else (no value, an expression, a macro
// with parameters, a continued line) is an error unless exempt names the
// define, so a new kind of define is looked at rather than skipped.
// exempt names that the header no longer defines are errors too.
// (restorer/abi_test.go has the same reader for restorer/c/abi.h.)
func cDefines(src string, exempt map[string]string) (map[string]uint64, []error) {
	defs := map[string]uint64{}
	seen := map[string]bool{}
	var errs []error
	for i, line := range strings.Split(src, "\n") {
		m := defineLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, value := m[1], strings.TrimSpace(cComment.ReplaceAllString(m[3], ""))
		seen[name] = true
		if _, ok := exempt[name]; ok {
			continue
		}
		if prev, ok := defs[name]; ok {
			errs = append(errs, fmt.Errorf("line %d: %s defined again (was %#x)", i+1, name, prev))
		}
		switch {
		case m[2] != "":
			errs = append(errs, fmt.Errorf("line %d: %s takes parameters", i+1, name))
		case cInteger.MatchString(value):
			v, err := strconv.ParseUint(strings.TrimRight(value, "uUlL"), 0, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: %w", i+1, name, err))
			}
			defs[name] = v
		case cName.MatchString(value):
			v, ok := defs[value]
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: %s is %s, not an earlier define", i+1, name, value))
			}
			defs[name] = v
		default:
			errs = append(errs, fmt.Errorf("line %d: %s = %q: want an integer literal or the name of an earlier define", i+1, name, value))
		}
	}
	for name := range exempt {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("%s is exempt but not defined", name))
		}
	}
	return defs, errs
}

func TestBlobFitsRegion(t *testing.T) {
	if len(blob) == 0 || len(blob) > blobMax {
		t.Fatalf("parasite blob is %d bytes, must be 1..%d", len(blob), blobMax)
	}
}
