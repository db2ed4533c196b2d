//go:build linux

package restorer

import (
	"encoding/binary"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

func timerSiginfo(signo uint32, code, id int32, value uint64) *gocrpb.SigInfo {
	b := make([]byte, 128)
	binary.LittleEndian.PutUint32(b[0:], signo)
	binary.LittleEndian.PutUint32(b[siCodeOff:], uint32(code))
	binary.LittleEndian.PutUint32(b[siTimerIDOff:], uint32(id))
	binary.LittleEndian.PutUint64(b[siValueOff:], value)
	return &gocrpb.SigInfo{Signo: signo, Siginfo: b}
}

// TestQueuedTimerSignals: only the signal a timer queued itself, on the
// queue it notifies, is taken from the requeue; another timer's, a
// signal sent with SI_QUEUE and a second SI_TIMER copy stay.
func TestQueuedTimerSignals(t *testing.T) {
	own := timerSiginfo(36, siTimer, 5, 7)
	second := timerSiginfo(36, siTimer, 5, 7)
	queued := timerSiginfo(36, -1, 5, 7) // SI_QUEUE
	otherValue := timerSiginfo(37, siTimer, 6, 1)
	threadOwn := timerSiginfo(38, siTimer, 8, 0)
	onProcess := timerSiginfo(38, siTimer, 8, 0)
	task := &gocrpb.Task{
		Pid: 10,
		PosixTimers: []*gocrpb.PosixTimer{
			{Id: 5, Signo: 36, Sigval: 7},
			{Id: 6, Signo: 37, Sigval: 2},
			{Id: 8, Signo: 38, Notify: sigevThreadID, NotifyTid: 11},
		},
		Threads: []*gocrpb.Thread{
			{Tid: 10},
			{Tid: 11, Pending: []*gocrpb.SigInfo{threadOwn}},
		},
		SharedPending: []*gocrpb.SigInfo{queued, own, second, otherValue, onProcess},
	}
	timers, skip := queuedTimerSignals(task)
	if !timers[5] || timers[6] || !timers[8] || len(timers) != 2 {
		t.Errorf("timers marked %v, want 5 and 8", timers)
	}
	for _, c := range []struct {
		name string
		si   *gocrpb.SigInfo
		want bool
	}{
		{"timer 5's own", own, true},
		{"a second SI_TIMER copy", second, false},
		{"SI_QUEUE", queued, false},
		{"another value", otherValue, false},
		{"thread timer's, on its thread", threadOwn, true},
		{"thread timer's, on the process", onProcess, false},
	} {
		if skip[c.si] != c.want {
			t.Errorf("%s: left out of the requeue %v, want %v", c.name, skip[c.si], c.want)
		}
	}
}
