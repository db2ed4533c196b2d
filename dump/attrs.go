//go:build linux

package dump

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// Process and thread attributes the restorer sets again
// (gocrpb.ProcessAttrs, gocrpb.ThreadAttrs), or that the dump refuses.
// What /proc shows is read from outside while the process is frozen,
// beside the tracer thread (readAttrs, beside.go); what only ptrace
// shows, on the tracer thread (collectAttrs); what only the process can
// read of itself comes from the parasite (parasiteAttrs, threadAttrs).

// Kernel values golang.org/x/sys/unix does not name.
const (
	// PF_MEMALLOC_NOIO and PF_LOCAL_THROTTLE, the task flags
	// PR_SET_IO_FLUSHER sets (include/linux/sched.h, kernel/sys.c
	// PR_IO_FLUSHER), shown in /proc/PID/stat's flags (man 5 proc_pid_stat).
	pfMemallocNoio  = 0x00080000
	pfLocalThrottle = 0x00100000
	prSchedCore     = 62 // PR_SCHED_CORE (include/uapi/linux/prctl.h)
	prSchedCoreGet  = 0
	pidtypePid      = 0
	mpolFlagsMask   = 0x7 << 13 // MPOL_F_STATIC_NODES, _RELATIVE_NODES, _NUMA_BALANCING (include/uapi/linux/mempolicy.h)
	mpolMaxMode     = 7         // MPOL_MAX - 1: MPOL_WEIGHTED_INTERLEAVE (Linux 6.9)
	// ARCH_GET_CPUID's answer while CPUID faults (man 2 arch_prctl).
	archGetCPUIDFaulting = 0
)

// collectAttrs reads the attributes of a frozen process and of each of
// its threads that only ptrace or the mappings show, and refuses those
// gocr does not restore; what /proc shows of them was read beside
// (readAttrs). maps is the process's as the dump read it.
//
// The NUMA policies of the mappings take a walk of every page to read
// (numa_maps): with before (a snapshot dump, whose snapshot has the same
// mappings and policies), that check is left to the returned numaCheck,
// run on the snapshot once the process runs again; the threads' own
// policies, which only the frozen process shows, are read here.
func collectAttrs(t *ptrace.Tracer, pid int, task *gocrpb.Task, maps []proc.Mapping, before bool) (*numaCheck, error) {
	nc, err := readThreadNumaPolicies(pid, task.Threads)
	if err != nil {
		return nil, err
	}
	if !before {
		if err := nc.check(pid); err != nil {
			return nil, err
		}
		nc = nil
	}
	for _, m := range maps {
		// The name PR_SET_VMA_ANON_NAME gives (man 2 PR_SET_VMA).
		if strings.HasPrefix(m.Path, "[anon:") || strings.HasPrefix(m.Path, "[anon_shmem:") {
			return nil, fmt.Errorf("mapping %#x-%#x is named %s (PR_SET_VMA_ANON_NAME), which is not restored", m.Start, m.End, m.Path)
		}
	}
	for _, th := range task.Threads {
		// Its own system calls would trap in the restorer, and no
		// interface but ptrace reads it (man 2 PR_SET_SYSCALL_USER_DISPATCH).
		if mode, err := t.SyscallUserDispatch(int(th.Tid)); err == nil && mode != 0 {
			return nil, fmt.Errorf("thread %d has syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH), which is not restored", th.Tid)
		} else if err != nil && !errors.Is(err, unix.EIO) {
			return nil, err
		}
	}
	return nc, nil
}

// attrReads is what /proc and ioprio_get show of a frozen process's
// attributes and its threads' (readAttrs), read beside the tracer
// thread (beside.go).
type attrReads struct {
	process *gocrpb.ProcessAttrs
	threads map[int]*gocrpb.ThreadAttrs // by TID
}

// readAttrs reads the attributes of process pid, whose threads are tids,
// that /proc and ioprio_get show, and refuses those gocr does not
// restore.
func readAttrs(pid int, tids []int) (*attrReads, error) {
	a := &gocrpb.ProcessAttrs{}
	var err error
	if a.OomScoreAdj, err = proc.ReadOomScoreAdj(pid); err != nil {
		return nil, err
	}
	if a.CoredumpFilter, err = proc.ReadCoredumpFilter(pid); err != nil {
		return nil, err
	}
	if nice, err := proc.ReadAutogroupNice(pid); err == nil {
		a.Autogroup = &gocrpb.Autogroup{Nice: nice}
	} else if !errors.Is(err, proc.ErrNotShown) {
		return nil, err
	}
	if login, session, err := proc.ReadAuditIds(pid); err == nil {
		a.Audit = &gocrpb.AuditIds{Loginuid: login, Sessionid: session}
	} else if !errors.Is(err, proc.ErrNotShown) {
		return nil, err
	}
	if a.Cgroups, err = collectCgroups(pid, tids); err != nil {
		return nil, err
	}
	r := &attrReads{process: a, threads: map[int]*gocrpb.ThreadAttrs{}}
	for _, tid := range tids {
		// ioprio_get on a TID reads that thread's (man 2 ioprio_set).
		prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if errno != 0 {
			return nil, fmt.Errorf("thread %d: ioprio_get: %w", tid, errno)
		}
		if err := checkLSMLabel(tid); err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		if err := checkThreadAttrs(tid); err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		r.threads[tid] = &gocrpb.ThreadAttrs{Ioprio: uint32(prio)}
	}
	return r, nil
}

