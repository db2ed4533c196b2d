package images

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gocr/gocr/gocrpb"
)

const testPid = 4242

func sampleInventory() *gocrpb.Inventory {
	return &gocrpb.Inventory{
		FormatVersion:  FormatVersion,
		GocrVersion:    "test",
		RootPid:        testPid,
		Pids:           []int32{testPid, testPid + 1},
		DumpTimeUnixNs: 1700000000123456789,
		KernelRelease:  "6.18.0-test",
		Xcr0:           0xe7,
		PageSize:       4096,
	}
}

func sampleTask() *gocrpb.Task {
	return &gocrpb.Task{
		Pid: testPid, Ppid: 1, Pgid: testPid, Sid: testPid,
		Comm:  "target",
		Creds: &gocrpb.Creds{Ruid: 1000, Euid: 1000, Groups: []uint32{4, 27}, CapBnd: 0x1ffffffffff},
		Umask: 0o22, Cwd: "/tmp", Root: "/",
		Rlimits:    []*gocrpb.Rlimit{{Resource: 7, Cur: 1024, Max: 1 << 20}, {Resource: 3, Cur: ^uint64(0), Max: ^uint64(0)}},
		Sigactions: []*gocrpb.SigAction{{Signo: 10, Handler: 0x401000, Flags: 0x04000000, Restorer: 0x402000, Mask: 1 << 9}},
		SharedPending: []*gocrpb.SigInfo{
			{Signo: 12, Siginfo: bytes.Repeat([]byte{0xab}, 128)},
		},
		Itimers: []*gocrpb.Itimer{{Which: 0, IntervalUs: 1000, ValueUs: 500}},
		Threads: []*gocrpb.Thread{
			{
				Tid:         testPid,
				Regs:        &gocrpb.GPRegs{Rip: 0x401234, Rsp: 0x7ffc0000, Rax: ^uint64(37) + 1, OrigRax: 230, Cs: 0x33, Ss: 0x2b, FsBase: 0x7f0000001000},
				Xsave:       bytes.Repeat([]byte{1, 2, 3, 4}, 700),
				XstateBv:    0xe7,
				Sigmask:     1 << 1,
				Sigaltstack: &gocrpb.SigAltStack{Sp: 0x7000, Flags: 2, Size: 8192},
				Rseq:        &gocrpb.Rseq{AbiPointer: 0x7f00000020, AbiSize: 32, Signature: 0x53053053},
				Comm:        "target",
			},
			{Tid: testPid + 7, Regs: &gocrpb.GPRegs{Rip: 0x405678}},
		},
		Flags: &gocrpb.ProcessFlags{Dumpable: true, PdeathSignal: 9},
	}
}

func sampleMm() *gocrpb.Mm {
	exe := &gocrpb.FileRef{Path: "/usr/bin/target", Dev: 0x801, Ino: 1234, Size: 65536, MtimeNs: 1600000000000000000}
	return &gocrpb.Mm{
		Pid: testPid, StartCode: 0x400000, EndCode: 0x401000, Brk: 0x602000,
		Auxv: []byte{6, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0},
		Exe:  exe,
		Vmas: []*gocrpb.Vma{
			{Start: 0x400000, End: 0x401000, Prot: 5, Kind: gocrpb.VmaKind_VMA_FILE_PRIVATE, Name: exe.Path, File: exe, VmFlags: []string{"rd", "ex"}},
			{Start: 0x7ffc0000, End: 0x7ffe0000, Prot: 3, Kind: gocrpb.VmaKind_VMA_ANON_PRIVATE, Name: "[stack]", DumpedPages: 2},
			{Start: 0x7fff0000, End: 0x7fff2000, Prot: 5, Kind: gocrpb.VmaKind_VMA_VDSO, Name: "[vdso]"},
		},
	}
}

