//go:build linux

package restorer

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// FuzzNewPlan builds a restore plan from a task, an mm and a page map
// (PageRange messages, each preceded by its varint length) as images
// would decode them, with the first page stream's data size. A plan is
// what a restore hands the restorer, so what it accepts must be
// consistent: every page range inside a mapping that holds pages, and
// each stream's ranges exactly its data.
func FuzzNewPlan(f *testing.F) {
	task := &gocrpb.Task{Pid: 100, Comm: "t", Threads: []*gocrpb.Thread{{Tid: 100, Regs: &gocrpb.GPRegs{}}}}
	mm := &gocrpb.Mm{Pid: 100, Vmas: []*gocrpb.Vma{
		{Start: 0x10000, End: 0x14000, Prot: 3, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE},
		{Start: 0x20000, End: 0x21000, Prot: 5, Kind: gocrpb.VmaKind_VMA_VDSO},
	}}
	add := func(dataSize int64, ranges ...*gocrpb.PageRange) {
		addMm(f, task, mm, dataSize, ranges...)
	}
	add(0x2000, &gocrpb.PageRange{Vaddr: 0x10000, NrPages: 2})
	add(0x1000, &gocrpb.PageRange{Vaddr: 0x10000, NrPages: 1}, &gocrpb.PageRange{Vaddr: 0x20000, NrPages: 1})
	// vaddr + nr_pages*4096 wrapped to vaddr, inside the mapping, and
	// added nothing to the stream: the plan once took it.
	add(0x1000, &gocrpb.PageRange{Vaddr: 0x10000, NrPages: 1}, &gocrpb.PageRange{Vaddr: 0x11000, NrPages: 1 << 52})
	// A mapping that had huge pages, its pages from 1 MiB to 4 MiB.
	addMm(f, task, &gocrpb.Mm{Pid: 100, Vmas: []*gocrpb.Vma{
		{Start: 0x200000, End: 0x800000, Prot: 3, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE, AnonHugeBytes: 0x200000},
	}}, 0x300000, &gocrpb.PageRange{Vaddr: 0x300000, NrPages: 0x300})
	f.Fuzz(func(t *testing.T, tb, mb, pm []byte, dataSize int64) {
		fuzzPlan(t, tb, mb, pm, dataSize)
	})
}

// addMm adds a seed: task, mm, the page map and the data size.
func addMm(f *testing.F, task *gocrpb.Task, mm *gocrpb.Mm, dataSize int64, ranges ...*gocrpb.PageRange) {
	var pm bytes.Buffer
	for _, r := range ranges {
		if _, err := protodelim.MarshalTo(&pm, r); err != nil {
			f.Fatal(err)
		}
	}
	tb, _ := proto.Marshal(task)
	mb, _ := proto.Marshal(mm)
	f.Add(tb, mb, pm.Bytes(), dataSize)
}

func fuzzPlan(t *testing.T, tb, mb, pm []byte, dataSize int64) {
	task, mm := &gocrpb.Task{}, &gocrpb.Mm{}
	if proto.Unmarshal(tb, task) != nil || proto.Unmarshal(mb, mm) != nil {
		return
	}
	var ranges []*gocrpb.PageRange
	for r := bytes.NewReader(pm); r.Len() > 0; {
		pr := &gocrpb.PageRange{}
		if protodelim.UnmarshalFrom(r, pr) != nil {
			return
		}
		ranges = append(ranges, pr)
	}
	p, err := newPlan(task, mm, ranges, []int64{dataSize}, []int64{images.PagesDataOffset})
	if err != nil {
		return
	}
	var total uint64
	for i, r := range ranges {
		v := findVma(mm.Vmas, r.Vaddr)
		if v == nil || r.NrPages == 0 || r.NrPages > (v.End-r.Vaddr)/pageSize {
			t.Fatalf("range %d (%#x+%d pages) accepted outside its mapping", i, r.Vaddr, r.NrPages)
		}
		total += r.NrPages * pageSize
	}
	if total != uint64(dataSize) || len(p.pages) != len(ranges) {
		t.Fatalf("%d ranges of %d bytes accepted for %d bytes of data", len(p.pages), total, dataSize)
	}
	// Marking huge-page extents splits the same pages; the extents a
	// marked run touches, each made a huge page, lie inside its mapping.
	p.markHugeExtents(mm.Vmas, true)
	var split uint64
	for _, r := range p.pages {
		split += r.NrPages * pageSize
		if r.Flags&rstPagesHuge == 0 {
			continue
		}
		v := findVma(mm.Vmas, r.Vaddr)
		end := r.Vaddr + r.NrPages*pageSize
		if v == nil || r.Vaddr&^(hugePageSize-1) < v.Start || (end+hugePageSize-1)&^(hugePageSize-1) > v.End {
			t.Fatalf("huge-page run %#x+%d pages reaches outside its mapping", r.Vaddr, r.NrPages)
		}
	}
	if split != total {
		t.Fatalf("huge-page runs hold %d bytes, the ranges %d", split, total)
	}
}
