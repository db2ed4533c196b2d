package images

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/contextfile"
)

// perPidImage matches the names of per-process images (and of the memfd
// and saved file images, numbered by their own ids).
// The optional .S after the pid is a page stream (pages-PID.S.img).
var perPidImage = regexp.MustCompile(`^(task|mm|files|pagemap|pages|memfd|file|shm)-([0-9]+)(?:\.([0-9]+))?\.img$`)

// showOrder sorts per-process kinds the way a restore reads them.
var showOrder = map[string]int{"task": 0, "mm": 1, "files": 2, "pagemap": 3, "pages": 4, "memfd": 5, "file": 6, "shm": 7}

// jsonOptions prints field names as the schema spells them, and zero values
// too: in a register dump a zero is information, not noise.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// Show prints every image in the dump directory path (or the single image
// file path) as indented JSON, each under a line "=== NAME ===". Pages images
// are summarized by their size and files that are not images are listed as
// skipped. It reads as much as it can: a bad image, or one the inventory
// needs that is missing, is reported in place and the others are still
// shown, and the returned error then names every bad one. Images are
// opened as a restore opens them (openImage), with opts.
func Show(path string, w io.Writer, opts OpenOptions) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	if contextfile.IsContext(path) {
		return showContext(path, w, opts)
	}
	if st.IsDir() && (filepath.Base(path) == inventoryName || perPidImage.MatchString(filepath.Base(path))) {
		return fmt.Errorf("show %s: is a directory, not an image", path)
	}
	if !st.IsDir() {
		d := &Dir{Path: filepath.Dir(path), trust: opts.TrustImages}
		if err := d.openRoot(); err != nil {
			return fmt.Errorf("show: %w", err)
		}
		defer d.Close()
		d.learnDumpID()
		name := filepath.Base(path)
		if err := showFile(d, name, w); err != nil {
			return fmt.Errorf("show %s: %w", path, err)
		}
		return nil
	}

	d := &Dir{Path: path, trust: opts.TrustImages}
	if err := d.openRoot(); err != nil {
		return fmt.Errorf("show: %w", err)
	}
	defer d.Close()
	d.learnDumpID()
	// Directories are listed too: one in place of an image is an error.
	names, err := listNames(int(d.root.Fd()), path)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	var bad []string
	mixed := false
	if !slices.Contains(names, inventoryName) {
		fmt.Fprintf(w, "=== %s ===\nmissing: %v\n", inventoryName, ErrIncompleteDump)
		bad = append(bad, inventoryName+" missing")
	}
	present := len(names)
	for _, name := range neededImages(d) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	missing := slices.Clone(names[present:])
	slices.SortFunc(names, compareShowNames)
	for _, name := range names {
		err := showFile(d, name, w)
		switch {
		case err == nil:
		case isSkipped(err):
			fmt.Fprintf(w, "skipped: %v\n", err)
		case slices.Contains(missing, name):
			fmt.Fprintf(w, "missing: %v\n", err)
			bad = append(bad, name+" missing")
		default:
			fmt.Fprintf(w, "error: %v\n", err)
			bad = append(bad, name)
			mixed = mixed || errors.Is(err, ErrMixedDumps)
		}
	}
	if len(bad) > 0 {
		why := ""
		if mixed {
			why = fmt.Sprintf(" (of another dump than %s: %v)", inventoryName, ErrMixedDumps)
		}
		return fmt.Errorf("show %s: bad images: %s%s", path, strings.Join(bad, ", "), why)
	}
	return nil
}

// showContext shows the dump a context file holds (the contextfile
// package): checked as an image is (checkImageFile), its entries are
// extracted into a private temporary directory, removed afterwards, and
// shown as a dump directory, under the context's name.
func showContext(path string, w io.Writer, opts OpenOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	defer f.Close()
	if _, err := checkImageFile(int(f.Fd()), path, opts.TrustImages); err != nil {
		return fmt.Errorf("show: %w", err)
	}
	tmp, err := os.MkdirTemp("", "gocr-show-")
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := contextfile.Extract(f, tmp); err != nil {
		return fmt.Errorf("show %s: %w", path, err)
	}
	var out bytes.Buffer
	err = Show(tmp, &out, OpenOptions{})
	// Messages name the context, not the directory it was read into.
	w.Write(bytes.ReplaceAll(out.Bytes(), []byte(tmp), []byte(path)))
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), tmp, path))
	}
	return nil
}

// learnDumpID takes the dump ID from d's inventory, when it can be read,
// so that every image shown is checked against it as a restore checks it.
func (d *Dir) learnDumpID() {
	if inv, err := d.readInventory(); err == nil {
		d.mu.Lock()
		d.inventory = inv
		d.mu.Unlock()
		d.setDumpID(DumpID(inv.GetDumpId()))
	}
}

