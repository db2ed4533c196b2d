//go:build linux

package restorer

import (
	"fmt"
	"os"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// load reads every image of the dump, in the inventory's order (parents
// first), relocates the paths it names (reloc), builds each process's
// plan and checks that this machine can run it, before anything is
// created. The returned sources hold the page images already; the caller
// closes them, and the chain of parent dumps (which names a bad chunk
// the restorer finds in one of theirs).
func load(dir *images.Dir, stdio [3]*os.File, reloc relocations) (_ []*proc, _ *files.Sources, _ *chain, err error) {
	inv := dir.Inventory()
	if len(inv.Pids) == 0 || inv.Pids[0] != inv.RootPid {
		return nil, nil, nil, fmt.Errorf("%s: the inventory must list the root process %d first", dir.Path, inv.RootPid)
	}
	src := files.NewSources(dir, rstFirstSourceFd, stdio)
	defer func() {
		if err != nil {
			src.Close()
		}
	}()
	// An incremental dump's parents, each checked before anything is
	// created (chain.go).
	chain, err := openChain(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			chain.close()
		}
	}()
	var procs []*proc
	byPid := map[int32]*proc{}
	for i, pid := range inv.Pids {
		pr, err := loadProc(dir, inv, int(pid), src, reloc, chain)
		if err != nil {
			return nil, nil, nil, err
		}
		pr.index = i
		if i > 0 {
			if pr.parent = byPid[pr.task.Ppid]; pr.parent == nil {
				return nil, nil, nil, fmt.Errorf("%s: process %d's parent %d is not in the dump before it", dir.Path, pid, pr.task.Ppid)
			}
		}
		procs = append(procs, pr)
		byPid[pid] = pr
	}
	if procs[0].task.Zombie {
		return nil, nil, nil, fmt.Errorf("%s: the root process %d is a zombie", dir.Path, inv.RootPid)
	}
	if err := planForkShared(procs); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", dir.Path, err)
	}
	// The runs are final: where huge pages come by faults, and what the
	// restorer cannot verify as it reads is verified now.
	for _, pr := range procs {
		if pr.plan != nil {
			pr.plan.planHugeFaults()
			if err := pr.plan.planPageSums(); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return procs, src, chain, nil
}

// loadProc reads one process's images, opens its page images as sources
// and builds its plan; a zombie has only its task image.
func loadProc(dir *images.Dir, inv *gocrpb.Inventory, pid int, src *files.Sources, reloc relocations, chain *chain) (*proc, error) {
	task, err := dir.ReadTask(pid)
	if err != nil {
		return nil, err
	}
	pr := &proc{task: task}
	if task.Zombie {
		return pr, nil
	}
	if pr.mm, err = dir.ReadMm(pid); err != nil {
		return nil, err
	}
	if pr.files, err = dir.ReadFiles(pid); err != nil {
		return nil, err
	}
	if pr.ranges, err = dir.ReadPagemap(pid); err != nil {
		return nil, err
	}
	reloc.apply(task, pr.mm, pr.files)
	nstreams := 1
	for _, r := range pr.ranges {
		nstreams = max(nstreams, int(r.Stream)+1)
	}
	var pages []*os.File
	closePages := func() {
		for _, f := range pages {
			f.Close()
		}
	}
	var dataSizes, dataOffs []int64
	var unverified []unverifiedPages
	for s := 0; s < nstreams; s++ {
		img, sums, err := openPages(dir, pid, s)
		if err != nil {
			closePages()
			return nil, err
		}
		pages = append(pages, img.File)
		dataSizes = append(dataSizes, img.Size)
		dataOffs = append(dataOffs, img.Off)
		unverified = append(unverified, unverifiedPages{file: uint32(s), dir: dir, img: img, sums: sums})
	}
	if pr.plan, err = newPlan(task, pr.mm, pr.ranges, dataSizes, dataOffs); err != nil {
		closePages()
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	pr.plan.unverified = unverified
	// The sources own the files from here on (closed with them).
	for _, f := range pages {
		pr.plan.pageFiles = append(pr.plan.pageFiles, src.Add(f))
	}
	if err := chain.resolve(pr.plan, pid, src); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	pr.plan.markHugeExtents(pr.mm.Vmas, hugePagesAllowed())
	for _, check := range []func() error{
		func() error { return checkMachine(inv, task, pr.mm) },
		func() error { return classed(Environment, checkLSMLabel(inv)) },
		func() error { return classed(Environment, checkFiles(pr.mm)) },
		func() error { return checkRlimits(task) },
		func() error { return classed(Environment, checkCwd(task)) },
		func() error { return checkPosixTimers(task) },
	} {
		if err := check(); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
	}
	return pr, nil
}
