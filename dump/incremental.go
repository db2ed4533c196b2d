//go:build linux

package dump

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/spans"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/wptrack"
)

// Incremental dumps (Options.Prev, Options.Track). After a dump that
// leaves the processes running, each process's writable private
// mappings are registered with a tracker (package wptrack: a userfaultfd
// the parasite makes, in async write-protect mode) and write-protected
// while the process is still frozen, before its snapshot is taken; a
// holder process keeps the trackers until the next dump (wptrack.Put).
// A dump given the previous one (Prev) then writes, of the pages a full
// dump would write, only those the trackers saw written, and lists the
// others as the parent's (PageRange from_parent).
//
// What the job waits for: with LeaveRunning the tracked mappings are
// scanned once before the freeze (prescan.go), so the scan while frozen,
// which protects the pages again, finds only the pages written since;
// with a snapshot, which pages hold data is read from the snapshot's
// pagemap once the job runs again (the same instant: the snapshot maps
// the pages the process had, without its write-protect markers, see
// splitRuns), and the parent's page map is read then too.
//
// A page is taken from the parent only when all of this holds, else it
// is written whole (rule 1: a dump is full rather than wrong):
//   - the holder's trackers are valid since exactly the parent dump
//     (wptrack.Take hands them over once; a dump that dies after taking
//     them, or after its pre-scan consumed what they saw, leaves none
//     valid);
//   - the process is the one tracked (PID and start time), and its
//     tracker still acts on it (registering again succeeds: after an
//     exec the tracker's mm is gone);
//   - the page lies in a private mapping that shows "uw" and that this
//     tracker has registered (another userfaultfd's registration fails
//     with EBUSY, and the dump refuses the mapping as before);
//     a mapping made or moved (mremap without UFFD_FEATURE_EVENT_REMAP
//     drops the registration, fs/userfaultfd.c mremap_userfaultfd_prep)
//     since is not registered, so it is written whole;
//   - neither the pre-scan nor the frozen scan reports it written, no
//     pre-scan of its address failed, and it holds data now (pagemap:
//     present or swapped, not the file's page) — a dropped page is not
//     listed at all, so the restore leaves it empty;
//   - the parent dump lists it (as data or as its own parent's).
// Shared mappings are never taken from the parent: another process's
// write to them passes no PTE of this one.

// tracking is a dump's write tracking, shared by the processes captured
// two at a time (captureAll).
type tracking struct {
	root      wptrack.Proc
	keep      bool // hand the trackers on after the dump: the processes run on
	holderCmd []string
	parent    *images.Dir // the dump named by Prev; nil if none
	parentRef string      // Inventory.parent_dir
	since     bool        // the trackers held say what was written since parent

	mu     sync.Mutex
	procs  map[int]*trackedProc // by PID
	used   bool                 // some page is the parent's
	reused int64                // bytes of pages taken from the parent
	full   []string             // why processes were written whole
}

type trackedProc struct {
	proc    wptrack.Proc
	tr      *wptrack.Tracker
	uw      map[uint64]bool // mappings (by start) that showed "uw" at collect
	scanned map[uint64]bool // mappings this dump's scan protected again
	pre     []preScanned    // what the pre-scan found (prescan.go)
	// written are the pages of each scanned mapping (by index in
	// mm.Vmas) written since the parent dump; nil if not known.
	written map[int][]spans.Span
	has     []spans.Span // the pages the parent lists (parentPages)
	hasRead bool
}

// startTracking takes the job's trackers from its holder, if any, and
// opens the parent dump. No Prev nor Track: nil.
func startTracking(opts Options, root int) (*tracking, error) {
	if opts.Prev == "" && !opts.Track {
		return nil, nil
	}
	start, err := wptrack.StartTime(root)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", root, err)
	}
	tk := &tracking{root: wptrack.Proc{Pid: root, Start: start}, keep: opts.LeaveRunning,
		holderCmd: opts.TrackHolder, procs: map[int]*trackedProc{}}
	if opts.Prev != "" {
		if tk.parentRef, err = parentRef(opts.Dir, opts.Prev); err != nil {
			return nil, err
		}
		if opts.PrevRef != "" {
			tk.parentRef = opts.PrevRef
		}
		if tk.parent, err = images.Open(opts.Prev); err != nil {
			return nil, fmt.Errorf("--prev: %w", err)
		}
	}
	held, err := wptrack.Take(tk.root)
	if err != nil {
		tk.note(root, err.Error())
		return tk, nil
	}
	if held == nil {
		if tk.parent != nil {
			tk.note(root, "no tracker holds the job's writes since the parent dump (the first dump with --track or --prev starts one)")
		}
		return tk, nil
	}
	for i, p := range held.Procs {
		tk.procs[p.Pid] = &trackedProc{proc: p, tr: held.Trackers[i], uw: map[uint64]bool{}, scanned: map[uint64]bool{}}
	}
	if tk.parent != nil {
		id := images.DumpID(tk.parent.Inventory().GetDumpId())
		tk.since = held.Since == id.String()
		if !tk.since {
			tk.note(root, fmt.Sprintf("the job's writes are tracked since another dump than %s's", opts.Prev))
		}
	}
	return tk, nil
}