func sampleFiles() *gocrpb.Files {
	return &gocrpb.Files{
		Pid: testPid,
		Fds: []*gocrpb.Fd{
			{Fd: 0, Kind: &gocrpb.Fd_Inherit{Inherit: &gocrpb.InheritFd{}}, SharedWith: -1, Description: "/dev/pts/0"},
			{Fd: 3, Kind: &gocrpb.Fd_Path{Path: &gocrpb.PathFd{Type: gocrpb.PathFd_REGULAR}}, File: &gocrpb.FileRef{Path: "/tmp/log"}, Flags: 0o2001, Pos: 77, Cloexec: true, SharedWith: -1},
			{Fd: 4, Kind: &gocrpb.Fd_Path{Path: &gocrpb.PathFd{Type: gocrpb.PathFd_REGULAR}}, File: &gocrpb.FileRef{Path: "/tmp/log"}, Flags: 0o2001, Pos: 77, SharedWith: 3},
			{Fd: 5, Kind: &gocrpb.Fd_Pipe{Pipe: &gocrpb.PipeFd{Id: 99, Size: 65536, Data: []byte("unread")}}, SharedWith: -1},
			{Fd: 6, Kind: &gocrpb.Fd_Epoll{Epoll: &gocrpb.EpollFd{Watches: []*gocrpb.EpollWatch{{Tfd: 5, Events: 1, Data: 7}}}}, SharedWith: -1},
		},
	}
}

func samplePagemap() []*gocrpb.PageRange {
	return []*gocrpb.PageRange{
		{Vaddr: 0x602000, NrPages: 1},
		{Vaddr: 0x7ffc0000, NrPages: 2},
	}
}

// samplePageData is the page data matching samplePagemap.
func samplePageData() []byte {
	data := make([]byte, 3*4096)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return data
}

// writeSampleDump writes a complete dump of every image kind into dir.
func writeSampleDump(t *testing.T, dir string) *Dir {
	t.Helper()
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteMm(sampleMm()); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFiles(sampleFiles()); err != nil {
		t.Fatal(err)
	}
	pw, err := d.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range samplePagemap() {
		if err := pw.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := d.CreatePages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := samplePageData()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := FinishPages(f, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteInventory(sampleInventory()); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dump")
	writeSampleDump(t, dir)

	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleInventory(), d.Inventory(), protocmp.Transform()); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	task, err := d.ReadTask(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleTask(), task, protocmp.Transform()); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
	mm, err := d.ReadMm(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleMm(), mm, protocmp.Transform()); diff != "" {
		t.Errorf("mm (-want +got):\n%s", diff)
	}
	files, err := d.ReadFiles(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleFiles(), files, protocmp.Transform()); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	ranges, err := d.ReadPagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(samplePagemap(), ranges, protocmp.Transform()); diff != "" {
		t.Errorf("pagemap (-want +got):\n%s", diff)
	}

	f, size, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := samplePageData()
	if size != int64(len(want)) {
		t.Errorf("pages data size = %d, want %d", size, len(want))
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("pages data read from the returned offset differs from what was written")
	}
	// Restore preads pages at page-aligned offsets; check one.
	page := make([]byte, 4096)
	if _, err := f.ReadAt(page, PagesDataOffset+4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, want[4096:8192]) {
		t.Errorf("second page read at PagesDataOffset+4096 differs")
	}
}

func TestEmptyPagemapRoundTrip(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pw, err := d.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	ranges, err := d.ReadPagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 0 {
		t.Errorf("ReadPagemap = %v, want no ranges", ranges)
	}
}

// recordImageReaders reads each record-framed image of the sample dump.
var recordImageReaders = map[string]func(d *Dir) error{
	inventoryName:        func(d *Dir) error { _, err := d.readInventory(); return err },
	taskName(testPid):    func(d *Dir) error { _, err := d.ReadTask(testPid); return err },
	mmName(testPid):      func(d *Dir) error { _, err := d.ReadMm(testPid); return err },
	filesName(testPid):   func(d *Dir) error { _, err := d.ReadFiles(testPid); return err },
	pagemapName(testPid): func(d *Dir) error { _, err := d.ReadPagemap(testPid); return err },
}

// pagesReader reads the sample dump's pages image.
func pagesReader(d *Dir) error {
	f, _, err := d.OpenPages(testPid, 0)
	if err == nil {
		f.Close()
	}
	return err
}

// mutateAndRead writes data in place of the image name in a copy of the
// sample dump and reads it back.
func mutateAndRead(t *testing.T, src *Dir, name string, data []byte, read func(*Dir) error) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return read(&Dir{Path: dir})
}

