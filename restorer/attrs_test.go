//go:build linux

package restorer

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// The calls a plan carries for a process's and its threads' attributes:
// each thread's own, in that thread; the process's in the leader; /proc
// writes as text; a nodemask passed by address.
func TestPlanAttrs(t *testing.T) {
	task := &gocrpb.Task{Pid: 10, Sid: 10,
		Threads: []*gocrpb.Thread{
			{Tid: 10, Attrs: &gocrpb.ThreadAttrs{Ioprio: 0x4005, TimerSlackNs: 123456, MceKill: unix.PR_MCE_KILL_EARLY,
				Tsc: unix.PR_TSC_SIGSEGV, Mempolicy: &gocrpb.Mempolicy{Mode: 2 | 1<<15, Nodes: []uint64{1}}}},
			{Tid: 11, Attrs: &gocrpb.ThreadAttrs{MceKill: prMceKillDefault}},
		},
		Attrs: &gocrpb.ProcessAttrs{OomScoreAdj: 345, CoredumpFilter: 0x7f, Autogroup: &gocrpb.Autogroup{Nice: 7},
			ThpDisable: 1 | prThpDisableExceptAdvise, MemoryMerge: true, FutexSlots: 1024,
			Mlockall: unix.MCL_FUTURE | unix.MCL_ONFAULT},
	}
	p := &plan{strOff: map[string]uint32{}}
	if err := p.planAttrs(task); err != nil {
		t.Fatal(err)
	}
	byName := map[string]rstCall{}
	for i, c := range p.calls {
		byName[p.callNames[i]] = c
	}
	find := func(prefix string) rstCall {
		t.Helper()
		for name, c := range byName {
			if strings.HasPrefix(name, prefix) {
				return c
			}
		}
		t.Fatalf("no call %q in %q", prefix, p.callNames)
		return rstCall{}
	}
	if c := find("thread 10: timer slack"); c.Thread != 0 || c.Nr != unix.SYS_PRCTL || c.Args[0] != unix.PR_SET_TIMERSLACK || c.Args[1] != 123456 {
		t.Errorf("timer slack call %+v", c)
	}
	if _, ok := byName["thread 11: timer slack 0 ns (PR_SET_TIMERSLACK)"]; ok {
		t.Errorf("a timer slack of 0 (an RT thread's) is set")
	}
	if c := find("thread 11: memory error policy"); c.Thread != 1 || c.Args[1] != prMceKillClear {
		t.Errorf("PR_MCE_KILL_DEFAULT call %+v", c)
	}
	if c := find("thread 10: NUMA memory policy"); c.Nr != unix.SYS_SET_MEMPOLICY || c.PtrArgs != 1<<1 || c.Args[1] != 0 || c.Data[0] != 1 || c.Args[0] != 2|1<<15 {
		t.Errorf("set_mempolicy call %+v", c)
	}
	if c := find("THP disable"); c.Args[1] != 1 || c.Args[2] != prThpDisableExceptAdvise {
		t.Errorf("PR_SET_THP_DISABLE call %+v", c)
	}
	if c := find("futex hash of 1024 slots"); c.Op != rstCallFutexSlots || c.Args[0] != 1024 {
		t.Errorf("futex hash call %+v", c)
	}
	if c := find("mlockall"); c.Args[0] != unix.MCL_FUTURE|unix.MCL_ONFAULT {
		t.Errorf("mlockall call %+v", c)
	}
	for _, w := range []string{"oom_score_adj 345", "coredump_filter 0x7f", "autogroup nice 7"} {
		if c := find(w); c.Op != rstCallWrite {
			t.Errorf("%s: op %d, want a write", w, c.Op)
		}
	}

	// A session led outside the dump: its autogroup is not written.
	task.Sid = 1
	p = &plan{strOff: map[string]uint32{}}
	if err := p.planAttrs(task); err != nil {
		t.Fatal(err)
	}
	for _, name := range p.callNames {
		if strings.HasPrefix(name, "autogroup") {
			t.Errorf("planned %q for a process whose session is led outside the dump", name)
		}
	}
}

// Values the restorer does not know how to set are refused, not passed on.
func TestPlanAttrsRefuses(t *testing.T) {
	for name, task := range map[string]*gocrpb.Task{
		"mlockall": {Threads: []*gocrpb.Thread{{Tid: 1}}, Attrs: &gocrpb.ProcessAttrs{Mlockall: unix.MCL_ONFAULT}},
		"THP":      {Threads: []*gocrpb.Thread{{Tid: 1}}, Attrs: &gocrpb.ProcessAttrs{ThpDisable: 8}},
		"MCE":      {Threads: []*gocrpb.Thread{{Tid: 1, Attrs: &gocrpb.ThreadAttrs{MceKill: 9}}}},
		"TSC":      {Threads: []*gocrpb.Thread{{Tid: 1, Attrs: &gocrpb.ThreadAttrs{MceKill: prMceKillDefault, Tsc: 7}}}},
		"nodes": {Threads: []*gocrpb.Thread{{Tid: 1, Attrs: &gocrpb.ThreadAttrs{MceKill: prMceKillDefault,
			Mempolicy: &gocrpb.Mempolicy{Mode: 2, Nodes: []uint64{0, 0, 0, 0, 1}}}}}},
	} {
		p := &plan{strOff: map[string]uint32{}}
		if err := p.planAttrs(task); err == nil {
			t.Errorf("%s: planAttrs took %v", name, task)
		}
	}
}

