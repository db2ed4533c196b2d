//go:build linux

package parasite

import "encoding/binary"

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
	SigActions     [64]SigAction // index signo-1
	AltstackSp     uint64
	AltstackFlags  int32
	AltstackSize   uint64
	Itimers        [3]Itimer
	TidAddress     uint64
	Dumpable       int32
	PdeathSig      int32
	ChildSubreaper int32
	NoNewPrivs     int32
}

// DumpState reads sigactions, sigaltstack, itimers and prctl state.
func (p *Parasite) DumpState() (*State, error) {
	if err := p.call(cmdDumpState); err != nil {
		return nil, err
	}
	b := p.local[dataOff : dataOff+stSize]
	le := binary.LittleEndian
	st := &State{}
	for i := range st.SigActions {
		o := stSigactions + 32*i
		st.SigActions[i] = SigAction{le.Uint64(b[o:]), le.Uint64(b[o+8:]), le.Uint64(b[o+16:]), le.Uint64(b[o+24:])}
	}
	st.AltstackSp = le.Uint64(b[stAltstackSp:])
	st.AltstackFlags = int32(le.Uint32(b[stAltstackFlags:]))
	st.AltstackSize = le.Uint64(b[stAltstackSize:])
	for i := range st.Itimers {
		o := stItimers + 32*i
		st.Itimers[i] = Itimer{
			IntervalUsec: int64(le.Uint64(b[o:]))*1e6 + int64(le.Uint64(b[o+8:])),
			ValueUsec:    int64(le.Uint64(b[o+16:]))*1e6 + int64(le.Uint64(b[o+24:])),
		}
	}
	st.TidAddress = le.Uint64(b[stTidAddress:])
	st.Dumpable = int32(le.Uint32(b[stDumpable:]))
	st.PdeathSig = int32(le.Uint32(b[stPdeathsig:]))
	st.ChildSubreaper = int32(le.Uint32(b[stChildSubreaper:]))
	st.NoNewPrivs = int32(le.Uint32(b[stNoNewPrivs:]))
	return st, nil
}
