//go:build linux

package dump

import (
	"context"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestSubreaperAdopter: an orphan of a dumped process goes to the
// nearest child subreaper among it and its ancestors in the dump, or
// outside the dump (0); an ancestor whose flag could not be read counts
// as one.
func TestSubreaperAdopter(t *testing.T) {
	// 10 -> 11 -> 12 -> 13, 10 -> 14; 1 is outside the dump; 15 a zombie.
	states := []*state{
		{task: &gocrpb.Task{Pid: 10, Ppid: 1}, mm: &gocrpb.Mm{}},
		{task: &gocrpb.Task{Pid: 11, Ppid: 10}, mm: &gocrpb.Mm{}},
		{task: &gocrpb.Task{Pid: 12, Ppid: 11}, mm: &gocrpb.Mm{}},
		{task: &gocrpb.Task{Pid: 13, Ppid: 12}, mm: &gocrpb.Mm{}},
		{task: &gocrpb.Task{Pid: 14, Ppid: 10}, mm: &gocrpb.Mm{}},
		{task: &gocrpb.Task{Pid: 15, Ppid: 10}},
	}
	sr := newSubreapers(states)
	sr.set(10, false)
	sr.set(11, true)
	sr.set(12, false)
	sr.set(13, false)
	sr.set(11, false) // the first word stands
	sr.set(14, false)
	ctx := context.Background()
	for pid, want := range map[int]int{10: 0, 11: 11, 12: 11, 13: 11, 14: 0, 15: 0} {
		if got, err := sr.adopter(ctx, pid); err != nil || got != want {
			t.Errorf("adopter of %d = %d, %v; want %d", pid, got, err, want)
		}
	}

	// A flag not known yet is waited for; the wait ends with ctx.
	sr = newSubreapers(states[:2])
	sr.set(11, false)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sr.adopter(cctx, 11); err == nil {
		t.Errorf("adopter returned without 10's flag")
	}
}
