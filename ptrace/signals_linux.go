//go:build linux

package ptrace

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// SiginfoSize is sizeof(siginfo_t) as user space sees it
// (include/uapi/asm-generic/siginfo.h SI_MAX_SIZE).
const SiginfoSize = 128

// SiginfoSigno returns si_signo (offset 0).
func SiginfoSigno(si [SiginfoSize]byte) int {
	return int(int32(binary.LittleEndian.Uint32(si[0:])))
}

// SiginfoCode returns si_code (offset 8 on every 64-bit architecture but
// MIPS: si_signo, si_errno, si_code, include/uapi/asm-generic/siginfo.h).
func SiginfoCode(si [SiginfoSize]byte) int {
	return int(int32(binary.LittleEndian.Uint32(si[8:])))
}

// SiginfoValue returns si_value (_sifields._rt.si_sigval: after the 4-byte
// padding at 12, si_pid and si_uid at 16 and 20, the union at 24), the
// payload of sigqueue(3).
func SiginfoValue(si [SiginfoSize]byte) uint64 {
	return binary.LittleEndian.Uint64(si[24:])
}

// GetSigmask returns the tracee's blocked-signal mask; bit n-1 is signal n
// (PTRACE_GETSIGMASK).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) GetSigmask(tid int) (uint64, error) {
	var (
		m   uint64
		err error
	)
	t.Do(func() { m, err = getSigmask(tid) })
	if err != nil {
		return 0, fmt.Errorf("ptrace getsigmask %d: %w", tid, err)
	}
	return m, nil
}

// SetSigmask sets the blocked-signal mask (PTRACE_SETSIGMASK). The kernel
// silently clears SIGKILL and SIGSTOP (kernel/ptrace.c: sigdelsetmask).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) SetSigmask(tid int, m uint64) error {
	var err error
	t.Do(func() { err = setSigmask(tid, m) })
	if err != nil {
		return fmt.Errorf("ptrace setsigmask %d: %w", tid, err)
	}
	return nil
}

// GetSiginfo returns the siginfo of the signal that caused the current stop
// (PTRACE_GETSIGINFO). At PTRACE_EVENT_STOP it is the synthetic SIGTRAP
// with si_code = SIGTRAP|PTRACE_EVENT_STOP<<8.
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) GetSiginfo(tid int) ([SiginfoSize]byte, error) {
	var (
		si  [SiginfoSize]byte
		err error
	)
	t.Do(func() { si, err = getSiginfo(tid) })
	if err != nil {
		return si, fmt.Errorf("ptrace getsiginfo %d: %w", tid, err)
	}
	return si, nil
}

// peekBatch is how many siginfos one PTRACE_PEEKSIGINFO copies. The queue is
// bounded by RLIMIT_SIGPENDING, usually thousands, so a few calls suffice.
const peekBatch = 32

// PeekSiginfo returns every signal queued for the tracee without dequeueing
// any, in queue order: the thread's private queue, or with shared the
// process-wide one (PTRACE_PEEKSIGINFO, PTRACE_PEEKSIGINFO_SHARED).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) PeekSiginfo(tid int, shared bool) ([][SiginfoSize]byte, error) {
	var (
		all [][SiginfoSize]byte
		err error
	)
	t.Do(func() { all, err = peekAll(tid, shared) })
	return all, err
}

// Precondition: called on the tracer thread; see PeekSiginfo.
func peekAll(tid int, shared bool) ([][SiginfoSize]byte, error) {
	var flags uint32
	if shared {
		flags = unix.PTRACE_PEEKSIGINFO_SHARED
	}
	var all [][SiginfoSize]byte
	buf := make([][SiginfoSize]byte, peekBatch)
	for {
		n, err := peekSiginfo(tid, uint64(len(all)), flags, buf)
		if err != nil {
			return nil, fmt.Errorf("ptrace peeksiginfo %d (shared=%v, offset %d): %w", tid, shared, len(all), err)
		}
		if n == 0 {
			return all, nil
		}
		all = append(all, buf[:n]...)
	}
}

// RseqConfig is the tracee's registered restartable-sequences area.
type RseqConfig struct {
	AbiPointer uint64 // address of struct rseq in the tracee, 0 if none
	AbiSize    uint32
	Flags      uint32
	Signature  uint32 // RSEQ_SIG the abort handlers are tagged with
}

// GetRseqConfig returns the tracee's rseq registration
// (PTRACE_GET_RSEQ_CONFIGURATION, include/uapi/linux/ptrace.h).
//
// Precondition: the tracee is in a ptrace-stop.
func (t *Tracer) GetRseqConfig(tid int) (RseqConfig, error) {
	var (
		c   RseqConfig
		err error
	)
	t.Do(func() { c, err = rseqConfig(tid) })
	return c, err
}

// Precondition: called on the tracer thread; see GetRseqConfig.
func rseqConfig(tid int) (RseqConfig, error) {
	c, err := getRseqConfig(tid)
	if err != nil {
		return RseqConfig{}, fmt.Errorf("ptrace get_rseq_configuration %d: %w", tid, err)
	}
	return RseqConfig{AbiPointer: c.abiPointer, AbiSize: c.abiSize, Flags: c.flags, Signature: c.signature}, nil
}