// fill records the attributes in task, whose threads are those read.
func (r *attrReads) fill(task *gocrpb.Task) error {
	for _, th := range task.Threads {
		ta, ok := r.threads[int(th.Tid)]
		if !ok {
			return fmt.Errorf("thread %d: its attributes were not read", th.Tid)
		}
		th.Attrs = ta
	}
	task.Attrs = r.process
	return nil
}

// ioprioWhoProcess is IOPRIO_WHO_PROCESS (include/uapi/linux/ioprio.h).
const ioprioWhoProcess = 1

// checkLSMLabel refuses a process whose LSM label is not gocr's: the
// restored processes run with the label of the restorer gocr starts,
// and setting another is the LSM's to allow (man 5 proc_pid_attr).
func checkLSMLabel(pid int) error {
	label, err := proc.ReadLSMLabel(pid)
	if errors.Is(err, proc.ErrNotShown) {
		return nil
	}
	if err != nil {
		return err
	}
	own, err := proc.ReadLSMLabel(os.Getpid())
	if err != nil && !errors.Is(err, proc.ErrNotShown) {
		return err
	}
	if label != own {
		return fmt.Errorf("it runs with LSM label %q, gocr with %q: another label is not restored", label, own)
	}
	return nil
}

// checkThreadAttrs refuses thread attributes the restorer does not set.
func checkThreadAttrs(tid int) error {
	// A per-thread speculation control shows as "thread ..." in status
	// (fs/proc/array.c task_seccomp); PR_SET_SPECULATION_CTRL made it.
	sp, err := proc.ReadSpeculation(tid)
	if err != nil {
		return err
	}
	for _, v := range []string{sp.StoreBypass, sp.IndirectBranch} {
		switch v {
		case "thread mitigated", "thread force mitigated", "conditional disabled", "conditional force disabled":
			return fmt.Errorf("its speculation control is %q (PR_SET_SPECULATION_CTRL), which is not restored", v)
		}
	}
	st, err := proc.ReadStat(tid)
	if err != nil {
		return err
	}
	if st.Flags&(pfMemallocNoio|pfLocalThrottle) == pfMemallocNoio|pfLocalThrottle {
		return errors.New("it is an I/O flusher (PR_SET_IO_FLUSHER), which is not restored")
	}
	// A core scheduling cookie groups tasks that may share a core (man 2
	// PR_SCHED_CORE); EINVAL: a kernel without CONFIG_SCHED_CORE.
	if cookie, err := schedCoreCookie(tid); err == nil && cookie != 0 {
		return errors.New("it has a core scheduling cookie (PR_SCHED_CORE), which is not restored")
	}
	return nil
}

// numaCheck refuses NUMA memory policies other than each thread's own:
// numa_maps shows for each mapping its own policy (mbind) or else the
// reading thread's (fs/proc/task_mmu.c show_numa_map), so a mapping that
// differs from the others has one of its own, and a thread whose first
// mapping shows another policy than the others' has a policy of its own.
// The leader's own is read by the parasite and restored in every thread.
type numaCheck struct {
	pid     int
	threads map[int]string // a thread other than the leader: the policy its first mapping shows
}

// readThreadNumaPolicies reads, while pid is frozen, what the first
// mapping shows each thread but the leader: one line of numa_maps, a
// walk of the first mappings only. nil: a kernel without CONFIG_NUMA.
func readThreadNumaPolicies(pid int, threads []*gocrpb.Thread) (*numaCheck, error) {
	nc := &numaCheck{pid: pid, threads: map[int]string{}}
	for _, th := range threads[1:] {
		first, err := proc.ReadNumaPolicies(pid, int(th.Tid), 1)
		if errors.Is(err, proc.ErrNotShown) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(first) == 1 {
			nc.threads[int(th.Tid)] = first[0].Policy
		}
	}
	return nc, nil
}

