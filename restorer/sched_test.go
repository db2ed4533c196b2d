//go:build linux

package restorer

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

func TestCPUListMask(t *testing.T) {
	for list, want := range map[string][]byte{
		"0":      {0x01},
		"0-1":    {0x03},
		"0-3,8":  {0x0f, 0x01},
		"1,9-10": {0x02, 0x06},
	} {
		got, err := cpuListMask(list)
		if err != nil || string(got) != string(want) {
			t.Errorf("cpuListMask(%q) = %x, %v; want %x", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "0-"} {
		if _, err := cpuListMask(bad); err == nil {
			t.Errorf("cpuListMask(%q) took it", bad)
		}
	}
}

// A thread bound to a CPU this machine does not have online is refused
// before anything is created; one on CPU 0 is taken.
func TestCheckCPUs(t *testing.T) {
	mask := make([]byte, rstCPUMaskBytes)
	mask[1023/8] = 0x80
	task := &gocrpb.Task{Threads: []*gocrpb.Thread{{Tid: 7, Sched: &gocrpb.Sched{CpuAffinity: mask}}}}
	err := checkCPUs(task)
	if err == nil || !strings.Contains(err.Error(), "thread 7 may run on CPUs [1023]") {
		t.Fatalf("checkCPUs = %v, want a refusal naming CPU 1023", err)
	}
	task.Threads[0].Sched.CpuAffinity = []byte{0x01}
	if err := checkCPUs(task); err != nil {
		t.Fatalf("checkCPUs on CPU 0: %v", err)
	}
}

func TestPlanSched(t *testing.T) {
	var rt rstThread
	if err := planSched(&rt, nil); err != nil || rt.SchedSet != 0 {
		t.Fatalf("an image without scheduling: %v, sched_set %d", err, rt.SchedSet)
	}
	s := &gocrpb.Sched{Policy: unix.SCHED_FIFO, Nice: 3, RtPriority: 10, ResetOnFork: true, CpuAffinity: []byte{0x02}}
	if err := planSched(&rt, s); err != nil {
		t.Fatal(err)
	}
	if rt.SchedSet != 1 || rt.SchedPolicy != unix.SCHED_FIFO || rt.SchedNice != 3 || rt.SchedPriority != 10 ||
		rt.SchedFlags != schedFlagResetOnFork || rt.CPUMask[0] != 0x02 {
		t.Fatalf("plan %+v", rt)
	}
	for name, bad := range map[string]*gocrpb.Sched{
		"deadline":     {Policy: unix.SCHED_DEADLINE, CpuAffinity: []byte{1}},
		"fifo prio 0":  {Policy: unix.SCHED_FIFO, CpuAffinity: []byte{1}},
		"other prio 5": {Policy: unix.SCHED_NORMAL, RtPriority: 5, CpuAffinity: []byte{1}},
		"nice 20":      {Nice: 20, CpuAffinity: []byte{1}},
		"no CPU":       {},
		"wide mask":    {CpuAffinity: make([]byte, rstCPUMaskBytes+1)},
	} {
		if err := planSched(&rstThread{}, bad); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
