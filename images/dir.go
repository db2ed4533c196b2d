// Package images reads and writes gocr's dump directory: one file per image,
// each framed with a magic, a format version and checksummed protobuf
// records, plus a raw page image per process. docs/IMAGES.md is the format's
// specification.
package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/gocrpb"
)

// inventoryName is the image that marks a dump complete: it is written
// last.
const inventoryName = "inventory.img"

func taskName(pid int) string    { return fmt.Sprintf("task-%d.img", pid) }
func mmName(pid int) string      { return fmt.Sprintf("mm-%d.img", pid) }
func filesName(pid int) string   { return fmt.Sprintf("files-%d.img", pid) }
func pagemapName(pid int) string { return fmt.Sprintf("pagemap-%d.img", pid) }

// pagesName is stream 0's page image, pages-PID.img (the only one before
// format 2), or pages-PID.S.img.
func pagesName(pid, stream int) string {
	if stream == 0 {
		return fmt.Sprintf("pages-%d.img", pid)
	}
	return fmt.Sprintf("pages-%d.%d.img", pid, stream)
}

// Dir is a dump directory, either being written (Create) or read (Open).
// Its methods may be called from several goroutines at once.
type Dir struct {
	Path string

	trust bool         // OpenOptions.TrustImages
	w     *writing     // set by Create
	root  *os.File     // the directory, set by Open
	ctx   *contextDump // the context read in place, set by OpenContext

	mu        sync.Mutex
	inventory *gocrpb.Inventory
	// id is the dump's ID: drawn by Create, read from the inventory by
	// Open. Every image read must carry it, once it is known.
	id      DumpID
	idKnown bool
	// verified are the data images whose chunks were all verified
	// when d was opened (OpenContext), not again when each is.
	verified map[string]bool
	// pagesAsRead: OpenOptions.PagesAsRead of OpenContext, which a
	// parent it opens (OpenParent) is opened with too.
	pagesAsRead bool
}

// OpenOptions say how far images are trusted, and when they are verified.
type OpenOptions struct {
	// TrustImages reads images that a user other than the one running
	// gocr (or root) could have written, which are refused otherwise.
	TrustImages bool
	// PagesAsRead has OpenContext verify all of the context but the
	// data of its page images, left to a reader that verifies it as it
	// reads it in (OpenPagesUnverified: the restorer). A damaged page
	// is then found only as it is read; one looking for a context that
	// reads whole (of a directory of generations) does not set it.
	PagesAsRead bool
}

// Open opens a complete dump: it requires a valid inventory.img and reads it.
// The other images are read on demand, relative to the directory opened
// here: should a new dump take the place of path meanwhile, they are still
// read from this dump (or found gone), never mixed with the new one's.
// Every image is checked as it is opened (openImage). Close releases it.
func Open(path string) (*Dir, error) { return OpenWith(path, OpenOptions{}) }

// OpenWith is Open with options.
func OpenWith(path string, opts OpenOptions) (*Dir, error) {
	d := &Dir{Path: path, trust: opts.TrustImages}
	if err := d.openRoot(); err != nil {
		return nil, fmt.Errorf("open dump dir: %w", err)
	}
	inv, err := d.readInventory()
	if errors.Is(err, fs.ErrNotExist) {
		d.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrIncompleteDump)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open dump dir: %w", err)
	}
	d.inventory = inv
	d.setDumpID(DumpID(inv.GetDumpId()))
	return d, nil
}

// openRoot opens d.Path for reading images relative to it. O_DIRECTORY
// fails at once on anything else, a FIFO included (open(2), ENOTDIR).
func (d *Dir) openRoot() error {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s: not a directory", d.Path)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: d.Path, Err: err}
	}
	d.root = os.NewFile(uintptr(fd), d.Path)
	return nil
}