// check reads every mapping's policy as mapsPid shows it (the process,
// or its snapshot, forked from its leader: the same mappings and
// policies, mm/mempolicy.c vma_dup_policy) and refuses as numaCheck says.
func (nc *numaCheck) check(mapsPid int) error {
	if nc == nil {
		return nil
	}
	all, err := proc.ReadNumaPolicies(mapsPid, mapsPid, 0)
	if errors.Is(err, proc.ErrNotShown) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return nil
	}
	count := map[string]int{}
	for _, np := range all {
		count[np.Policy]++
	}
	common := all[0].Policy
	for p, n := range count {
		if n > count[common] {
			common = p
		}
	}
	for _, np := range all {
		if np.Policy != common {
			return fmt.Errorf("the mapping at %#x has NUMA memory policy %q of its own (mbind), which is not restored", np.Start, np.Policy)
		}
	}
	for tid, policy := range nc.threads {
		if policy != common {
			return fmt.Errorf("thread %d has NUMA memory policy %q, its process %q: a thread's own policy is not restored", tid, policy, common)
		}
	}
	return nil
}

// The flags PR_GET_MDWE gives (include/uapi/linux/prctl.h).
const (
	prMdweRefuseExecGain = 1 << 0
	prMdweNoInherit      = 1 << 1
)

// mdwe checks what PR_GET_MDWE returned (man 2 PR_GET_MDWE; EINVAL: a
// kernel before 6.3, where nothing sets it): flags the restorer sets
// again, last (restorer/c/restorer.c restore_stage2).
func mdwe(ret int64) (uint32, error) {
	switch {
	case ret == -int64(unix.EINVAL):
		return 0, nil
	case ret < 0:
		return 0, fmt.Errorf("PR_GET_MDWE: %w", unix.Errno(-ret))
	case ret&^(prMdweRefuseExecGain|prMdweNoInherit) != 0 || (ret != 0 && ret&prMdweRefuseExecGain == 0):
		return 0, fmt.Errorf("PR_SET_MDWE (memory-deny-write-execute) flags %#x, which gocr does not know", ret)
	}
	return uint32(ret), nil
}

// The registration commands of membarrier(2) (include/uapi/linux/membarrier.h).
const (
	membarrierRegisterGlobalExpedited          = 1 << 2
	membarrierRegisterPrivateExpedited         = 1 << 4
	membarrierRegisterPrivateExpeditedSyncCore = 1 << 6
	membarrierRegisterPrivateExpeditedRseq     = 1 << 8
)

// membarrierRegistrations checks what MEMBARRIER_CMD_GET_REGISTRATIONS
// returned: the registration commands the process made, which the
// restored process makes again (restorer/attrs.go). A kernel before 6.3
// does not have the command (EINVAL): there the parasite found the
// private registrations by trying their commands (probed), and a
// GLOBAL_EXPEDITED one is shown nowhere (kernel/sched/membarrier.c keeps
// it in the mm; its command works without it), so it is unseen there:
// refusing would refuse every job (docs/STATE.md). ENOSYS: a kernel
// without membarrier (CONFIG_MEMBARRIER), where none is made.
func membarrierRegistrations(ret, probed int64) (uint32, error) {
	const known = membarrierRegisterGlobalExpedited | membarrierRegisterPrivateExpedited |
		membarrierRegisterPrivateExpeditedSyncCore | membarrierRegisterPrivateExpeditedRseq
	const private = membarrierRegisterPrivateExpedited | membarrierRegisterPrivateExpeditedSyncCore |
		membarrierRegisterPrivateExpeditedRseq
	switch {
	case ret == -int64(unix.EINVAL):
		return uint32(probed & private), nil
	case ret == -int64(unix.ENOSYS):
		return 0, nil
	case ret < 0:
		return 0, fmt.Errorf("membarrier MEMBARRIER_CMD_GET_REGISTRATIONS: %w", unix.Errno(-ret))
	case ret&^known != 0:
		return 0, fmt.Errorf("membarrier registrations %#x, which gocr does not know", ret)
	}
	return uint32(ret), nil
}

