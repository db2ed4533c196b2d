// Package testhook is the one place where gocr takes fault-injection
// settings from its tests, in the spirit of CRIU's criu/fault-injection.c:
// the tests set GOCR_TEST_HOOKS to a comma-separated list of name=value
// pairs, and production code asks for a hook by its name below. Nothing
// else in gocr reads the environment for testing.
package testhook

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Env is the environment variable the hooks are read from, once, at start.
const Env = "GOCR_TEST_HOOKS"

// The hooks, each with the value it takes.
const (
	// PauseAfterInfect (a duration): hold the parasite in place after
	// infection, so a test can kill gocr while it runs.
	PauseAfterInfect = "pause-after-infect"
	// PauseInThreadStates (a duration): hold every thread in the
	// thread-state stub, so a test can kill gocr there.
	PauseInThreadStates = "pause-in-thread-states"
	// PauseBeforeFinish (a duration): hold a restore with every process
	// parked in the restorer, so a test can kill gocr there.
	PauseBeforeFinish = "pause-before-finish"
	// PauseBeforeLaunch (a duration): hold a restore once it has found
	// every PID free, before the restorer creates any process, so a test
	// can take a PID or start another restore meanwhile.
	PauseBeforeLaunch = "pause-before-launch"
	// PageHelperTid (a TID): the TID offered to every page-stream helper
	// thread of a restore, so a test can offer one in use.
	PageHelperTid = "page-helper-tid"
	// PauseAfterSnapshot (a duration): hold a dump --snapshot once the
	// snapshot process exists, the job still frozen with the parasite
	// in it, so a test can kill gocr there.
	PauseAfterSnapshot = "pause-after-snapshot"
	// PauseInSnapshotWrite (a duration): hold a dump --snapshot after
	// the snapshot process has written its first pages, the job
	// running, so a test can kill gocr there.
	PauseInSnapshotWrite = "pause-in-snapshot-write"
	// PauseInjectedSyscallSet (a number N): hold gocr for a minute once
	// the thread's registers are set for the Nth system call gocr injects
	// (counted from 1), before it runs, so a test can kill gocr there.
	PauseInjectedSyscallSet = "pause-injected-syscall-set"
	// PauseInjectedSyscallEntered (a number N): hold gocr for a minute
	// with the thread in the syscall-enter-stop of the Nth system call
	// gocr injects.
	PauseInjectedSyscallEntered = "pause-injected-syscall-entered"
	// PauseAfterTCPRepairOn (a duration, or a file path to hold until
	// it exists: Hold): hold a dump once every TCP connection is in
	// repair mode (and, with --tcp-established, its nftables table
	// made), before any is read, so a test can kill or stop gocr there.
	PauseAfterTCPRepairOn = "pause-after-tcp-repair-on"
	// PauseAfterTCPCapture (a duration): hold a dump once every TCP
	// connection is read and out of repair mode again, its nftables
	// table still there.
	PauseAfterTCPCapture = "pause-after-tcp-capture"
	// PauseBeforeEndingJob (a duration): hold a dump once its images
	// are complete, before it ends the dumped processes.
	PauseBeforeEndingJob = "pause-before-ending-job"
	// FailInTCPCapture (any number): fail a dump once every TCP
	// connection is in repair mode, before any is read, so a test sees
	// the job's connections work on after a dump error there.
	FailInTCPCapture = "fail-in-tcp-capture"
	// PauseInTCPRelease (a duration): hold a restore once every TCP
	// connection is made again in repair mode, before any leaves it.
	PauseInTCPRelease = "pause-in-tcp-release"
	// ForkSharedLost (a number N): a dump takes the first N pages each
	// child's mapping shares with its parent as no longer shared when it
	// checks them once every process is captured (dump/forkshared.go).
	ForkSharedLost = "fork-shared-lost"
	// ForkSharedAtStage (any number): a restore maps the memory shared
	// since fork at its stage address and moves it into place, even
	// where its place is free (restorer/stage.go).
	ForkSharedAtStage = "fork-shared-at-stage"
	// PauseBeforeRelease (a duration): hold a restore once every
	// process is finished (registers, masks set), before it releases
	// them.
	PauseBeforeRelease = "pause-before-release"
	// PauseAfterRelease (a duration): hold a restore once it has
	// committed, before it lets the packets of its connections to peers
	// outside flow again.
	PauseAfterRelease = "pause-after-release"
	// KillInRelease (a number N): gocr SIGKILLs itself at step N of a
	// restore's release, counted from 1: each thread's detach is a step,
	// the commit after them the last.
	KillInRelease = "kill-in-release"
	// HoldAfterPreScan (a file path): hold an incremental dump once it
	// has scanned the job's writes before the freeze (dump/prescan.go),
	// the job still running, until that file exists (Hold).
	HoldAfterPreScan = "hold-after-pre-scan"
)

