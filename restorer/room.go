//go:build linux

package restorer

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/testhook"
)

// holeSizeFor is the room the restorer needs at its new address: its
// image, its stack, the plan, a stack for each thread and each page
// stream helper, and a parking area for the vDSO pages
// (restorer/c/restorer.c relocate).
func holeSizeFor(threads, pageStreams int, mapSize uint64) (uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(restorerELF))
	if err != nil {
		return 0, fmt.Errorf("embedded restorer: %w", err)
	}
	var image uint64
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_LOAD {
			image = max(image, ph.Vaddr+ph.Memsz)
		}
	}
	stacks := uint64(threads-1+pageStreams-1) * threadStack
	return pageAlign(image) + restorerStack + pageAlign(mapSize) + stacks + parkSize, nil
}

func pageAlign(x uint64) uint64 { return (x + pageSize - 1) &^ (pageSize - 1) }

// holeCandidates proposes addresses where a hole of size fits between the
// dumped mappings, largest gaps first, away from their edges (where the
// helper's own stack and heap are likelier). The restorer takes the first
// one still free in its own address space.
func holeCandidates(vmas []*gocrpb.Vma, size uint64) []uint64 {
	const low, high = 1 << 32, 0x7ffffffff000 - (1 << 30)
	type gap struct{ start, end uint64 }
	var gaps []gap
	prev := uint64(low)
	for _, v := range vmas {
		if v.Start > prev {
			gaps = append(gaps, gap{prev, min(v.Start, high)})
		}
		prev = max(prev, v.End)
	}
	if prev < high {
		gaps = append(gaps, gap{prev, high})
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].end-gaps[i].start > gaps[j].end-gaps[j].start })
	var out []uint64
	for _, g := range gaps {
		if g.end <= g.start || g.end-g.start < 3*size {
			continue
		}
		for _, frac := range []uint64{2, 3} {
			a := g.start + (g.end-g.start)/frac
			a &^= (1 << 21) - 1
			if a >= g.start+size && a+size <= g.end {
				out = append(out, a)
			}
		}
		if len(out) >= rstHoleCandidates {
			break
		}
	}
	if len(out) > rstHoleCandidates {
		out = out[:rstHoleCandidates]
	}
	return out
}

// pickPageHelperTids gives every process with more than one page stream
// a TID for each helper thread that reads a stream (restorer/c/abi.h
// page_helper_tids): free now, none of the dump's, none given twice. They
// come from the top of the PID range, away from where new processes
// usually get theirs; if one is taken before the restorer asks for it,
// clone3 fails with EEXIST and that stream is read by the process's first
// thread instead. Without free PIDs the streams are simply read one by one.
func pickPageHelperTids(procs []*proc) {
	dumped := map[int]bool{}
	for _, pr := range procs {
		dumped[int(pr.task.Pid)] = true
		for _, th := range pr.task.Threads {
			dumped[int(th.Tid)] = true
		}
	}
	next := pidMax() - 1
	forced, _ := testhook.Int(testhook.PageHelperTid)
	const lowest = 301 // the kernel wraps to RESERVED_PIDS + 1 (kernel/pid.c)
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		for s := 1; s < int(pr.plan.args.NrPageStreams); s++ {
			if forced > 0 {
				pr.plan.args.PageHelperTids[s] = int32(forced)
				continue
			}
			for ; next >= lowest; next-- {
				if dumped[next] {
					continue
				}
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", next)); errors.Is(err, fs.ErrNotExist) {
					break
				}
			}
			if next < lowest {
				return
			}
			pr.plan.args.PageHelperTids[s] = int32(next)
			next--
		}
	}
}

// pidMax is the kernel's pid_max (man 5 proc, /proc/sys/kernel/pid_max),
// or the default 32768 when it cannot be read.
func pidMax() int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 32768
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}