func requireFormatError(t *testing.T, err error, context string) *FormatError {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: got error %v, want a *FormatError", context, err)
	}
	if strings.Contains(fe.Error(), "\n") {
		t.Errorf("%s: error spans lines: %q", context, fe.Error())
	}
	return fe
}

func TestEveryTruncationRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	readers := map[string]func(*Dir) error{pagesName(testPid, 0): pagesReader}
	for name, read := range recordImageReaders {
		readers[name] = read
	}
	for name, read := range readers {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := read(src); err != nil {
			t.Fatalf("%s: intact image rejected: %v", name, err)
		}
		dir := t.TempDir()
		d := &Dir{Path: dir}
		for n := 0; n < len(data); n++ {
			if err := os.WriteFile(d.file(name), data[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			fe := requireFormatError(t, read(d), name+" truncated to "+strconv.Itoa(n)+" bytes")
			if fe.Path != d.file(name) {
				t.Errorf("%s truncated to %d bytes: FormatError.Path = %q, want %q", name, n, fe.Path, d.file(name))
			}
		}
	}
}

func TestEveryFlippedByteRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	for name, read := range recordImageReaders {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		d := &Dir{Path: dir}
		for i := range data {
			bad := bytes.Clone(data)
			bad[i] ^= 0xff
			if err := os.WriteFile(d.file(name), bad, 0o600); err != nil {
				t.Fatal(err)
			}
			requireFormatError(t, read(d), name+" with byte "+strconv.Itoa(i)+" flipped")
		}
	}
}

func TestTrailingDataRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	for name, read := range recordImageReaders {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		err = mutateAndRead(t, src, name, append(data, 0), read)
		fe := requireFormatError(t, err, name+" with a trailing byte")
		if !strings.Contains(fe.Reason, "trailing data") {
			t.Errorf("%s: reason %q does not mention trailing data", name, fe.Reason)
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	taskData, err := os.ReadFile(src.file(taskName(testPid)))
	if err != nil {
		t.Fatal(err)
	}
	pagesData, err := os.ReadFile(src.file(pagesName(testPid, 0)))
	if err != nil {
		t.Fatal(err)
	}
	readTask := recordImageReaders[taskName(testPid)]
	readMm := recordImageReaders[mmName(testPid)]

	newer := func(data []byte) []byte {
		b := bytes.Clone(data)
		binary.LittleEndian.PutUint32(b[len(magic):], FormatVersion+1)
		return b
	}
	wrongMagic := func(data []byte) []byte {
		b := bytes.Clone(data)
		copy(b, "CRIUIMG\x00")
		return b
	}
	oversized := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(oversized[fileHeaderSize:], maxRecordSize+1)
	zeroVersion := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(zeroVersion[len(magic):], 0)
	olderVersion := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(olderVersion[len(magic):], MinFormatVersion-1)

	tests := []struct {
		name   string
		file   string
		data   []byte
		read   func(*Dir) error
		reason string
	}{
		{"wrong magic", taskName(testPid), wrongMagic(taskData), readTask, "not a gocr image"},
		{"text file", taskName(testPid), []byte("hello, this is not an image\n"), readTask, "not a gocr image"},
		{"newer version", taskName(testPid), newer(taskData), readTask, fmt.Sprintf("written by a newer gocr (format %d), this gocr reads format %d", FormatVersion+1, FormatVersion)},
		{"version zero", taskName(testPid), zeroVersion, readTask, "invalid format version 0"},
		{"older version", taskName(testPid), olderVersion, readTask, fmt.Sprintf("written by an older gocr (format %d), this gocr reads formats %d to %d", MinFormatVersion-1, MinFormatVersion, FormatVersion)},
		{"wrong kind", mmName(testPid), taskData, readMm, "holds a task image, expected a mm image"},
		{"oversized record", taskName(testPid), oversized, readTask, "exceeds the 67108864-byte record limit"},
		{"pages wrong magic", pagesName(testPid, 0), wrongMagic(pagesData), pagesReader, "not a gocr image"},
		{"pages newer version", pagesName(testPid, 0), newer(pagesData), pagesReader, "written by a newer gocr"},
		{"pages wrong kind", pagesName(testPid, 0), taskData, pagesReader, "holds a task image, expected a pages image"},
		{"pages data missing", pagesName(testPid, 0), pagesData[:PagesDataOffset+100], pagesReader, "header promises 12288 data bytes"},
		{"pages data extra", pagesName(testPid, 0), append(bytes.Clone(pagesData), 0), pagesReader, "header promises 12288 data bytes"},
		{"pages reserved bytes", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[100] = 1; return b }(), pagesReader, "reserved header bytes"},
		{"pages size never recorded", pagesName(testPid, 0), append(pagesHeader(0), samplePageData()...), pagesReader, "header promises 0 data bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mutateAndRead(t, src, tt.file, tt.data, tt.read)
			fe := requireFormatError(t, err, tt.name)
			if !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", fe.Reason, tt.reason)
			}
			if !strings.Contains(err.Error(), "image "+fe.Path+": ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestSingleMessageImageRecordCount(t *testing.T) {
	dir := t.TempDir()
	d := &Dir{Path: dir}
	if err := writeRecordFile(d.file(taskName(testPid)), kindTask, sampleTask(), sampleTask()); err != nil {
		t.Fatal(err)
	}
	_, err := d.ReadTask(testPid)
	requireFormatError(t, err, "task image with two records")

	if err := writeRecordFile(d.file(mmName(testPid)), kindMm); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadMm(testPid)
	requireFormatError(t, err, "mm image with no records")
}

func TestPidMismatchRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	data, err := os.ReadFile(src.file(taskName(testPid)))
	if err != nil {
		t.Fatal(err)
	}
	err = mutateAndRead(t, src, taskName(testPid+1), data, func(d *Dir) error {
		_, err := d.ReadTask(testPid + 1)
		return err
	})
	fe := requireFormatError(t, err, "task image under another pid's name")
	if !strings.Contains(fe.Reason, "holds pid 4242") {
		t.Errorf("reason = %q", fe.Reason)
	}
}

func TestMissingImageNamesFile(t *testing.T) {
	d := &Dir{Path: t.TempDir()}
	_, err := d.ReadMm(77)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadMm of a missing image: got %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "mm-77.img") {
		t.Errorf("error %q does not name mm-77.img", err)
	}
	_, _, err = d.OpenPages(77, 0)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "pages-77.img") {
		t.Errorf("OpenPages of a missing image: got %v, want fs.ErrNotExist naming pages-77.img", err)
	}
}

func TestOpenRequiresInventory(t *testing.T) {
	dir := t.TempDir()
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTask(sampleTask()); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrIncompleteDump) {
		t.Fatalf("Open without inventory: got %v, want ErrIncompleteDump", err)
	}
	if want := dir + ": not a complete gocr dump (no inventory.img)"; err.Error() != want {
		t.Errorf("Open without inventory: error %q, want %q", err, want)
	}
	if _, err := Open(filepath.Join(dir, "nonexistent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing dir: got %v, want fs.ErrNotExist", err)
	}
}

func TestInventoryValidated(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range []*gocrpb.Inventory{
		{RootPid: 1},
		{RootPid: 1, Pids: []int32{2}},
		{RootPid: 1, Pids: []int32{1, 1}},
		{FormatVersion: FormatVersion + 1, RootPid: 1, Pids: []int32{1}},
	} {
		if err := d.WriteInventory(inv); err == nil {
			t.Errorf("WriteInventory(%v) succeeded, want an error", inv)
		}
	}
	inv := &gocrpb.Inventory{RootPid: 1, Pids: []int32{1}}
	if err := d.WriteInventory(inv); err != nil {
		t.Fatal(err)
	}
	if inv.FormatVersion != 0 {
		t.Errorf("WriteInventory modified its argument")
	}
	if got := d.Inventory().GetFormatVersion(); got != FormatVersion {
		t.Errorf("written inventory format_version = %d, want %d", got, FormatVersion)
	}
	if _, err := Open(d.Path); err != nil {
		t.Errorf("Open after WriteInventory: %v", err)
	}
}