var known = map[string]bool{PauseAfterInfect: true, PauseInThreadStates: true, PauseBeforeFinish: true, PauseBeforeLaunch: true,
	PageHelperTid: true, PauseInjectedSyscallSet: true, PauseInjectedSyscallEntered: true,
	PauseAfterSnapshot: true, PauseInSnapshotWrite: true,
	PauseAfterTCPRepairOn: true, PauseAfterTCPCapture: true, PauseInTCPRelease: true, PauseBeforeEndingJob: true,
	PauseBeforeRelease: true, PauseAfterRelease: true, KillInRelease: true,
	FailInTCPCapture: true, ForkSharedLost: true, ForkSharedAtStage: true, HoldAfterPreScan: true}

var hooks = parse(setting(os.Getenv(Env), secure()))

// setting is the hooks' setting gocr obeys: none when it runs in secure
// mode, where whoever started it is not trusted with its privilege (a
// hook that holds gocr at a step, or picks the TIDs a restore claims,
// is for tests run by root, not for a user gocr's file capabilities
// serve). A setting ignored is said so on stderr.
func setting(env string, secure bool) string {
	if secure && env != "" {
		fmt.Fprintf(os.Stderr, "gocr: %s ignored: gocr runs with privileges its user does not have (AT_SECURE)\n", Env)
		return ""
	}
	return env
}

// atSecure is AT_SECURE (include/uapi/linux/auxvec.h): non-zero in the
// auxiliary vector when the kernel ran gocr in secure mode, as it does
// for a file with capabilities a non-root user runs, or a set-id one
// (man 3 getauxval, security/commoncap.c cap_bprm_creds_from_file).
const atSecure = 23

// secure tells whether gocr runs in secure mode; an auxiliary vector
// that cannot be read counts as secure.
func secure() bool {
	auxv, err := unix.Auxv()
	if err != nil {
		return true
	}
	for _, kv := range auxv {
		if kv[0] == atSecure {
			return kv[1] != 0
		}
	}
	return false
}

// parse reads "name=value,name=value". A name gocr does not know is
// reported on stderr and ignored: a typo in a test must not pass unseen,
// and must not change what gocr does either.
func parse(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, value, _ := strings.Cut(kv, "=")
		if !known[name] {
			fmt.Fprintf(os.Stderr, "gocr: %s: unknown test hook %q ignored\n", Env, name)
			continue
		}
		out[name] = value
	}
	return out
}

// Setting returns the value "name=value" in GOCR_TEST_HOOKS for a hook,
// for a test to put in the environment of the gocr it starts.
func Setting(name, value string) string { return Env + "=" + name + "=" + value }

// Pause sleeps for the duration the hook name is set to, if it is set;
// set to an absolute file path instead, it holds until that file exists
// (Hold), so that a test whose work there takes however long lets gocr
// go on only once it is done. It says so on stderr first
// (Announcement), so a test waits for gocr to be exactly there rather
// than guessing from outside.
func Pause(name string) { PauseContext(context.Background(), name) }

// PauseContext is Pause that ends early when ctx does: the pause stands
// for gocr waiting there, and gocr's waits end when it is told to stop.
func PauseContext(ctx context.Context, name string) {
	if strings.HasPrefix(hooks[name], "/") {
		Hold(ctx, name)
		return
	}
	if d, err := time.ParseDuration(hooks[name]); err == nil {
		fmt.Fprintln(os.Stderr, Announcement(name))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
}

// Hold holds gocr, if the hook name is set to a file's path, until that
// file exists: a test lets gocr go on once it has done what it does
// there. It says so on stderr first (Announcement), and holds no longer
// than countHold, nor once ctx ends.
func Hold(ctx context.Context, name string) {
	path := hooks[name]
	if path == "" {
		return
	}
	fmt.Fprintln(os.Stderr, Announcement(name))
	deadline := time.After(countHold)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

// countHold is how long PauseNth holds: far longer than a test takes to
// kill gocr once it has seen the announcement.
const countHold = time.Minute

var (
	countsMu sync.Mutex
	counts   = map[string]int{}
)

// PauseNth counts the calls made with name and, on the Nth, N being the
// hook's value, says so on stderr (Announcement) and holds for a minute.
func PauseNth(name string) {
	if nth(name) {
		fmt.Fprintln(os.Stderr, Announcement(name))
		time.Sleep(countHold)
	}
}

// nth counts the calls made with name and tells whether this one is the
// Nth, N being the hook's value.
func nth(name string) bool {
	if len(hooks) == 0 {
		return false
	}
	want, err := strconv.Atoi(hooks[name])
	if err != nil {
		return false
	}
	countsMu.Lock()
	defer countsMu.Unlock()
	counts[name]++
	return counts[name] == want
}

// KillNth counts the calls made with name and, on the Nth, N being the
// hook's value, SIGKILLs gocr: a death at that exact point, which a test
// killing gocr from outside could not hit.
func KillNth(name string) {
	if nth(name) {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is never blocked: gocr ends here
	}
}

// Announcement is the line gocr writes on stderr when a pause hook holds it.
func Announcement(name string) string { return "gocr: test hook " + name + ": holding" }

// Int returns the hook's value as a number, and whether it is set to one.
func Int(name string) (int, bool) {
	n, err := strconv.Atoi(hooks[name])
	return n, err == nil
}