// at is how to name the image name to the *at system calls: relative to
// the directory d writes or reads, or by its path for a Dir made without
// Create or Open.
func (d *Dir) at(name string) (dirfd int, rel string) {
	switch {
	case d.w != nil && !d.w.closed:
		// Also after the commit: the descriptor follows the directory.
		return d.w.tmp, name
	case d.root != nil:
		return int(d.root.Fd()), name
	}
	return unix.AT_FDCWD, d.file(name)
}

// readInventory reads and checks inventory.img, whose header must carry
// the dump ID it records.
func (d *Dir) readInventory() (*gocrpb.Inventory, error) {
	p := d.file(inventoryName)
	inv := &gocrpb.Inventory{}
	id, err := d.readOneID(inventoryName, kindInventory, inv)
	if err != nil {
		return nil, err
	}
	if err := checkInventory(inv); err != nil {
		return nil, &FormatError{Path: p, Reason: err.Error()}
	}
	if DumpID(inv.GetDumpId()) != id {
		return nil, formatErrorf(p, "header carries dump ID %v, the inventory records %x", id, inv.GetDumpId())
	}
	return inv, nil
}

// checkInventory rejects an inventory no dump could have written, so every
// later step can rely on its pid list.
func checkInventory(inv *gocrpb.Inventory) error {
	if v := inv.GetFormatVersion(); v < MinFormatVersion || v > FormatVersion {
		return fmt.Errorf("inventory format_version %d, this gocr reads formats %d to %d", v, MinFormatVersion, FormatVersion)
	}
	if len(inv.GetDumpId()) != dumpIDSize {
		return fmt.Errorf("inventory dump ID is %d bytes, want %d", len(inv.GetDumpId()), dumpIDSize)
	}
	if len(inv.GetPids()) == 0 {
		return errors.New("inventory lists no processes")
	}
	seen := make(map[int32]bool, len(inv.GetPids()))
	for _, pid := range inv.GetPids() {
		if pid <= 0 {
			return fmt.Errorf("inventory lists invalid pid %d", pid)
		}
		if seen[pid] {
			return fmt.Errorf("inventory lists pid %d twice", pid)
		}
		seen[pid] = true
	}
	if !seen[inv.GetRootPid()] {
		return fmt.Errorf("inventory root pid %d is not among its pids", inv.GetRootPid())
	}
	return nil
}

// Inventory returns the dump's inventory: the one read by Open, or the one
// written by WriteInventory; nil before either.
func (d *Dir) Inventory() *gocrpb.Inventory {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inventory
}

// current is where d's images are now: the private directory of a dump
// still being written, else Path.
func (d *Dir) current() string {
	if d.w != nil && !d.w.committed {
		return d.w.tmpPath()
	}
	return d.Path
}

// file is the path of the image named name in d.
func (d *Dir) file(name string) string {
	if d.ctx != nil {
		return d.Path + ":" + name
	}
	return filepath.Join(d.current(), name)
}

// Discard closes and removes f, a file this Dir created and the dump no
// longer wants.
func (d *Dir) Discard(f *os.File) error {
	name := filepath.Base(f.Name())
	f.Close()
	if d.w == nil || d.w.committed || d.w.closed {
		return fmt.Errorf("discard %s: %s is not a dump being written", name, d.Path)
	}
	if err := unix.Unlinkat(d.w.tmp, name, 0); err != nil {
		return fmt.Errorf("discard %s: %w", f.Name(), err)
	}
	d.mu.Lock()
	d.w.data = slices.DeleteFunc(d.w.data, func(n string) bool { return n == name })
	delete(d.w.sums, name)
	d.mu.Unlock()
	return nil
}

// perProcess is an image every process has one of, NAME-PID.img, whose
// message names its process.
type perProcess interface {
	proto.Message
	GetPid() int32
}

func checkPid(what string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("write %s image: invalid pid %d", what, pid)
	}
	return nil
}