func TestCreateRemovesOldInventory(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, inventoryName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("inventory.img after Create over an old dump: stat error %v, want not exist", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrIncompleteDump) {
		t.Errorf("Open after Create over an old dump: got %v, want ErrIncompleteDump", err)
	}
}

func TestAbortRemovesCreatedFiles(t *testing.T) {
	t.Run("new dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dump")
		d := writeSampleDump(t, dir)
		// A writer left open by a failed dump.
		if _, err := d.CreatePages(testPid+1, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dump dir created by Create still exists after Abort (stat: %v)", err)
		}
	})
	t.Run("existing dir", func(t *testing.T) {
		dir := t.TempDir()
		keep := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := writeSampleDump(t, dir)
		if err := d.Abort(); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if diff := cmp.Diff([]string{"notes.txt"}, names); diff != "" {
			t.Errorf("files left after Abort (-want +got):\n%s", diff)
		}
	})
}

func TestFinishPagesChecksSize(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.CreatePages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != PagesDataOffset {
		t.Fatalf("CreatePages file offset = %d, %v; want %d", off, err, PagesDataOffset)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := FinishPages(f, 8192); err == nil {
		t.Errorf("FinishPages with a size larger than written succeeded")
	}
	if err := FinishPages(f, 4096); err != nil {
		t.Fatal(err)
	}
	_, size, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if size != 4096 {
		t.Errorf("data size = %d, want 4096", size)
	}
}

// splitShow splits Show output into file name -> body.
func splitShow(t *testing.T, out string) (order []string, bodies map[string]string) {
	t.Helper()
	bodies = map[string]string{}
	var cur string
	for _, line := range strings.SplitAfter(out, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "=== "); ok && strings.HasSuffix(name, " ===") {
			cur = strings.TrimSuffix(name, " ===")
			order = append(order, cur)
			continue
		}
		if cur == "" && line != "" {
			t.Fatalf("Show output starts without a header: %q", line)
		}
		bodies[cur] += line
	}
	return order, bodies
}

func TestShow(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Show(dir, &out); err != nil {
		t.Fatalf("Show: %v\n%s", err, out.String())
	}
	order, bodies := splitShow(t, out.String())
	wantOrder := []string{inventoryName, taskName(testPid), mmName(testPid), filesName(testPid), pagemapName(testPid), pagesName(testPid, 0), "README"}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("Show file order (-want +got):\n%s", diff)
	}
	for _, name := range wantOrder[:len(wantOrder)-1] {
		if !json.Valid([]byte(bodies[name])) {
			t.Errorf("Show body of %s is not valid JSON:\n%s", name, bodies[name])
		}
	}
	if !strings.HasPrefix(bodies["README"], "skipped: ") {
		t.Errorf("Show body of README = %q, want it skipped", bodies["README"])
	}
	var pages struct {
		DataOffset int64 `json:"data_offset"`
		DataSize   int64 `json:"data_size"`
	}
	if err := json.Unmarshal([]byte(bodies[pagesName(testPid, 0)]), &pages); err != nil {
		t.Fatal(err)
	}
	if pages.DataSize != int64(len(samplePageData())) {
		t.Errorf("Show pages data size = %d, want %d", pages.DataSize, len(samplePageData()))
	}
	var task map[string]any
	if err := json.Unmarshal([]byte(bodies[taskName(testPid)]), &task); err != nil {
		t.Fatal(err)
	}
	if task["comm"] != "target" {
		t.Errorf("Show task comm = %v, want target", task["comm"])
	}

	// Output must not depend on protojson's randomized whitespace.
	var again bytes.Buffer
	if err := Show(dir, &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("Show output differs between runs")
	}
}

