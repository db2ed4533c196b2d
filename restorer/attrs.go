//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// Attribute calls (RST_CALL_*, struct rst_call in restorer/c/abi.h): what
// each restored process and thread sets on itself before its
// credentials drop.
const (
	rstCallSyscall    = 1
	rstCallWrite      = 2
	rstCallFutexSlots = 3
	rstCallCgroup     = 4
	rstCallDataWords  = 4
)

type rstCall struct {
	Op      uint32                   `c:"op"`
	Thread  uint32                   `c:"thread"`
	Nr      uint32                   `c:"nr"`
	PtrArgs uint32                   `c:"ptr_args"`
	Args    [6]uint64                `c:"args"`
	Data    [rstCallDataWords]uint64 `c:"data"`
}

// Kernel values the calls use that golang.org/x/sys/unix does not name
// (include/uapi/linux/prctl.h, include/uapi/linux/ioprio.h,
// include/uapi/linux/mempolicy.h).
const (
	prSetThpDisable          = 41
	prThpDisableExceptAdvise = 1 << 1 // PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18)
	prSetMemoryMerge         = 67
	prMceKillClear           = 0
	prMceKillSet             = 1
	prMceKillDefault         = 2
	ioprioWhoProcess         = 1
	mpolDefault              = 0
)

// planAttrs adds to the plan the calls that set the process's and its
// threads' attributes (gocrpb.ProcessAttrs, gocrpb.ThreadAttrs); images
// from before they were recorded leave them as the restore creates them.
func (p *plan) planAttrs(task *gocrpb.Task) error {
	for i, th := range task.Threads {
		if err := p.planThreadAttrs(uint32(i), th); err != nil {
			return fmt.Errorf("thread %d: %w", th.Tid, err)
		}
	}
	a := task.Attrs
	if a == nil {
		return nil
	}
	// The kernel takes oom_score_adj and coredump_filter as text in
	// these forms (fs/proc/base.c oom_score_adj_write,
	// proc_coredump_filter_write).
	p.write("oom_score_adj", "/proc/self/oom_score_adj", strconv.Itoa(int(a.OomScoreAdj)))
	p.write("coredump_filter", "/proc/self/coredump_filter", fmt.Sprintf("0x%x", a.CoredumpFilter))
	// One autogroup per session, made by setsid (man 7 sched): the
	// session's leader sets its nice for every member; a session led
	// outside the dump is gocr's, checked by checkAttrs.
	// setsid makes a new autogroup of nice 0 (kernel/sched/autogroup.c
	// autogroup_create), so only another nice is written.
	if ag := a.Autogroup; ag != nil && task.Sid == task.Pid && ag.Nice != 0 {
		p.write("autogroup nice", "/proc/self/autogroup", strconv.Itoa(int(ag.Nice)))
	}
	if au := a.Audit; au != nil {
		own, _, err := procfs.ReadAuditIds(os.Getpid())
		if errors.Is(err, procfs.ErrNotShown) {
			return fmt.Errorf("it has audit login uid %d, and this kernel has no audit", au.Loginuid)
		}
		if err != nil {
			return fmt.Errorf("gocr's own audit login uid: %w", err)
		}
		// Only a process itself may set its loginuid
		// (fs/proc/base.c proc_loginuid_write).
		if au.Loginuid != own {
			p.write("audit loginuid", "/proc/self/loginuid", strconv.FormatUint(uint64(au.Loginuid), 10))
		}
	}
	// The leader's calls are made after every thread exists (restorer.c
	// restore_stage2).
	// PR_GET_THP_DISABLE gives 0, or 1 with the flags PR_SET_THP_DISABLE
	// took shifted in (kernel/sys.c); it is inherited from gocr, so it
	// is set either way.
	if a.ThpDisable&^(1|prThpDisableExceptAdvise) != 0 || a.ThpDisable == prThpDisableExceptAdvise {
		return fmt.Errorf("PR_GET_THP_DISABLE gave %#x, which is not restored", a.ThpDisable)
	}
	p.syscall("THP disable (PR_SET_THP_DISABLE)", 0, unix.SYS_PRCTL, prSetThpDisable, uint64(a.ThpDisable&1), uint64(a.ThpDisable&^1))
	if a.MemoryMerge {
		p.syscall("KSM for the whole process (PR_SET_MEMORY_MERGE)", 0, unix.SYS_PRCTL, prSetMemoryMerge, 1)
	}
	if a.FutexSlots > 0 && int(a.FutexSlots) != kernelFutexSlots(len(task.Threads)) {
		p.calls = append(p.calls, rstCall{Op: rstCallFutexSlots, Args: [6]uint64{uint64(a.FutexSlots)}})
		p.callNames = append(p.callNames, fmt.Sprintf("futex hash of %d slots (PR_FUTEX_HASH)", a.FutexSlots))
	}
	if a.Mlockall != 0 {
		if a.Mlockall&^(unix.MCL_FUTURE|unix.MCL_ONFAULT) != 0 || a.Mlockall&unix.MCL_FUTURE == 0 {
			return fmt.Errorf("mlockall flags %#x are not restored", a.Mlockall)
		}
		p.syscall("mlockall", 0, unix.SYS_MLOCKALL, uint64(a.Mlockall))
	}
	return p.planMembarrier(a.MembarrierRegistrations)
}

