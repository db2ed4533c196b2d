//go:build linux

package test

import (
	"strconv"
	"testing"
)

// TestInetRefusedInRepairRunsOn: a dump refused while it reads the job's
// connections in repair mode (an urgent byte waits at a server end: not
// restored) takes them out of repair mode before the job runs on, gocr
// alive: the child waiting in recv(2) on another connection, whose recv
// restarts as soon as it is released, echoes what its parent sends, and
// the server reads the urgent byte and the data and answers.
func TestInetRefusedInRepairRunsOn(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "inet", "urgent")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"urgent data"}, nil)
	if n := inRepair(t, tg.pid); n != 0 {
		t.Errorf("the refused dump left %d connections of pid %d in repair mode", n, tg.pid)
	}
	checkIntact(t, tg)
}
