//go:build linux

package restorer

import (
	"strings"
	"testing"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

const stageTestStart = 0x7f0000123000 // not 2 MiB aligned

// stageTestProc is a process with one private anonymous mapping of 64
// pages at stageTestStart, its page map ranges and the spans it shares
// with its parent.
func stageTestProc(t *testing.T, pid int32, parent *proc, ranges []*gocrpb.PageRange, shared []*gocrpb.PageSpan) *proc {
	t.Helper()
	task := &gocrpb.Task{Pid: pid, Comm: "t", Threads: []*gocrpb.Thread{{Tid: pid, Regs: &gocrpb.GPRegs{}}}}
	mm := &gocrpb.Mm{Pid: pid, Vmas: []*gocrpb.Vma{
		{Start: 0x400000, End: 0x401000, Prot: 3, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE, VmFlags: []string{"rd", "wr", "ac"}},
		{Start: stageTestStart, End: stageTestStart + 64*pageSize, Prot: 3, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE,
			VmFlags: []string{"rd", "wr", "ac"}, ForkShared: shared},
	}}
	var size int64
	for _, r := range ranges {
		size += int64(r.NrPages * pageSize)
	}
	p, err := newPlan(task, mm, ranges, []int64{size}, []int64{images.PagesDataOffset})
	if err != nil {
		t.Fatal(err)
	}
	return &proc{task: task, mm: mm, ranges: ranges, plan: p, parent: parent}
}

func pages(first, n uint64) *gocrpb.PageRange {
	return &gocrpb.PageRange{Vaddr: stageTestStart + first*pageSize, NrPages: n}
}

func span(first, n uint64) *gocrpb.PageSpan {
	return &gocrpb.PageSpan{Vaddr: stageTestStart + first*pageSize, NrPages: n}
}

// TestPlanForkShared: a mapping a child and a grandchild inherited is
// one family, staged by the parent at one address outside every
// mapping, with the offset in its 2 MiB extent kept; the grandchild may
// share pages its parent itself has from the root.
func TestPlanForkShared(t *testing.T) {
	root := stageTestProc(t, 100, nil, []*gocrpb.PageRange{pages(0, 64)}, nil)
	child := stageTestProc(t, 101, root, []*gocrpb.PageRange{pages(60, 4)}, []*gocrpb.PageSpan{span(0, 60)})
	grand := stageTestProc(t, 102, child, []*gocrpb.PageRange{pages(5, 1)}, []*gocrpb.PageSpan{span(0, 5), span(6, 58)})
	procs := []*proc{root, child, grand}
	if err := planForkShared(procs); err != nil {
		t.Fatal(err)
	}
	stage := root.plan.vmas[1].Stage
	if stage == 0 || stage%hugeExtent != stageTestStart%hugeExtent {
		t.Fatalf("stage %#x: want one at the offset of %#x in its 2 MiB extent", stage, uint64(stageTestStart))
	}
	for _, pr := range procs {
		for _, v := range pr.mm.Vmas {
			if stage < v.End && v.Start < stage+64*pageSize {
				t.Errorf("stage %#x overlaps mapping %#x-%#x of pid %d", stage, v.Start, v.End, pr.task.Pid)
			}
		}
	}
	for i, want := range []uint32{rstVmaStage, rstVmaInherit, rstVmaInherit} {
		v := procs[i].plan.vmas[1]
		if v.Flags != want || v.Stage != stage {
			t.Errorf("pid %d: flags %d stage %#x, want %d at %#x", procs[i].task.Pid, v.Flags, v.Stage, want, stage)
		}
		if procs[i].plan.vmas[0].Flags != 0 {
			t.Errorf("pid %d: a mapping nobody shares is staged", procs[i].task.Pid)
		}
		for _, rp := range procs[i].plan.pages {
			if rp.Flags&rstPagesStaged == 0 {
				t.Errorf("pid %d: pages at %#x are not read in at the stage", procs[i].task.Pid, rp.Vaddr)
			}
		}
	}
	if got := grand.plan.forkShared; len(got) != 2 || got[1] != (rstSpan{Vaddr: stageTestStart + 6*pageSize, NrPages: 58}) {
		t.Errorf("grandchild's fork_shared list %+v", got)
	}
}

// TestPlanForkSharedRefused: pages a child leaves to a parent that has
// none there, or to a mapping the parent has otherwise, are refused.
func TestPlanForkSharedRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(root, child *proc)
		wants string
	}{
		{"pages the parent lacks", func(root, child *proc) {
			root.ranges = []*gocrpb.PageRange{pages(0, 10)}
		}, "whose page images do not hold them"},
		{"another mapping", func(root, child *proc) {
			root.plan.vmas[1].Prot = 1
		}, "not the same kind"},
		{"spans out of order", func(root, child *proc) {
			child.mm.Vmas[1].ForkShared = []*gocrpb.PageSpan{span(20, 1), span(10, 1)}
		}, "bad shared pages"},
		{"spans past the mapping", func(root, child *proc) {
			child.mm.Vmas[1].ForkShared = []*gocrpb.PageSpan{span(60, 5)}
		}, "bad shared pages"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := stageTestProc(t, 100, nil, []*gocrpb.PageRange{pages(0, 64)}, nil)
			child := stageTestProc(t, 101, root, []*gocrpb.PageRange{pages(60, 4)}, []*gocrpb.PageSpan{span(0, 60)})
			c.edit(root, child)
			err := planForkShared([]*proc{root, child})
			if err == nil || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("got %v, want an error saying %q", err, c.wants)
			}
		})
	}
}
