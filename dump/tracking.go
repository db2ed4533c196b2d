//go:build linux

package dump

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/wptrack"
)

// Tracking after a dump (incremental.go): each process gets a tracker
// and its private mappings are protected, then the trackers go to the
// job's holder.

// infectFlags are the flags of the userfaultfd the infection of pid
// makes (parasite.Options.Userfaultfd): one whenever the process is to
// be tracked, so that a process whose held tracker turns out not to act
// on it any more (arm) gets a new one at once. An unused one is closed
// with the parasite.
func (tk *tracking) infectFlags(pid int) uint64 {
	if tk == nil || !tk.keep {
		return 0
	}
	return wptrack.CreateFlags
}

// arm makes sure the process has a tracker and that every private
// mapping is registered and protected, so that the next dump sees every
// page written from now on: mappings this dump scanned are protected
// already. A mapping that cannot be registered (no VM_MAYWRITE) stays
// untracked and is written whole each time; should tracking fail
// otherwise, the process is left untracked (the next dump is full) and
// this dump goes on. Precondition: the pages are written and the process
// is frozen, p infected.
func (tk *tracking) arm(p *parasite.Parasite, pid int, st *state) {
	if tk == nil || !tk.keep {
		return
	}
	tk.mu.Lock()
	tp := tk.procs[pid]
	tk.mu.Unlock()
	if tp != nil {
		if err := tk.protect(tp, st); err == nil {
			return
		} else {
			tk.mu.Lock()
			tk.drop(pid, fmt.Sprintf("its tracker no longer acts on it: %v", err))
			tk.mu.Unlock()
		}
	}
	start, err := wptrack.StartTime(pid)
	if err != nil {
		return
	}
	fd, err := p.TakeUserfaultfd()
	var tr *wptrack.Tracker
	if err == nil {
		tr, err = wptrack.Start(fd)
	}
	if err == nil {
		tp = &trackedProc{proc: wptrack.Proc{Pid: pid, Start: start}, tr: tr, uw: map[uint64]bool{}, scanned: map[uint64]bool{}}
		err = tk.protect(tp, st)
		if err != nil {
			tr.Close()
		}
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if err != nil {
		tk.note(pid, fmt.Sprintf("cannot track its writes: %v", err))
		return
	}
	tk.procs[pid] = tp
}

// protect registers and write-protects every private mapping of the
// process but those the scan protected already. It protects with a scan
// (wptrack.Scan) rather than UFFDIO_WRITEPROTECT, which would put a
// marker in every PTE never populated (with UFFD_FEATURE_WP_UNPOPULATED,
// mm/mprotect.c change_pte_range), each of which pagemap then shows as
// swapped: the scan protects only the pages that hold data; a page
// populated later has no write-protect bit, and reads as written.
func (tk *tracking) protect(tp *trackedProc, st *state) error {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", tp.proc.Pid))
	if err != nil {
		return err
	}
	defer pm.Close()
	for _, v := range st.mm.Vmas {
		// Only writable memory: a read-only mapping (a library's
		// text) rarely holds a page of its own, which is then written
		// whole each time, and protecting its page-cache pages would
		// leave write-protect markers wherever the kernel drops them,
		// which pagemap shows as swapped (incremental.go): written
		// whole too, and mapped back at restore as pages of the
		// process's own.
		if !trackable(v) || v.Prot&unix.PROT_WRITE == 0 || tp.scanned[v.Start] {
			continue
		}
		err := tp.tr.Register(v.Start, v.End)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			continue
		}
		if err == nil {
			_, err = wptrack.Scan(pm, v.Start, v.End)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// handOver gives the trackers to the job's holder once the dump is
// complete, valid since it; a job that does not run on has its holder
// ended. A failure costs only the next dump's increment.
func (tk *tracking) handOver(id images.DumpID) error {
	if tk == nil {
		return nil
	}
	var procs []wptrack.Proc
	var trs []*wptrack.Tracker
	if tk.keep {
		for _, tp := range tk.procs {
			procs = append(procs, tp.proc)
			trs = append(trs, tp.tr)
		}
	}
	return wptrack.Put(tk.root, id.String(), procs, trs, tk.holderCmd)
}