// parasiteAttrs reads what only the process can tell of itself, and
// the parasite thread's (the leader's) ThreadAttrs. Only once the
// parasite's region is mapped does it show whether new mappings are
// locked (mlockall MCL_FUTURE).
func parasiteAttrs(p *parasite.Parasite, pid int, task *gocrpb.Task) error {
	pa, err := p.Attrs()
	if err != nil {
		return err
	}
	a := task.Attrs
	if a == nil {
		return nil
	}
	if pa.ThpDisable < 0 {
		return fmt.Errorf("PR_GET_THP_DISABLE: %w", unix.Errno(-pa.ThpDisable))
	}
	a.ThpDisable = uint32(pa.ThpDisable)
	if a.Mdwe, err = mdwe(pa.Mdwe); err != nil {
		return err
	}
	if a.MembarrierRegistrations, err = membarrierRegistrations(pa.Membarrier, pa.MembarrierProbed); err != nil {
		return err
	}
	// EINVAL: a kernel without KSM (kernel/sys.c).
	a.MemoryMerge = pa.MemoryMerge == 1
	a.FutexSlots = -1
	if pa.FutexSlots >= 0 {
		a.FutexSlots = int32(pa.FutexSlots)
	}
	if err := checkKeyrings(pa); err != nil {
		return err
	}
	flags, err := proc.ReadVmFlagsAt(pid, p.RegionStart())
	if err != nil {
		return err
	}
	for _, f := range flags {
		// mlockall(MCL_FUTURE) gives every new mapping VM_LOCKED, with
		// MCL_ONFAULT VM_LOCKONFAULT too (mm/mlock.c apply_mlockall_flags).
		switch f {
		case "lo":
			a.Mlockall |= unix.MCL_FUTURE
		case "lf":
			a.Mlockall |= unix.MCL_ONFAULT
		}
	}
	var mp *gocrpb.Mempolicy
	switch {
	case pa.MempolicyRet == 0:
		mode := pa.MempolicyMode
		if mode&^mpolFlagsMask > mpolMaxMode {
			return fmt.Errorf("its NUMA memory policy %#x is of a mode gocr does not know", mode)
		}
		nodes := pa.MempolicyNodes[:]
		for len(nodes) > 1 && nodes[len(nodes)-1] == 0 {
			nodes = nodes[:len(nodes)-1]
		}
		mp = &gocrpb.Mempolicy{Mode: mode, Nodes: append([]uint64(nil), nodes...)}
	case pa.MempolicyRet != -int64(unix.ENOSYS):
		return fmt.Errorf("get_mempolicy: %w", unix.Errno(-pa.MempolicyRet))
	}
	// numaCheck makes sure every thread has the leader's.
	for _, th := range task.Threads {
		if th.Attrs != nil {
			th.Attrs.Mempolicy = mp
		}
	}
	return threadAttrs(task.Threads[0], pa.Thread)
}

// checkKeyrings refuses a process with a thread or process keyring, or
// a session keyring other than gocr's or its user's default (man 7
// keyrings): the restored process inherits the restorer's session
// keyring, gocr's, and has no thread or process keyring.
func checkKeyrings(pa *parasite.Attrs) error {
	names := [3]string{"thread", "process", "session"}
	for i, serial := range pa.Keyrings[:2] {
		if serial >= 0 {
			return fmt.Errorf("it has a %s keyring (%d), which is not restored", names[i], serial)
		}
	}
	session := pa.Keyrings[2]
	if session < 0 {
		return nil // a kernel without keys (ENOSYS)
	}
	own, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("gocr's own session keyring: %w", err)
	}
	if session != int64(own) && session != pa.UserSession {
		return fmt.Errorf("its session keyring %d is neither gocr's (%d) nor its user's default, and is not restored: run gocr in the login session the job started in", session, own)
	}
	return nil
}

// threadAttrs takes what thread th read of itself, refusing what the
// restorer does not set.
func threadAttrs(th *gocrpb.Thread, ta parasite.ThreadAttrs) error {
	if th.Attrs == nil {
		return nil
	}
	if ta.TimerSlack < 0 {
		return fmt.Errorf("thread %d: PR_GET_TIMERSLACK: %w", th.Tid, unix.Errno(-ta.TimerSlack))
	}
	th.Attrs.TimerSlackNs = uint64(ta.TimerSlack)
	if ta.MceKill < 0 {
		return fmt.Errorf("thread %d: PR_MCE_KILL_GET: %w", th.Tid, unix.Errno(-ta.MceKill))
	}
	th.Attrs.MceKill = int32(ta.MceKill)
	// EINVAL: an architecture without it; x86 always has PR_GET_TSC.
	if ta.TscRet == 0 {
		th.Attrs.Tsc = int32(ta.Tsc)
	}
	// The L1D flush on context switch a thread asked for (man 2
	// PR_SET_SPECULATION_CTRL): PR_SPEC_PRCTL|PR_SPEC_ENABLE.
	if ta.L1dFlush == unix.PR_SPEC_PRCTL|unix.PR_SPEC_ENABLE {
		return fmt.Errorf("thread %d flushes L1D on context switches (PR_SET_SPECULATION_CTRL), which is not restored", th.Tid)
	}
	// The restored thread has none (man 7 thread-keyring).
	if ta.ThreadKeyring >= 0 {
		return fmt.Errorf("thread %d has a thread keyring (%d), which is not restored", th.Tid, ta.ThreadKeyring)
	}
	// ARCH_GET_CPUID: 1, or 0 while CPUID faults (man 2 arch_prctl).
	if ta.Cpuid == archGetCPUIDFaulting {
		return fmt.Errorf("thread %d has CPUID faulting on (ARCH_SET_CPUID), which is not restored", th.Tid)
	}
	return nil
}
