//go:build linux

package restorer

import (
	"encoding/binary"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gocr/gocr/internal/cheader"
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
		"rst_vma": rstVma{}, "rst_pages": rstPages{}, "rst_sum_file": rstSumFile{}, "rst_chunk_sum": rstChunkSum{}, "rst_span": rstSpan{}, "rst_fd": rstFd{}, "rst_siginfo": rstSiginfo{},
		"rst_rlimit": rstRlimit{}, "rst_thread": rstThread{}, "rst_fixup": rstFixup{}, "rst_posix_timer": rstPosixTimer{}, "rst_call": rstCall{}, "rst_tree": rstTree{}, "rst_proc": rstProc{}, "rst_mm_map": rstMmMap{}, "rst_args": rstArgs{},
		"rst_peercred_req": rstPeercredReq{}, "rst_peercred_reply": rstPeercredReply{},
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

	"RST_PEERCRED_FD":          rstPeercredFd,
	"RST_PEERCRED_MAX_GROUPS":  rstPeercredMaxGroups,
	"RST_PEERCRED_SOCKETPAIR":  rstPeercredSocketpair,
	"RST_PEERCRED_LISTEN":      rstPeercredListen,
	"RST_PEERCRED_CONNECT":     rstPeercredConnect,
	"RST_PEERCRED_REAPER":      rstPeercredReaper,
	"RST_PEERCRED_STEP_CLONE":  rstPeercredStepClone,
	"RST_PEERCRED_STEP_GROUPS": rstPeercredStepGroups,
	"RST_PEERCRED_STEP_GID":    rstPeercredStepGid,
	"RST_PEERCRED_STEP_UID":    rstPeercredStepUid,
	"RST_PEERCRED_STEP_CALL":   rstPeercredStepCall,
	"RST_PEERCRED_STEP_EXIT":   rstPeercredStepExit,
	"RST_PEERCRED_STEP_REAPER": rstPeercredStepReaper,

	"RST_STATE_RUNNING": rstStateRunning,
	"RST_STATE_DONE":    rstStateDone,
	"RST_STATE_FAILED":  rstStateFailed,

	"RST_STEP_CLONE":        rstStepClone,
	"RST_STEP_FDS":          rstStepFds,
	"RST_STEP_HOLE":         rstStepHole,
	"RST_STEP_SPECIAL":      rstStepSpecial,
	"RST_STEP_UNMAP":        rstStepUnmap,
	"RST_STEP_MMAP":         rstStepMmap,
	"RST_STEP_PAGES":        rstStepPages,
	"RST_STEP_MPROTECT":     rstStepMprotect,
	"RST_STEP_MM":           rstStepMm,
	"RST_STEP_SIGNALS":      rstStepSignals,
	"RST_STEP_TIMERS":       rstStepTimers,
	"RST_STEP_THREAD":       rstStepThread,
	"RST_STEP_FS":           rstStepFs,
	"RST_STEP_RLIMITS":      rstStepRlimits,
	"RST_STEP_CREDS":        rstStepCreds,
	"RST_STEP_PENDING":      rstStepPending,
	"RST_STEP_PRCTL":        rstStepPrctl,
	"RST_STEP_TREE":         rstStepTree,
	"RST_STEP_FIXUPS":       rstStepFixups,
	"RST_STEP_POSIX_TIMERS": rstStepPosixTimers,
	"RST_STEP_PIDFD":        rstStepPidfd,
	"RST_STEP_SCHED":        rstStepSched,
	"RST_STEP_PIDNS":        rstStepPidns,
	"RST_STEP_TIMENS":       rstStepTimens,
	"RST_STEP_STAGE":        rstStepStage,
	"RST_STEP_PAGESUM":      rstStepPageSum,
	"RST_STEP_ATTRS":        rstStepAttrs,
	"RST_FIXUP_EPOLL_ADD":   rstFixupEpollAdd,
	"RST_FIXUP_POSIX_LOCK":  rstFixupPosixLock,
	"RST_FIXUP_FLOCK":       rstFixupFlock,
	"RST_FIXUP_OPEN":        rstFixupOpen,
	"RST_FIXUP_TTY_PGRP":    rstFixupTtyPgrp,
	"RST_FIXUP_CLOSE":       rstFixupClose,
	"RST_FIXUP_DUP":         rstFixupDup,

	"RST_TIMER_SIGNAL_QUEUED": rstTimerSignalQueued,

	"RST_VMA_ANON_PRIVATE": rstVmaAnonPrivate,
	"RST_VMA_ANON_SHARED":  rstVmaAnonShared,
	"RST_VMA_FILE_PRIVATE": rstVmaFilePrivate,
	"RST_VMA_FILE_SHARED":  rstVmaFileShared,
	"RST_VMA_VDSO":         rstVmaVdso,
	"RST_VMA_VVAR":         rstVmaVvar,
	"RST_VMA_VVAR_VCLOCK":  rstVmaVvarVclock,
	"RST_VMA_SYSV_SHM":     rstVmaSysvShm,

	"RST_MADV_HUGEPAGE":       rstMadvHugepage,
	"RST_MADV_NOHUGEPAGE":     rstMadvNohugepage,
	"RST_MADV_DONTFORK":       rstMadvDontfork,
	"RST_MADV_DONTDUMP":       rstMadvDontdump,
	"RST_MADV_WIPEONFORK":     rstMadvWipeonfork,
	"RST_MADV_MLOCK":          rstMadvMlock,
	"RST_MADV_SEQUENTIAL":     rstMadvSequential,
	"RST_MADV_RANDOM":         rstMadvRandom,
	"RST_MADV_MERGEABLE":      rstMadvMergeable,
	"RST_MADV_MLOCK_ONFAULT":  rstMadvMlockOnfault,
	"RST_MADV_HUGEPAGE_FIRST": rstMadvHugepageFirst,
	"RST_PAGES_HUGE":          rstPagesHuge,
	"RST_PAGES_STAGED":        rstPagesStaged,
	"RST_VMA_STAGE":           rstVmaStage,
	"RST_VMA_INHERIT":         rstVmaInherit,
	"RST_VMA_AT_STAGE":        rstVmaAtStage,

	"RST_PROC_SETSID":         rstProcSetsid,
	"RST_PROC_SETPGID":        rstProcSetpgid,
	"RST_PROC_JOIN_PGID":      rstProcJoinPgid,
	"RST_PROC_JOIN_ROOT_PGID": rstProcJoinRootPgid,
	"RST_PROC_SHARE_FILES":    rstProcShareFiles,
	"RST_PROC_SHARE_FS":       rstProcShareFs,
	"RST_TREE_PIDNS":          rstTreePidns,
	"RST_TREE_TIMENS":         rstTreeTimens,

	"RST_RESTORER_STACK": restorerStack,
	"RST_PARK_SIZE":      parkSize,
	"RST_THREAD_STACK":   threadStack,

	"RST_PAGE_STREAMS_MAX": rstPageStreamsMax,
	"RST_SHARERS_MAX":      rstSharersMax,
	"RST_HOLE_CANDIDATES":  rstHoleCandidates,
	"RST_PLAN_FD":          rstPlanFd,
	"RST_FIRST_SOURCE_FD":  rstFirstSourceFd,
	"RST_CPU_MASK_BYTES":   rstCPUMaskBytes,
	"RST_NSIG":             rstNsig,

	"RST_CALL_SYSCALL":     rstCallSyscall,
	"RST_CALL_WRITE":       rstCallWrite,
	"RST_CALL_FUTEX_SLOTS": rstCallFutexSlots,
	"RST_CALL_CGROUP":      rstCallCgroup,
	"RST_CALL_DATA_WORDS":  rstCallDataWords,
}

// cOnlyDefines are the defines of c/abi.h Go has no use for, each with the
// reason.
var cOnlyDefines = map[string]string{
	"GOCR_RESTORER_ABI_H": "include guard, no value",
	"RST_PEERCRED_ARG":    "a string: peercred.go's rstPeercredArg",
}

// TestDefinesMatchC checks every #define of c/abi.h against abiDefines,
// both ways, and that every restore step has a message.
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
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		if c := defs[name]; strings.HasPrefix(name, "RST_STEP_") && rstSteps[uint32(c)] == "" {
			t.Errorf("%s (%d): no message in rstSteps", name, c)
		}
	}
}