// neededImages lists the images a restore of d would read, as far as the
// inventory and the images it names can be read: each process's task
// image and, unless it is a zombie, its mm, files, page map and page
// images (one per stream its page map names), and every memfd image and
// deleted file's saved image its files image names and every saved file
// image its mm image names.
func neededImages(d *Dir) []string {
	inv, err := d.readInventory()
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range inv.GetPids() {
		pid := int(p)
		names = append(names, taskName(pid))
		if task, err := d.ReadTask(pid); err == nil && task.GetZombie() {
			continue
		}
		names = append(names, mmName(pid), filesName(pid), pagemapName(pid), pagesName(pid, 0))
		if ranges, err := d.ReadPagemap(pid); err == nil {
			for _, r := range ranges {
				if s := int(r.GetStream()); s > 0 {
					names = append(names, pagesName(pid, s))
				}
			}
		}
		if files, err := d.ReadFiles(pid); err == nil {
			for _, m := range files.GetMemfds() {
				names = append(names, memfdName(m.GetId()))
			}
			for _, g := range files.GetGhostFiles() {
				names = append(names, savedFileName(g.GetId()))
			}
		}
		if mm, err := d.ReadMm(pid); err == nil {
			for _, sf := range mm.GetSavedFiles() {
				names = append(names, savedFileName(sf.GetId()))
			}
		}
	}
	for _, shm := range inv.GetSysvIpc().GetShm() {
		names = append(names, sysvShmName(uint64(shm.GetPerm().GetId())))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// errNotImage marks a file Show does not know how to read.
var errNotImage = errors.New("not a gocr image name")

func isSkipped(err error) bool { return errors.Is(err, errNotImage) }

// compareShowNames orders the inventory first, then per-process images by
// pid and kind, then everything else by name.
func compareShowNames(a, b string) int {
	rank := func(name string) (group, pid, order int) {
		if name == inventoryName {
			return 0, 0, 0
		}
		m := perPidImage.FindStringSubmatch(name)
		if m == nil {
			return 2, 0, 0
		}
		pid, err := strconv.Atoi(m[2])
		if err != nil {
			return 2, 0, 0
		}
		stream, _ := strconv.Atoi(m[3]) // "" (stream 0) reads as 0
		return 1, pid, showOrder[m[1]]*MaxPageStreams + stream
	}
	ga, pa, oa := rank(a)
	gb, pb, ob := rank(b)
	if c := ga - gb; c != 0 {
		return c
	}
	if c := pa - pb; c != 0 {
		return c
	}
	if c := oa - ob; c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// showFile prints the header line for name and, if it is readable, its JSON.
func showFile(d *Dir, name string, w io.Writer) error {
	fmt.Fprintf(w, "=== %s ===\n", name)
	out, err := imageJSON(d, name)
	if err != nil {
		return err
	}
	var indented bytes.Buffer
	// Re-indenting also makes the output stable: protojson deliberately
	// varies its whitespace from build to build.
	if err := json.Indent(&indented, out, "", "  "); err != nil {
		return fmt.Errorf("format %s as JSON: %w", name, err)
	}
	indented.WriteByte('\n')
	_, err = w.Write(indented.Bytes())
	return err
}

// imageJSON reads the image called name in d and returns it as compact JSON.
func imageJSON(d *Dir, name string) ([]byte, error) {
	if name == inventoryName {
		inv, err := d.readInventory()
		if err != nil {
			return nil, err
		}
		return jsonOptions.Marshal(inv)
	}
	m := perPidImage.FindStringSubmatch(name)
	if m == nil {
		return nil, errNotImage
	}
	pid, err := strconv.Atoi(m[2])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, errNotImage)
	}
	stream := 0
	if m[3] != "" {
		if stream, err = strconv.Atoi(m[3]); err != nil || m[1] != "pages" || stream == 0 {
			return nil, fmt.Errorf("%s: %w", name, errNotImage)
		}
	}
	var msg proto.Message
	switch m[1] {
	case "task":
		msg, err = d.ReadTask(pid)
	case "mm":
		msg, err = d.ReadMm(pid)
	case "files":
		msg, err = d.ReadFiles(pid)
	case "pagemap":
		return pagemapJSON(d, pid)
	case "pages":
		return pagesJSON(d, pid, stream)
	case "memfd", "file", "shm":
		open := d.OpenMemfd
		switch m[1] {
		case "file":
			open = d.OpenSavedFile
		case "shm":
			open = d.OpenSysvShm
		}
		img, err := open(uint64(pid))
		if err != nil {
			return nil, err
		}
		img.Close()
		return []byte(fmt.Sprintf(`{"data_offset":%d,"data_size":%d}`, img.Off, img.Size)), nil
	}
	if err != nil {
		return nil, err
	}
	return jsonOptions.Marshal(msg)
}

func pagemapJSON(d *Dir, pid int) ([]byte, error) {
	ranges, err := d.ReadPagemap(pid)
	if err != nil {
		return nil, err
	}
	out := []byte{'['}
	for i, r := range ranges {
		if i > 0 {
			out = append(out, ',')
		}
		b, err := jsonOptions.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

func pagesJSON(d *Dir, pid, stream int) ([]byte, error) {
	img, err := d.OpenPages(pid, stream)
	if err != nil {
		return nil, err
	}
	img.Close()
	return json.Marshal(struct {
		DataOffset int64 `json:"data_offset"`
		DataSize   int64 `json:"data_size"`
	}{img.Off, img.Size})
}