// membarrierCommands are the registration commands of membarrier(2),
// in the order they are made (include/uapi/linux/membarrier.h).
var membarrierCommands = []struct {
	cmd  uint32
	name string
}{
	{1 << 2, "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED"},
	{1 << 4, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED"},
	{1 << 6, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"},
	{1 << 8, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ"},
}

// planMembarrier makes the process's membarrier registrations again:
// they belong to its mm (kernel/sched/membarrier.c), which the restore
// builds anew. Each must be one this kernel supports, as
// MEMBARRIER_CMD_QUERY (0) lists them (man 2 membarrier); one it lacks
// (a kernel without CONFIG_RSEQ, or without membarrier) is refused
// before anything is created.
func (p *plan) planMembarrier(registrations uint32) error {
	if registrations == 0 {
		return nil
	}
	supported, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, 0, 0, 0)
	if errno != 0 {
		supported = 0
	}
	for _, c := range membarrierCommands {
		if registrations&c.cmd == 0 {
			continue
		}
		if uint32(supported)&c.cmd == 0 {
			return fmt.Errorf("it registered for membarrier with %s, which this kernel does not support (MEMBARRIER_CMD_QUERY gives %#x)", c.name, supported)
		}
		registrations &^= c.cmd
		p.syscall("membarrier "+c.name, 0, unix.SYS_MEMBARRIER, uint64(c.cmd), 0, 0)
	}
	if registrations != 0 {
		return fmt.Errorf("membarrier registrations %#x, which gocr does not know", registrations)
	}
	return nil
}

// planThreadAttrs adds the calls thread index makes on itself.
func (p *plan) planThreadAttrs(index uint32, th *gocrpb.Thread) error {
	a := th.Attrs
	if a == nil {
		return nil
	}
	p.syscall(fmt.Sprintf("thread %d: I/O priority %#x (ioprio_set)", th.Tid, a.Ioprio), index,
		unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uint64(a.Ioprio))
	// A timer slack of 0 is an RT thread's (its policy, set after,
	// zeroes it again); PR_SET_TIMERSLACK takes 0 for "the default"
	// (man 2 PR_SET_TIMERSLACK).
	if a.TimerSlackNs != 0 {
		p.syscall(fmt.Sprintf("thread %d: timer slack %d ns (PR_SET_TIMERSLACK)", th.Tid, a.TimerSlackNs), index,
			unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, a.TimerSlackNs)
	}
	switch a.MceKill {
	case prMceKillDefault:
		p.syscall(fmt.Sprintf("thread %d: memory error policy (PR_MCE_KILL)", th.Tid), index,
			unix.SYS_PRCTL, unix.PR_MCE_KILL, prMceKillClear)
	case unix.PR_MCE_KILL_EARLY, unix.PR_MCE_KILL_LATE:
		p.syscall(fmt.Sprintf("thread %d: memory error policy (PR_MCE_KILL)", th.Tid), index,
			unix.SYS_PRCTL, unix.PR_MCE_KILL, prMceKillSet, uint64(a.MceKill))
	default:
		return fmt.Errorf("PR_MCE_KILL_GET gave %d, which is not restored", a.MceKill)
	}
	switch a.Tsc {
	case 0:
	case unix.PR_TSC_ENABLE, unix.PR_TSC_SIGSEGV:
		p.syscall(fmt.Sprintf("thread %d: TSC mode (PR_SET_TSC)", th.Tid), index, unix.SYS_PRCTL, unix.PR_SET_TSC, uint64(a.Tsc))
	default:
		return fmt.Errorf("PR_GET_TSC gave %d, which is not restored", a.Tsc)
	}
	if mp := a.Mempolicy; mp != nil {
		if len(mp.Nodes) > rstCallDataWords {
			for _, w := range mp.Nodes[rstCallDataWords:] {
				if w != 0 {
					return fmt.Errorf("a NUMA memory policy on nodes above %d, which the restorer does not take", rstCallDataWords*64-1)
				}
			}
		}
		name := fmt.Sprintf("thread %d: NUMA memory policy %#x (set_mempolicy)", th.Tid, mp.Mode)
		if mp.Mode == mpolDefault {
			p.syscall(name, index, unix.SYS_SET_MEMPOLICY, mpolDefault, 0, 0)
		} else {
			// set_mempolicy reads maxnode-1 bits (mm/mempolicy.c
			// get_nodes; man 2 set_mempolicy, BUGS).
			c := rstCall{Op: rstCallSyscall, Thread: index, Nr: unix.SYS_SET_MEMPOLICY, PtrArgs: 1 << 1,
				Args: [6]uint64{uint64(uint32(mp.Mode)), 0, rstCallDataWords*64 + 1}}
			copy(c.Data[:], mp.Nodes)
			p.calls = append(p.calls, c)
			p.callNames = append(p.callNames, name)
		}
	}
	return nil
}

// kernelFutexSlots is the size of the futex hash the kernel gives by
// itself to a process as it creates threads, up to nthreads of them here
// (kernel/futex/core.c futex_hash_allocate_default: 4 slots a thread, as
// many threads as CPUs online, a power of two, at least 16); a single
// thread uses the global hash, 0 slots. The restore leaves such a size to
// the kernel; any other is set before the threads are created (restorer.c
// restore_futex_slots), which makes it the process's own: it no longer
// grows with its threads, as one the kernel chose would. A size set by
// hand that happens to equal the kernel's comes back as the kernel's.
func kernelFutexSlots(nthreads int) int {
	if nthreads <= 1 {
		return 0
	}
	n := min(nthreads, onlineCPUs())
	slots := 16
	for slots < 4*n {
		slots *= 2
	}
	return slots
}

// onlineCPUs counts /sys/devices/system/cpu/online (man 7 cpuset, "List
// format"); 1 if it cannot be read.
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	mask, err := cpuListMask(strings.TrimSpace(string(b)))
	if err != nil {
		return 1
	}
	n := 0
	for _, m := range mask {
		n += bits.OnesCount8(m)
	}
	return max(n, 1)
}

func (p *plan) syscall(name string, thread uint32, nr uintptr, args ...uint64) {
	c := rstCall{Op: rstCallSyscall, Thread: thread, Nr: uint32(nr)}
	copy(c.Args[:], args)
	p.calls = append(p.calls, c)
	p.callNames = append(p.callNames, name)
}

func (p *plan) write(name, path, text string) {
	p.calls = append(p.calls, rstCall{Op: rstCallWrite, Args: [6]uint64{uint64(p.str(path)), uint64(p.str(text))}})
	p.callNames = append(p.callNames, name+" "+text)
}

// capSysResource and capAuditControl are CAP_SYS_RESOURCE and
// CAP_AUDIT_CONTROL (include/uapi/linux/capability.h).
const (
	capSysResource  = 24
	capAuditControl = 30
)

// checkAttrs refuses, before anything is created, attributes the
// restore could not set from gocr's own:
//   - an oom_score_adj below gocr's: a write below the process's
//     oom_score_adj_min, which it inherits from gocr and which is at most
//     gocr's value, needs CAP_SYS_RESOURCE (fs/proc/base.c __set_oom_adj);
//   - an audit login uid other than gocr's, which only a process holding
//     CAP_AUDIT_CONTROL can change once set (kernel/auditsc.c
//     audit_set_loginuid_perm);
//   - the nice of the autogroup of a session led outside the dump: the
//     process joins gocr's session, and so its autogroup (man 7 sched),
//     whose nice the restore does not change, as other processes have it.
func checkAttrs(procs []*proc) error {
	self := os.Getpid()
	ownOom, err := procfs.ReadOomScoreAdj(self)
	if err != nil {
		return err
	}
	ownLogin, _, loginErr := procfs.ReadAuditIds(self)
	ownNice, niceErr := procfs.ReadAutogroupNice(self)
	leaders := map[int32]bool{}
	for _, pr := range procs {
		if !pr.task.Zombie {
			leaders[pr.task.Pid] = pr.task.Sid == pr.task.Pid
		}
	}
	for _, pr := range procs {
		a := pr.task.Attrs
		if a == nil {
			continue
		}
		if err := checkProcAttrs(a, ownOom, ownLogin, loginErr); err != nil {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
		if ag := a.Autogroup; ag != nil && !leaders[pr.task.Sid] && niceErr == nil && ag.Nice != ownNice {
			return fmt.Errorf("restore pid %d: its session, led outside the dump, had an autogroup of nice %d; the restore's session has %d", pr.task.Pid, ag.Nice, ownNice)
		}
	}
	return nil
}

func checkProcAttrs(a *gocrpb.ProcessAttrs, ownOom int32, ownLogin uint32, loginErr error) error {
	if a.OomScoreAdj < ownOom && !hasCap(capSysResource) {
		return fmt.Errorf("its oom_score_adj %d is below gocr's own %d, and gocr lacks CAP_SYS_RESOURCE to lower it", a.OomScoreAdj, ownOom)
	}
	if au := a.Audit; au != nil {
		if errors.Is(loginErr, procfs.ErrNotShown) {
			return fmt.Errorf("it has audit login uid %d, and this kernel has no audit", au.Loginuid)
		}
		if loginErr != nil {
			return loginErr
		}
		if au.Loginuid != ownLogin && ownLogin != auditUIDUnset && !hasCap(capAuditControl) {
			return fmt.Errorf("its audit login uid %d is not gocr's %d, and gocr lacks CAP_AUDIT_CONTROL to set it", au.Loginuid, ownLogin)
		}
	}
	return nil
}

// auditUIDUnset is AUDIT_UID_UNSET (include/linux/audit.h): no login uid.
const auditUIDUnset = 4294967295