// writePerProcess writes m to the image of kind k named for m's pid.
func (d *Dir) writePerProcess(what string, name func(int) string, k kind, m perProcess) error {
	pid := int(m.GetPid())
	if err := checkPid(what, pid); err != nil {
		return err
	}
	f, err := d.create(name(pid))
	if err != nil {
		return fmt.Errorf("write %s image of pid %d: %w", what, pid, err)
	}
	if err := writeRecordFile(f, k, d.id, m); err != nil {
		return fmt.Errorf("write %s image of pid %d: %w", what, pid, err)
	}
	return nil
}

// readPerProcess reads pid's image of kind k into m, refusing one whose
// pid field disagrees with its file name, which would otherwise restore
// one process's state into another.
func readPerProcess[M perProcess](d *Dir, what string, name func(int) string, k kind, pid int, m M) (M, error) {
	p := d.file(name(pid))
	if err := d.readOne(name(pid), k, m); err != nil {
		var zero M
		return zero, fmt.Errorf("read %s image of pid %d: %w", what, pid, err)
	}
	if got := m.GetPid(); int(got) != pid {
		var zero M
		return zero, fmt.Errorf("read %s image of pid %d: %w", what, pid, formatErrorf(p, "holds pid %d, but its name says %d", got, pid))
	}
	return m, nil
}

// WriteTask writes task-PID.img, PID taken from t.Pid.
func (d *Dir) WriteTask(t *gocrpb.Task) error {
	return d.writePerProcess("task", taskName, kindTask, t)
}

// WriteMm writes mm-PID.img, PID taken from m.Pid.
func (d *Dir) WriteMm(m *gocrpb.Mm) error { return d.writePerProcess("mm", mmName, kindMm, m) }

// WriteFiles writes files-PID.img, PID taken from f.Pid.
func (d *Dir) WriteFiles(f *gocrpb.Files) error {
	return d.writePerProcess("files", filesName, kindFiles, f)
}

// ReadTask reads task-PID.img.
func (d *Dir) ReadTask(pid int) (*gocrpb.Task, error) {
	return readPerProcess(d, "task", taskName, kindTask, pid, &gocrpb.Task{})
}

// ReadMm reads mm-PID.img.
func (d *Dir) ReadMm(pid int) (*gocrpb.Mm, error) {
	return readPerProcess(d, "mm", mmName, kindMm, pid, &gocrpb.Mm{})
}

// ReadFiles reads files-PID.img.
func (d *Dir) ReadFiles(pid int) (*gocrpb.Files, error) {
	return readPerProcess(d, "files", filesName, kindFiles, pid, &gocrpb.Files{})
}

// WriteInventory writes inventory.img, which completes the dump: it must be
// the last image a dump writes. It seals the data images not yet sealed
// (SealData). The inventory is synced with the rest, and the dump then
// takes the place of the image directory (a previous dump there is
// replaced at once, and removed). After a crash the directory holds
// either the old dump or the new one, each complete. inv.FormatVersion is
// filled in when zero, and inv.DumpId is set to the dump's ID.
func (d *Dir) WriteInventory(inv *gocrpb.Inventory) error {
	inv = proto.Clone(inv).(*gocrpb.Inventory)
	switch inv.GetFormatVersion() {
	case 0:
		inv.FormatVersion = FormatVersion
	case FormatVersion:
	default:
		return fmt.Errorf("write inventory: format_version %d, this gocr writes format %d", inv.GetFormatVersion(), FormatVersion)
	}
	if d.w == nil || d.w.committed || d.w.closed {
		return fmt.Errorf("write inventory: %s is not a dump being written", d.Path)
	}
	inv.DumpId = d.id[:]
	if err := d.SealData(); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	if err := checkInventory(inv); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	f, err := d.create(inventoryName)
	if err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	if err := writeRecordFile(f, kindInventory, d.id, inv); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	if err := d.commit(); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	d.mu.Lock()
	d.inventory = inv
	d.mu.Unlock()
	return nil
}
