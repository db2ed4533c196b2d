//go:build linux

package parasite

import (
	"encoding/binary"
)

// The PCMD_ATTRS command and its result, struct parasite_attrs
// (parasite/c/abi.h; abi_test.go checks both sides agree).
const (
	cmdAttrs  = 16
	nodeWords = 16

	atThpDisable     = 0
	atMemoryMerge    = 8
	atFutexSlots     = 16
	atKeyrings       = 24
	atUserSession    = 48
	atMempolicyRet   = 56
	atMempolicyMode  = 64
	atMempolicyNodes = 72
	atTimerSlack     = 200
	atTscRet         = 208
	atTsc            = 216
	atCpuid          = 224
	atMceKill        = 232
	atL1dFlush       = 240
	atMdwe           = 248
	atMembarrier     = 256
	atMembarrierProb = 264
	atSize           = 272
)

// ThreadAttrs is what only a thread can read of itself besides its
// signal and credential state. Each is the call's return: the value, or
// -errno.
type ThreadAttrs struct {
	TimerSlack int64 // prctl(PR_GET_TIMERSLACK): nanoseconds
	TscRet     int64 // prctl(PR_GET_TSC, &Tsc)
	Tsc        int64 // PR_TSC_ENABLE or PR_TSC_SIGSEGV
	Cpuid      int64 // arch_prctl(ARCH_GET_CPUID): 1 enabled, 0 faulting
	MceKill    int64 // PR_MCE_KILL_GET
	L1dFlush   int64 // PR_GET_SPECULATION_CTRL(PR_SPEC_L1D_FLUSH)
	// ThreadKeyring is the thread keyring's serial (KEYCTL_GET_KEYRING_ID).
	ThreadKeyring int64
}

// Attrs is what only the process can read of itself (man 2 prctl, man 2
// keyctl, man 2 get_mempolicy), and the parasite thread's ThreadAttrs.
// Each is the call's return: the value, or -errno.
type Attrs struct {
	ThpDisable    int64    // PR_GET_THP_DISABLE
	MemoryMerge   int64    // PR_GET_MEMORY_MERGE
	FutexSlots    int64    // PR_FUTEX_HASH_GET_SLOTS
	Keyrings      [3]int64 // the thread, process and session keyrings' serials (KEYCTL_GET_KEYRING_ID)
	UserSession   int64    // the user session keyring's serial
	MempolicyRet  int64    // get_mempolicy's return
	MempolicyMode int32    // the thread's mode with its MPOL_F_* flags
	// MempolicyNodes is its nodemask, bit n for node n.
	MempolicyNodes [nodeWords]uint64
	Mdwe           int64 // PR_GET_MDWE
	// Membarrier is membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): the
	// MEMBARRIER_CMD_REGISTER_* commands the process made.
	Membarrier int64
	// MembarrierProbed, where that gave EINVAL (a kernel before 6.3):
	// the MEMBARRIER_CMD_REGISTER_* bits of the private expedited
	// commands that worked in the process (one not registered for
	// fails with EPERM).
	MembarrierProbed int64
	Thread           ThreadAttrs
}

// Attrs reads the process's Attrs in the parasite's thread: those
// DumpState read with its state, once, else with a command of their own.
func (p *Parasite) Attrs() (*Attrs, error) {
	if a := p.stateAttrs; a != nil {
		p.stateAttrs = nil
		return a, nil
	}
	clear(p.local[dataOff : dataOff+atSize])
	if err := p.call(cmdAttrs); err != nil {
		return nil, err
	}
	return parseAttrs(p.local[dataOff : dataOff+atSize]), nil
}

// parseAttrs reads a struct parasite_attrs.
func parseAttrs(b []byte) *Attrs {
	le := binary.LittleEndian
	i64 := func(off int) int64 { return int64(le.Uint64(b[off:])) }
	a := &Attrs{
		ThpDisable: i64(atThpDisable), MemoryMerge: i64(atMemoryMerge), FutexSlots: i64(atFutexSlots),
		UserSession: i64(atUserSession), Mdwe: i64(atMdwe), Membarrier: i64(atMembarrier), MembarrierProbed: i64(atMembarrierProb), MempolicyRet: i64(atMempolicyRet), MempolicyMode: int32(i64(atMempolicyMode)),
		Thread: ThreadAttrs{TimerSlack: i64(atTimerSlack), TscRet: i64(atTscRet), Tsc: i64(atTsc), Cpuid: i64(atCpuid), MceKill: i64(atMceKill), L1dFlush: i64(atL1dFlush),
			ThreadKeyring: i64(atKeyrings)},
	}
	for i := range a.Keyrings {
		a.Keyrings[i] = i64(atKeyrings + 8*i)
	}
	for i := range a.MempolicyNodes {
		a.MempolicyNodes[i] = le.Uint64(b[atMempolicyNodes+8*i:])
	}
	return a
}

// RegionStart is where the parasite's region is mapped in the process:
// a mapping the process made (through gocr) after everything it mapped
// itself, so it shows flags the process applies to every new mapping
// (mlockall MCL_FUTURE, man 2 mlockall).
func (p *Parasite) RegionStart() uint64 { return p.remoteBase }
