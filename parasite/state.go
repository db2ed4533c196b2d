//go:build linux

package parasite

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Fields of struct parasite_sigaction and struct parasite_itimer, the
// elements of two arrays in struct parasite_state (parasite/c/abi.h; their
// sizes, sigactionSize and itimerSize, are checked in abi_test.go).
const (
	saHandler  = 0
	saFlags    = 8
	saRestorer = 16
	saMask     = 24

	itIntervalSec  = 0
	itIntervalUsec = 8
	itValueSec     = 16
	itValueUsec    = 24
)

const usecPerSec = int64(time.Second / time.Microsecond)

// SigAction is one signal's disposition as rt_sigaction(2) reports it.
type SigAction struct {
	Handler, Flags, Restorer, Mask uint64
}

// Itimer is one interval timer (getitimer(2)), in microseconds.
type Itimer struct {
	IntervalUsec, ValueUsec int64
}

// State is what only the target itself can tell: read from inside.
type State struct {
	SigActions     [nsig]SigAction // index signo-1
	AltstackSp     uint64
	AltstackFlags  int32
	AltstackSize   uint64
	Itimers        [unix.ITIMER_PROF + 1]Itimer // by ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF (man 2 getitimer)
	TidAddress     uint64
	Dumpable       int32
	PdeathSig      int32
	ChildSubreaper int32
	NoNewPrivs     int32
	Securebits     int32
	// LDT is modify_ldt(0, NULL, 1)'s return as an int32: 0 where the
	// process has no LDT, -EFAULT where it has one, -ENOSYS where the
	// kernel has no modify_ldt (and no process an LDT).
	LDT int32
}

// DumpState reads sigactions, sigaltstack, itimers and prctl state, and
// with them the process's Attrs, which Attrs then returns: one round trip
// with the parasite where there were two, time the process is frozen.
func (p *Parasite) DumpState() (*State, error) {
	p.stateAttrs = nil
	clear(p.local[dataOff+stateAttrsOff : dataOff+stateAttrsOff+atSize])
	if err := p.call(cmdDumpState); err != nil {
		return nil, err
	}
	p.stateAttrs = parseAttrs(p.local[dataOff+stateAttrsOff : dataOff+stateAttrsOff+atSize])
	b := p.local[dataOff : dataOff+stSize]
	le := binary.LittleEndian
	st := &State{}
	for i := range st.SigActions {
		sa := b[stSigactions+sigactionSize*i:]
		st.SigActions[i] = SigAction{
			Handler:  le.Uint64(sa[saHandler:]),
			Flags:    le.Uint64(sa[saFlags:]),
			Restorer: le.Uint64(sa[saRestorer:]),
			Mask:     le.Uint64(sa[saMask:]),
		}
	}
	st.AltstackSp = le.Uint64(b[stAltstackSp:])
	st.AltstackFlags = int32(le.Uint32(b[stAltstackFlags:]))
	st.AltstackSize = le.Uint64(b[stAltstackSize:])
	for i := range st.Itimers {
		it := b[stItimers+itimerSize*i:]
		st.Itimers[i] = Itimer{
			IntervalUsec: int64(le.Uint64(it[itIntervalSec:]))*usecPerSec + int64(le.Uint64(it[itIntervalUsec:])),
			ValueUsec:    int64(le.Uint64(it[itValueSec:]))*usecPerSec + int64(le.Uint64(it[itValueUsec:])),
		}
	}
	st.TidAddress = le.Uint64(b[stTidAddress:])
	st.Dumpable = int32(le.Uint32(b[stDumpable:]))
	st.PdeathSig = int32(le.Uint32(b[stPdeathsig:]))
	st.ChildSubreaper = int32(le.Uint32(b[stChildSubreaper:]))
	st.NoNewPrivs = int32(le.Uint32(b[stNoNewPrivs:]))
	st.Securebits = int32(le.Uint32(b[stSecurebits:]))
	st.LDT = int32(le.Uint32(b[stLDT:]))
	return st, nil
}

// TimerValue is what only the process can tell of one of its POSIX
// timers.
type TimerValue struct {
	ValueNs, IntervalNs int64 // time left (0: disarmed) and interval
	Overrun             int32 // of the last signal it delivered
}

// PeerPids reads SO_PEERCRED's pid on each of the process's fds, unix
// sockets, as the process's PID namespace numbers it (parasite/c/abi.h
// PCMD_PEER_PIDS); gocr, in another, reads others, or 0.
func (p *Parasite) PeerPids(fds []int32) ([]int32, error) {
	if len(fds)*4 > dataSize {
		return nil, fmt.Errorf("%d sockets: more than the parasite's data area holds", len(fds))
	}
	le := binary.LittleEndian
	for i, fd := range fds {
		le.PutUint32(p.local[dataOff+4*i:], uint32(fd))
	}
	if err := p.call(cmdPeerPids, uint64(len(fds))); err != nil {
		return nil, err
	}
	out := make([]int32, len(fds))
	for i, fd := range fds {
		out[i] = int32(le.Uint32(p.local[dataOff+4*i:]))
		if out[i] < 0 {
			return nil, fmt.Errorf("fd %d: SO_PEERCRED: %w", fd, unix.Errno(-out[i]))
		}
	}
	return out, nil
}

// PosixTimers reads the time left, interval and last overrun of the
// process's timers ids (timer_gettime, timer_getoverrun).
func (p *Parasite) PosixTimers(ids []int32) ([]TimerValue, error) {
	if len(ids)*ptSize > dataSize {
		return nil, fmt.Errorf("%d POSIX timers: more than the parasite's data area holds", len(ids))
	}
	le := binary.LittleEndian
	for i, id := range ids {
		b := p.local[dataOff+i*ptSize:]
		clear(b[:ptSize])
		le.PutUint32(b[ptID:], uint32(id))
	}
	if err := p.call(cmdPosixTimers, uint64(len(ids))); err != nil {
		return nil, err
	}
	out := make([]TimerValue, len(ids))
	for i := range ids {
		b := p.local[dataOff+i*ptSize:]
		ns := func(sec, nsec int) int64 {
			return int64(le.Uint64(b[sec:]))*int64(time.Second) + int64(le.Uint64(b[nsec:]))
		}
		out[i] = TimerValue{
			ValueNs:    ns(ptValueSec, ptValueNsec),
			IntervalNs: ns(ptIntervalSec, ptIntervalNsec),
			Overrun:    int32(le.Uint32(b[ptOverrun:])),
		}
	}
	return out, nil
}
