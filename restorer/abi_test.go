//go:build linux

package restorer

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestABIMatchesC checks every `c`-tagged field offset and every struct
// size against the _Static_asserts of restorer/c/abi.h.
func TestABIMatchesC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]int{}
	for _, m := range regexp.MustCompile(`BUILD_BUG_ON_OFFSET\(struct (\w+), (\w+), (\d+)\)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[3])
		offsets[m[1]+"."+m[2]] = v
	}
	sizes := map[string]int{}
	for _, m := range regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[2])
		sizes[m[1]] = v
	}
	for cname, v := range map[string]any{
		"rst_vma": rstVma{}, "rst_pages": rstPages{}, "rst_fd": rstFd{}, "rst_siginfo": rstSiginfo{},
		"rst_rlimit": rstRlimit{}, "rst_thread": rstThread{}, "rst_epoll": rstEpoll{}, "rst_tree": rstTree{}, "rst_proc": rstProc{}, "rst_mm_map": rstMmMap{}, "rst_args": rstArgs{},
	} {
		typ := reflect.TypeOf(v)
		want, ok := sizes[cname]
		if !ok {
			t.Errorf("struct %s: no size assert in c/abi.h", cname)
		} else if got := binary.Size(v); got != want {
			t.Errorf("struct %s: C size %d, Go size %d", cname, want, got)
		}
		off := 0
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if tag := f.Tag.Get("c"); tag != "" {
				key := cname + "." + tag
				want, ok := offsets[key]
				if !ok {
					t.Errorf("%s: no offset assert in c/abi.h", key)
				} else if want != off {
					t.Errorf("%s: C offset %d, Go offset %d", key, want, off)
				}
				delete(offsets, key)
			}
			off += binary.Size(reflect.New(f.Type).Elem().Interface())
		}
	}
	for key := range offsets {
		t.Errorf("%s: asserted in C but not tagged in Go", key)
	}
	goOff := map[string]int{}
	off := 0
	for i := 0; i < reflect.TypeOf(rstArgs{}).NumField(); i++ {
		f := reflect.TypeOf(rstArgs{}).Field(i)
		goOff[f.Tag.Get("c")] = off
		off += binary.Size(reflect.New(f.Type).Elem().Interface())
	}
	for name, want := range map[string]int{"size": offSize, "state": offState, "err": offErr, "err_step": offErrStep,
		"err_index": offErrIndex, "restorer_base": offRestorerBase, "restorer_size": offRestorerSize,
		"lifeline_fd": offLifelineFd} {
		if got := goOff[name]; got != want {
			t.Errorf("rst_args.%s: constant says %d, struct says %d", name, want, got)
		}
	}
}

// abiDefines is every #define of c/abi.h with the Go constant that
// mirrors it. TestDefinesMatchC fails for a define missing here, so a
// constant added on the C side cannot be forgotten on the Go side.
var abiDefines = map[string]uint64{
	"RST_MAGIC":      rstMagic,
	"RST_VERSION":    rstVersion,
	"RST_TREE_MAGIC": rstTreeMagic,

	"RST_STATE_RUNNING": rstStateRunning,
	"RST_STATE_DONE":    rstStateDone,
	"RST_STATE_FAILED":  rstStateFailed,

	"RST_STEP_CLONE":    rstStepClone,
	"RST_STEP_FDS":      rstStepFds,
	"RST_STEP_HOLE":     rstStepHole,
	"RST_STEP_SPECIAL":  rstStepSpecial,
	"RST_STEP_UNMAP":    rstStepUnmap,
	"RST_STEP_MMAP":     rstStepMmap,
	"RST_STEP_PAGES":    rstStepPages,
	"RST_STEP_MPROTECT": rstStepMprotect,
	"RST_STEP_MM":       rstStepMm,
	"RST_STEP_SIGNALS":  rstStepSignals,
	"RST_STEP_TIMERS":   rstStepTimers,
	"RST_STEP_THREAD":   rstStepThread,
	"RST_STEP_FS":       rstStepFs,
	"RST_STEP_RLIMITS":  rstStepRlimits,
	"RST_STEP_CREDS":    rstStepCreds,
	"RST_STEP_PENDING":  rstStepPending,
	"RST_STEP_PRCTL":    rstStepPrctl,
	"RST_STEP_TREE":     rstStepTree,

	"RST_VMA_ANON_PRIVATE": rstVmaAnonPrivate,
	"RST_VMA_ANON_SHARED":  rstVmaAnonShared,
	"RST_VMA_FILE_PRIVATE": rstVmaFilePrivate,
	"RST_VMA_FILE_SHARED":  rstVmaFileShared,
	"RST_VMA_VDSO":         rstVmaVdso,
	"RST_VMA_VVAR":         rstVmaVvar,
	"RST_VMA_VVAR_VCLOCK":  rstVmaVvarVclock,

	"RST_MADV_HUGEPAGE":   rstMadvHugepage,
	"RST_MADV_NOHUGEPAGE": rstMadvNohugepage,
	"RST_MADV_DONTFORK":   rstMadvDontfork,
	"RST_MADV_DONTDUMP":   rstMadvDontdump,
	"RST_MADV_WIPEONFORK": rstMadvWipeonfork,
	"RST_MADV_MLOCK":      rstMadvMlock,

	"RST_PROC_SETSID":    rstProcSetsid,
	"RST_PROC_SETPGID":   rstProcSetpgid,
	"RST_PROC_JOIN_PGID": rstProcJoinPgid,

	"RST_RESTORER_STACK": restorerStack,
	"RST_PARK_SIZE":      parkSize,
	"RST_THREAD_STACK":   threadStack,

	"RST_PAGE_STREAMS_MAX": rstPageStreamsMax,
	"RST_HOLE_CANDIDATES":  rstHoleCandidates,
	"RST_NSIG":             rstNsig,
}

// cOnlyDefines are the defines of c/abi.h Go has no use for, each with the
// reason.
var cOnlyDefines = map[string]string{
	"GOCR_RESTORER_ABI_H": "include guard, no value",
}

// TestDefinesMatchC checks every #define of c/abi.h against abiDefines,
// both ways, and that every restore step has a message.
func TestDefinesMatchC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	defs, errs := cDefines(string(src), cOnlyDefines)
	for _, err := range errs {
		t.Error(err)
	}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		c := defs[name]
		g, ok := abiDefines[name]
		switch {
		case !ok:
			t.Errorf("%s (%#x) in c/abi.h has no Go constant in abiDefines (or, if C alone uses it, an entry in cOnlyDefines saying why)", name, c)
		case g != c:
			t.Errorf("%s: C says %#x, Go says %#x", name, c, g)
		}
		if strings.HasPrefix(name, "RST_STEP_") && rstSteps[uint32(c)] == "" {
			t.Errorf("%s (%d): no message in rstSteps", name, c)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(abiDefines)) {
		if _, ok := defs[name]; !ok {
			t.Errorf("%s: in abiDefines but not defined in c/abi.h", name)
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