func TestShowReportsBadFiles(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if err := os.Remove(filepath.Join(dir, inventoryName)); err != nil {
		t.Fatal(err)
	}
	mm := filepath.Join(dir, mmName(testPid))
	data, err := os.ReadFile(mm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mm, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Show(dir, &out)
	if err == nil {
		t.Fatalf("Show of a dump with a bad image succeeded:\n%s", out.String())
	}
	for _, want := range []string{"inventory.img missing", mmName(testPid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Show error %q does not mention %q", err, want)
		}
	}
	_, bodies := splitShow(t, out.String())
	if !strings.HasPrefix(bodies[mmName(testPid)], "error: ") {
		t.Errorf("Show body of the truncated mm image = %q, want an error", bodies[mmName(testPid)])
	}
	// The good images are still shown.
	if !json.Valid([]byte(bodies[taskName(testPid)])) {
		t.Errorf("Show body of task image is not valid JSON:\n%s", bodies[taskName(testPid)])
	}

	// A single image file can be shown too.
	out.Reset()
	if err := Show(filepath.Join(dir, taskName(testPid)), &out); err != nil {
		t.Fatal(err)
	}
	if _, bodies := splitShow(t, out.String()); !json.Valid([]byte(bodies[taskName(testPid)])) {
		t.Errorf("Show of one file is not valid JSON:\n%s", out.String())
	}
}

// TestPageStreamImages: each stream has its own page image, named
// pages-PID.img for stream 0 and pages-PID.S.img above; streams outside
// 0..MaxPageStreams-1 are refused when writing, opening and in a page map;
// Discard removes a stream image so Abort need not; Show names every one.
func TestPageStreamImages(t *testing.T) {
	path := t.TempDir()
	d, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		f, err := d.CreatePages(testPid, s)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(path, pagesName(testPid, s)); f.Name() != want {
			t.Errorf("stream %d image is %s, want %s", s, f.Name(), want)
		}
		if _, err := f.Write(make([]byte, 4096*(s+1))); err != nil {
			t.Fatal(err)
		}
		if err := FinishPages(f, int64(4096*(s+1))); err != nil {
			t.Fatal(err)
		}
		if s == 2 {
			if err := d.Discard(f); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(f.Name()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("discarded %s still there: %v", f.Name(), err)
			}
		} else {
			f.Close()
		}
	}
	if pagesName(testPid, 1) != fmt.Sprintf("pages-%d.1.img", testPid) {
		t.Errorf("stream 1 is named %s", pagesName(testPid, 1))
	}
	for _, s := range []int{-1, MaxPageStreams} {
		if _, err := d.CreatePages(testPid, s); err == nil {
			t.Errorf("CreatePages of stream %d succeeded", s)
		}
		if _, _, err := d.OpenPages(testPid, s); err == nil {
			t.Errorf("OpenPages of stream %d succeeded", s)
		}
	}
	pm, err := d.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*gocrpb.PageRange{{Vaddr: 0x1000, NrPages: 1}, {Vaddr: 0x2000, NrPages: 2, Stream: 1}} {
		if err := pm.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	ranges, err := d.ReadPagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 || ranges[1].GetStream() != 1 {
		t.Errorf("page map read back as %v", ranges)
	}
	_, size, err := d.OpenPages(testPid, 1)
	if err != nil || size != 8192 {
		t.Errorf("OpenPages stream 1: size %d, %v; want 8192", size, err)
	}
	if _, _, err := d.OpenPages(testPid, 2); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), pagesName(testPid, 2)) {
		t.Errorf("OpenPages of a discarded stream: %v, want fs.ErrNotExist naming %s", err, pagesName(testPid, 2))
	}
	// Without an inventory Show reports an error but still prints every
	// image it can read.
	var out strings.Builder
	_ = Show(path, &out)
	if !strings.Contains(out.String(), "=== "+pagesName(testPid, 1)+" ===") {
		t.Errorf("show printed no block for %s:\n%s", pagesName(testPid, 1), out.String())
	}

	bad, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pm, err = bad.CreatePagemap(testPid)
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.Add(&gocrpb.PageRange{Vaddr: 0x1000, NrPages: 1, Stream: MaxPageStreams}); err != nil {
		t.Fatal(err)
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ReadPagemap(testPid); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Errorf("a page map naming stream %d read as %v, want an error about the stream", MaxPageStreams, err)
	}
}