// The kernel's own futex hash size is left to the kernel.
func TestKernelFutexSlots(t *testing.T) {
	if got := kernelFutexSlots(1); got != 0 {
		t.Errorf("kernelFutexSlots(1) = %d, want 0: one thread uses the global hash", got)
	}
	if got := kernelFutexSlots(2); got < 16 || got&(got-1) != 0 {
		t.Errorf("kernelFutexSlots(2) = %d, want a power of two of at least 16", got)
	}
}

// An oom_score_adj below gocr's is refused without CAP_SYS_RESOURCE; a
// login uid other than gocr's set one without CAP_AUDIT_CONTROL.
func TestCheckProcAttrs(t *testing.T) {
	low := &gocrpb.ProcessAttrs{OomScoreAdj: -5}
	err := checkProcAttrs(low, 0, auditUIDUnset, nil)
	if hasCap(capSysResource) != (err == nil) {
		t.Errorf("oom_score_adj -5 below 0, CAP_SYS_RESOURCE %v: %v", hasCap(capSysResource), err)
	}
	if err := checkProcAttrs(&gocrpb.ProcessAttrs{OomScoreAdj: 5}, 0, auditUIDUnset, nil); err != nil {
		t.Errorf("oom_score_adj 5 above 0: %v", err)
	}
	login := &gocrpb.ProcessAttrs{Audit: &gocrpb.AuditIds{Loginuid: 4321}}
	if err := checkProcAttrs(login, 0, auditUIDUnset, nil); err != nil {
		t.Errorf("a login uid when gocr has none: %v", err)
	}
	err = checkProcAttrs(login, 0, 1000, nil)
	if hasCap(capAuditControl) != (err == nil) {
		t.Errorf("login uid 4321, gocr's 1000, CAP_AUDIT_CONTROL %v: %v", hasCap(capAuditControl), err)
	}
}

// A process of a session led outside the dump joins the restore's
// session and its autogroup: another nice there is refused.
func TestCheckAttrsAutogroup(t *testing.T) {
	nice, err := procfs.ReadAutogroupNice(os.Getpid())
	if err != nil {
		t.Skipf("no autogroup to compare with: %v", err)
	}
	oom, err := procfs.ReadOomScoreAdj(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	outside := &proc{task: &gocrpb.Task{Pid: 10, Sid: 1,
		Attrs: &gocrpb.ProcessAttrs{OomScoreAdj: oom, Autogroup: &gocrpb.Autogroup{Nice: nice + 1}}}}
	if err := checkAttrs([]*proc{outside}); err == nil || !strings.Contains(err.Error(), "autogroup") {
		t.Errorf("checkAttrs of a session led outside with another autogroup nice = %v, want a refusal", err)
	}
	leader := &proc{task: &gocrpb.Task{Pid: 10, Sid: 10,
		Attrs: &gocrpb.ProcessAttrs{OomScoreAdj: oom, Autogroup: &gocrpb.Autogroup{Nice: nice + 1}}}}
	if err := checkAttrs([]*proc{leader}); err != nil {
		t.Errorf("checkAttrs of a session leader: %v", err)
	}
}

// TestCheckRlimits: a hard limit above gocr's own is refused unless gocr
// holds CAP_SYS_RESOURCE, which lets the restorer raise it.
func TestCheckRlimits(t *testing.T) {
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max == unix.RLIM_INFINITY {
		t.Skip("RLIMIT_CORE's hard limit is unlimited here: no limit is above it")
	}
	task := &gocrpb.Task{Rlimits: []*gocrpb.Rlimit{{Resource: unix.RLIMIT_CORE, Cur: 0, Max: own.Max + 1}}}
	err := checkRlimits(task)
	if hasCap(capSysResource) {
		if err != nil {
			t.Errorf("with CAP_SYS_RESOURCE: %v", err)
		}
	} else if err == nil {
		t.Error("without CAP_SYS_RESOURCE a hard limit above gocr's was taken")
	}
}

// TestCheckLSMLabel: a job dumped under one LSM label is not restored
// under another; images that record none restore anywhere.
func TestCheckLSMLabel(t *testing.T) {
	own, err := procfs.ReadLSMLabel(os.Getpid())
	if err != nil && !errors.Is(err, procfs.ErrNotShown) {
		t.Fatal(err)
	}
	for _, c := range []struct {
		recorded string
		ok       bool
	}{
		{"", true},
		{own + "-other", false},
		{own, true},
	} {
		err := checkLSMLabel(&gocrpb.Inventory{LsmLabel: c.recorded})
		if (err == nil) != c.ok {
			t.Errorf("recorded %q, gocr's %q: %v, want ok %v", c.recorded, own, err, c.ok)
		}
		if err != nil {
			t.Log(err)
		}
	}
}