// parentRef is how the dump in dir names its parent: relative to dir
// where it can be, so the two can move together. A dump cannot be its
// own parent: it replaces it.
func parentRef(dir, prev string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	p, err := filepath.Abs(prev)
	if err != nil {
		return "", err
	}
	if d == p {
		return "", fmt.Errorf("--prev %s names the directory the dump replaces: give the new dump its own directory", prev)
	}
	if rel, err := filepath.Rel(d, p); err == nil {
		return rel, nil
	}
	return p, nil
}

// note records why pid is written whole.
func (tk *tracking) note(pid int, why string) {
	tk.full = append(tk.full, fmt.Sprintf("pid %d: %s", pid, why))
}

// close closes gocr's copies of the trackers and the parent dump.
func (tk *tracking) close() {
	if tk == nil {
		return
	}
	for _, tp := range tk.procs {
		if tp.tr != nil {
			tp.tr.Close()
		}
	}
	tk.procs = nil
	if tk.parent != nil {
		tk.parent.Close()
	}
}

// drop forgets pid's tracker (the process is written whole).
func (tk *tracking) drop(pid int, why string) {
	if tp := tk.procs[pid]; tp != nil {
		tp.tr.Close()
		delete(tk.procs, pid)
	}
	tk.note(pid, why)
}

// stripOwnFlags takes "uw" off the mappings of a process whose tracker
// gocr holds, remembering where it was: the flag is gocr's registration
// (confirmed at capture, ownMappings), not the job's, and the restored
// process is not tracked. Precondition: the process is frozen.
func (tk *tracking) stripOwnFlags(pid int, maps []proc.Mapping) {
	if tk == nil {
		return
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tp := tk.procs[pid]
	if tp == nil {
		return
	}
	if start, err := wptrack.StartTime(pid); err != nil || start != tp.proc.Start {
		tk.drop(pid, "its PID now names another process")
		return
	}
	for i := range maps {
		m := &maps[i]
		if k := slices.Index(m.VmFlags, "uw"); k >= 0 {
			m.VmFlags = slices.Delete(slices.Clone(m.VmFlags), k, k+1)
			tp.uw[m.Start] = true
		}
	}
}

// trackable says whether a mapping's pages may be taken from a parent:
// private memory, whose contents only this process's own PTEs change.
func trackable(v *gocrpb.Vma) bool {
	return v.Kind == gocrpb.VmaKind_VMA_ANON_PRIVATE || v.Kind == gocrpb.VmaKind_VMA_FILE_PRIVATE
}

// ownMappings registers again, with the process's tracker, every
// mapping that showed "uw": the same tracker's registration succeeds;
// another userfaultfd's fails with EBUSY, and that mapping cannot be
// restored as it is; any other failure means the tracker no longer acts
// on the process (an exec replaced its mm), which is then written whole
// and tracked anew.
func (tk *tracking) ownMappings(pid int, tp *trackedProc, st *state) error {
	for _, v := range st.mm.Vmas {
		if !tp.uw[v.Start] {
			continue
		}
		err := tp.tr.Register(v.Start, v.End)
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mapping %s is tracked by a userfaultfd of the job's (VmFlag \"uw\"), which gocr cannot restore", vmaName(v))
		}
		if err != nil {
			tk.mu.Lock()
			tk.drop(pid, fmt.Sprintf("its tracker no longer acts on it: %v", err))
			tk.mu.Unlock()
			return nil
		}
	}
	return nil
}

// withoutFlag is ms with flag taken off every mapping's VmFlags.
func withoutFlag(ms []proc.Mapping, flag string) []proc.Mapping {
	out := slices.Clone(ms)
	for i := range out {
		if k := slices.Index(out[i].VmFlags, flag); k >= 0 {
			out[i].VmFlags = slices.Delete(slices.Clone(out[i].VmFlags), k, k+1)
		}
	}
	return out
}
