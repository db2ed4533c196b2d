package images

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gocr/gocr/gocrpb"
)

const testPid = 4242

// sampleDumpID is the ID of every sample dump, fixed so that the images,
// and the fuzz seeds made of them, are the same every run.
var sampleDumpID = DumpID{0x67, 0x6f, 0x63, 0x72, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x2d, 0x64, 0x75, 0x6d, 0x70, 0x69, 0x64}

// sampleDir reads images of the sample dump in dir as a Dir from Open
// does: knowing the dump's ID.
func sampleDir(dir string) *Dir { return &Dir{Path: dir, id: sampleDumpID, idKnown: true} }

// samplePagesHeader is the header of the sample dump's page image of
// testPid, stream 0, sealed with size bytes of data.
func samplePagesHeader(size int64) []byte {
	h := &dataHeader{kind: kindPages, id: sampleDumpID, size: size, chunk: dataChunkSize, subject: testPid}
	return h.encode()
}

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

// sampleZombie is the task of the inventory's second process, a zombie
// child of the first: the only image it has.
func sampleZombie() *gocrpb.Task {
	return &gocrpb.Task{Pid: testPid + 1, Ppid: testPid, Pgid: testPid, Sid: testPid, Comm: "child", Zombie: true, ExitStatus: 3 << 8}
}

// writeSampleDump writes a complete dump of every image kind into dir.
func writeSampleDump(t testing.TB, dir string) *Dir {
	t.Helper()
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	d.id = sampleDumpID
	t.Cleanup(func() { d.Close() })
	for _, task := range []*gocrpb.Task{sampleTask(), sampleZombie()} {
		if err := d.WriteTask(task); err != nil {
			t.Fatal(err)
		}
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
	wantInv := sampleInventory()
	wantInv.DumpId = sampleDumpID[:]
	if diff := cmp.Diff(wantInv, d.Inventory(), protocmp.Transform()); diff != "" {
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

	f, err := d.OpenPages(testPid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := f.Size
	if f.Off != PagesDataOffset {
		t.Errorf("data at %d, want %d", f.Off, PagesDataOffset)
	}
	want := samplePageData()
	if size != int64(len(want)) {
		t.Errorf("pages data size = %d, want %d", size, len(want))
	}
	// The data's checksums follow it.
	got, err := io.ReadAll(io.NewSectionReader(f, f.Off, size))
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
