//go:build linux

package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	r  = unix.PROT_READ
	w  = unix.PROT_WRITE
	x  = unix.PROT_EXEC
	rw = r | w
)

// edgeMaps is what testdata/edge.maps describes; edge.smaps has the same
// headers plus edgeFlags.
func edgeMaps() []Mapping {
	return []Mapping{
		{Start: 0x400000, End: 0x401000, Prot: r | x, Major: 0xfe, Inode: 12, Path: "/tmp/my dir/prog with spaces"},
		{Start: 0x401000, End: 0x402000, Prot: rw, Offset: 0x1000, Major: 0xfe, Inode: 12, Path: "/tmp/my dir/prog with spaces"},
		{Start: 0x7f0000000000, End: 0x7f0000200000, Prot: rw, Shared: true, Minor: 1, Inode: 1031, Path: "/memfd:ring buf (deleted)", Deleted: true},
		{Start: 0x7f0000200000, End: 0x7f0000201000},
		{Start: 0x7f0000201000, End: 0x7f0000202000, Prot: rw, Path: "[anon:my name]"},
		// The kernel's "\012" for a newline is kept as printed.
		{Start: 0x7f0000300000, End: 0x7f0000301000, Prot: r, Shared: true, Offset: 0x123000, Major: 0x103, Minor: 0x1a2b3, Inode: 77, Path: `/dev/shm/x\012y`},
		// Leading blanks cannot be told from padding; no kernel name
		// starts with one.
		{Start: 0x7f0000400000, End: 0x7f0000401000, Prot: r | w | x, Path: "leading"},
		{Start: 0x7ffff7fc0000, End: 0x7ffff7fc4000, Prot: r, Path: "[vvar]"},
		{Start: 0x7ffff7fc4000, End: 0x7ffff7fc6000, Prot: r, Path: "[vvar_vclock]"},
		{Start: 0x7ffff7fc6000, End: 0x7ffff7fc8000, Prot: r | x, Path: "[vdso]"},
		{Start: 0x7ffffffde000, End: 0x7ffffffff000, Prot: rw, Path: "[stack]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: x, Path: "[vsyscall]"},
	}
}

var edgeFlags = []string{
	"rd ex mr mw me dw", "rd wr mr mw me ac", "rd wr sh mr mw me ms sd", "mr mw me dd",
	"rd wr mr mw me ac", "rd sh mr mw me", "rd wr ex mr mw me", "rd mr pf io de dd",
	"rd mr pf io de dd", "rd ex mr mw me de", "rd wr mr mw me gd ac", "ex",
}

func TestParseMapsEdge(t *testing.T) {
	got, err := ParseMaps(bytes.NewReader(fixture(t, "edge.maps")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(edgeMaps(), got); diff != "" {
		t.Errorf("ParseMaps(edge.maps) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseSmapsEdge(t *testing.T) {
	want := edgeMaps()
	for i := range want {
		want[i].VmFlags = strings.Fields(edgeFlags[i])
	}
	want[3].ProtectionKey = 3 // pkey_mprotect'ed
	want[4].AnonHugeBytes = 2 << 20
	got, err := ParseSmaps(bytes.NewReader(fixture(t, "edge.smaps")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSmaps(edge.smaps) mismatch (-want +got):\n%s", diff)
	}
	if !got[3].HasVmFlag("dd") || got[3].HasVmFlag("rd") || got[0].HasVmFlag("d") {
		t.Errorf("HasVmFlag wrong for %+v / %+v", got[3], got[0])
	}
	// Growing one mapping's flags must not write into the next one's.
	_ = append(got[0].VmFlags, "xx")
	if diff := cmp.Diff(want[1].VmFlags, got[1].VmFlags); diff != "" {
		t.Errorf("flags of mapping 1 changed by append to mapping 0 (-want +got):\n%s", diff)
	}
}

// sleep.* were captured from a stopped copy of sleep named "sl) (eep",
// run from "/tmp/gocr fix/" and then unlinked.
func TestParseMapsCaptured(t *testing.T) {
	maps, err := ParseMaps(bytes.NewReader(fixture(t, "sleep.maps")))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 37 {
		t.Fatalf("got %d mappings, want 37", len(maps))
	}
	want0 := Mapping{Start: 0x560b4f736000, End: 0x560b4f738000, Prot: r, Major: 0xfe, Inode: 9978940,
		Path: "/tmp/gocr fix/sl) (eep (deleted)", Deleted: true}
	if diff := cmp.Diff(want0, maps[0]); diff != "" {
		t.Errorf("first mapping (-want +got):\n%s", diff)
	}
	wantLast := Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: x, Path: "[vsyscall]"}
	if diff := cmp.Diff(wantLast, maps[36]); diff != "" {
		t.Errorf("last mapping (-want +got):\n%s", diff)
	}
	var specials []string
	for _, m := range maps {
		if strings.HasPrefix(m.Path, "[") {
			specials = append(specials, m.Path)
		}
	}
	if diff := cmp.Diff([]string{"[heap]", "[vvar]", "[vvar_vclock]", "[vdso]", "[stack]", "[vsyscall]"}, specials); diff != "" {
		t.Errorf("special mappings (-want +got):\n%s", diff)
	}

	smaps, err := ParseSmaps(bytes.NewReader(fixture(t, "sleep.smaps")))
	if err != nil {
		t.Fatal(err)
	}
	for i := range smaps {
		if smaps[i].VmFlags == nil {
			t.Errorf("mapping %d (%s) has no VmFlags", i, smaps[i].Path)
		}
	}
	if !smaps[len(smaps)-1].HasVmFlag("ex") || !smaps[0].HasVmFlag("rd") {
		t.Errorf("VmFlags: first %v, last %v", smaps[0].VmFlags, smaps[len(smaps)-1].VmFlags)
	}
	if diff := cmp.Diff(maps, smaps, cmp.Transformer("noflags", func(m Mapping) Mapping {
		m.VmFlags = nil
		return m
	})); diff != "" {
		t.Errorf("smaps headers differ from maps (-maps +smaps):\n%s", diff)
	}
}

func TestParseMapsErrors(t *testing.T) {
	for _, in := range []string{
		"00400000 r-xp 00000000 fe:00 12\n",
		"00401000-00400000 r-xp 00000000 fe:00 12\n",
		"00400000-00401000 r-x 00000000 fe:00 12\n",
		"00400000-00401000 r-xq 00000000 fe:00 12\n",
		"00400000-00401000 rzxp 00000000 fe:00 12\n",
		"00400000-00401000 r-xp 0000g000 fe:00 12\n",
		"00400000-00401000 r-xp 00000000 fe00 12\n",
		"00400000-00401000 r-xp 00000000 fe:00 -12\n",
		"00400000-00401000 r-xp 00000000 fe:00\n",
		"Size: 4 kB\n",
	} {
		if _, err := ParseMaps(strings.NewReader(in)); err == nil {
			t.Errorf("ParseMaps(%q) succeeded, want error", in)
		}
	}
	for _, in := range []string{
		"Size: 4 kB\n",
		"VmFlags: rd\n",
		"00400000-00401000 r-xp 00000000 fe:00 12\nVmFlags: rd\nVmFlags: wr\n",
	} {
		if _, err := ParseSmaps(strings.NewReader(in)); err == nil {
			t.Errorf("ParseSmaps(%q) succeeded, want error", in)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Stat
	}{
		{"sleep.stat", Stat{
			Pid: 4931, Comm: "sl) (eep", State: 'T', PPid: 4930, Pgrp: 4925, Session: 1777, TtyNr: 0, Tpgid: -1,
			Flags: 4194304, NumThreads: 1, StartTime: 44782, ExitSignal: 17,
			StartCode: 94606577598464, EndCode: 94606577616393, StartStack: 140725266672400,
			StartData: 94606577630480, EndData: 94606577631744, StartBrk: 94606613835776,
			ArgStart: 140725266680268, ArgEnd: 140725266680296, EnvStart: 140725266680296, EnvEnd: 140725266681825,
			ExitCode: 19,
		}},
		{"edge.stat", Stat{
			Pid: 1234, Comm: "a) (b c)", State: 'S', PPid: 1, Pgrp: 1234, Session: 1234, TtyNr: 34816, Tpgid: -1,
			Flags: 4194560, NumThreads: 3, StartTime: 44782, ExitSignal: 17, Processor: 1,
			StartCode: 4194304, EndCode: 4198400, StartStack: 140725266672400,
			StartData: 4202496, EndData: 4206592, StartBrk: 6291456,
			ArgStart: 140725266680268, ArgEnd: 140725266680296, EnvStart: 140725266680296, EnvEnd: 140725266681825,
			ExitCode: 256,
		}},
	} {
		got, err := ParseStat(fixture(t, tc.file))
		if err != nil {
			t.Errorf("ParseStat(%s): %v", tc.file, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseStat(%s) mismatch (-want +got):\n%s", tc.file, diff)
		}
	}
	for _, in := range []string{
		"",
		"12 cat R 1",
		"x (cat) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 0 0 0 17 0 0 0 0 0 0 1 1 1 1 1 1 1 0",
		"12 (cat) R 1 1 1",
		"12 (cat) RR 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 0 0 0 17 0 0 0 0 0 0 1 1 1 1 1 1 1 0",
		"12 (cat) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 0 0 0 17 0 0 0 0 0 0 1 1 1 1 1 1 1 zz",
	} {
		if _, err := ParseStat([]byte(in)); err == nil {
			t.Errorf("ParseStat(%q) succeeded, want error", in)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Status
	}{
		{"sleep.status", Status{
			Name: "sl) (eep", Umask: 0o22, HasUmask: true, State: 'T', Tgid: 4931, Pid: 4931, PPid: 4930,
			NSpid: []int{4931}, Threads: 1, SigIgn: 6,
			CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
			UntagMask: ^uint64(0), HasUntagMask: true, HasVmLck: true,
		}},
		{"edge.status", Status{
			Name: "\\odd\nname ", State: 'S', Tgid: 77, Pid: 78, PPid: 1, TracerPid: 99,
			Uid: [4]uint32{1000, 1001, 1002, 1003}, Gid: [4]uint32{2000, 2001, 2002, 2003},
			Groups: []uint32{4, 24, 27}, NSpid: []int{78, 5, 1}, Threads: 3,
			SigPnd: 0x100, ShdPnd: 1 << 63, SigBlk: 0xfffffffe7ffbfeff, SigIgn: 0x1000, SigCgt: 0x180000000,
			CapBnd: 0x1ffffffffff, NoNewPrivs: true, Seccomp: 2,
		}},
	} {
		got, err := ParseStatus(bytes.NewReader(fixture(t, tc.file)))
		if err != nil {
			t.Errorf("ParseStatus(%s): %v", tc.file, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseStatus(%s) mismatch (-want +got):\n%s", tc.file, diff)
		}
	}
	// VmLck in bytes, as "%8lu kB" shows it (fs/proc/task_mmu.c task_mem).
	if got, err := ParseStatus(strings.NewReader("Name:\tx\nState:\tR\nPid:\t1\nVmLck:\t    2048 kB\n")); err != nil || got.VmLck != 2<<20 || !got.HasVmLck {
		t.Errorf("ParseStatus VmLck: %d %v %v, want %d", got.VmLck, got.HasVmLck, err, 2<<20)
	}
	for _, in := range []string{
		"Name:\tx\nState:\tR (running)\n",
		"Name:\tx\nState:\tR\nPid:\t1\nUid:\t0\t0\t0\n",
		"Name:\tx\nState:\tR\nPid:\t1\nSigBlk:\tzz\n",
		"Name:\tx\nState:\tR\nPid:\t1\nUmask:\t0099\n",
		"Name:\tx\nState:\tR\nPid:\t1\nVmLck:\t  12x kB\n",
		"Name:\tx\nState:\tR\nPid:\t1\nVmLck:\t18014398509481984 kB\n",
	} {
		if _, err := ParseStatus(strings.NewReader(in)); err == nil {
			t.Errorf("ParseStatus(%q) succeeded, want error", in)
		}
	}
}

func TestParseLimits(t *testing.T) {
	const inf = ^uint64(0)
	want := []Limit{
		{unix.RLIMIT_CPU, inf, inf},
		{unix.RLIMIT_FSIZE, inf, inf},
		{unix.RLIMIT_DATA, inf, inf},
		{unix.RLIMIT_STACK, 8388608, inf},
		{unix.RLIMIT_CORE, 0, inf},
		{unix.RLIMIT_RSS, inf, inf},
		{unix.RLIMIT_NPROC, 96365, 96365},
		{unix.RLIMIT_NOFILE, 20000, 20000},
		{unix.RLIMIT_MEMLOCK, 8388608, 8388608},
		{unix.RLIMIT_AS, inf, inf},
		{unix.RLIMIT_LOCKS, inf, inf},
		{unix.RLIMIT_SIGPENDING, 96365, 96365},
		{unix.RLIMIT_MSGQUEUE, 819200, 819200},
		{unix.RLIMIT_NICE, 0, 0},
		{unix.RLIMIT_RTPRIO, 0, 0},
		{unix.RLIMIT_RTTIME, inf, inf},
	}
	in := fixture(t, "sleep.limits")
	got, err := ParseLimits(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseLimits mismatch (-want +got):\n%s", diff)
	}

	lines := strings.SplitAfter(string(in), "\n")
	missing := strings.Join(append(lines[:5:5], lines[6:]...), "")
	dup := string(in) + lines[3]
	bad := strings.Replace(string(in), "20000                20000", "20000                lots ", 1)
	for name, in := range map[string]string{"missing row": missing, "duplicate row": dup, "bad value": bad,
		"unknown row": string(in) + "Max fun                   1 1\n"} {
		if _, err := ParseLimits(strings.NewReader(in)); err == nil {
			t.Errorf("ParseLimits with %s succeeded, want error", name)
		}
	}
}

func TestParseFdInfo(t *testing.T) {
	for _, tc := range []struct {
		file string
		want FdInfo
	}{
		// "exec 7<>file" in bash, then a 3-byte read: O_RDWR|O_LARGEFILE.
		{"file.fdinfo", FdInfo{Pos: 3, Flags: unix.O_RDWR | 0o100000, MntID: 27, Ino: 9978941}},
		{"eventfd.fdinfo", FdInfo{Pos: 0, Flags: unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_RDWR, MntID: 15, Ino: 1057}},
		// Linux 6.18: a read lock over the file with a write lock on
		// bytes 100-104 taken over it, split in three.
		{"posixlocks.fdinfo", FdInfo{Flags: unix.O_RDWR | 0o100000, MntID: 27, Ino: 9994578, Locks: []FdLock{
			{Class: "POSIX", Mode: "ADVISORY", Type: "READ", Pid: 20124, Start: 0, End: 99},
			{Class: "POSIX", Mode: "ADVISORY", Type: "WRITE", Pid: 20124, Start: 100, End: 104},
			{Class: "POSIX", Mode: "ADVISORY", Type: "READ", Pid: 20124, Start: 105, End: -1},
		}}},
		{"ofdlock.fdinfo", FdInfo{Flags: unix.O_RDWR | 0o100000, MntID: 27, Ino: 9994562, Locks: []FdLock{
			{Class: "OFDLCK", Mode: "ADVISORY", Type: "WRITE", Pid: -1, Start: 10, End: 19},
		}}},
	} {
		got, err := ParseFdInfo(bytes.NewReader(fixture(t, tc.file)))
		if err != nil {
			t.Errorf("ParseFdInfo(%s): %v", tc.file, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseFdInfo(%s) mismatch (-want +got):\n%s", tc.file, diff)
		}
	}
	for _, in := range []string{"pos:\t1\n", "flags:\t02\n", "pos:\tx\nflags:\t02\n", "pos:\t1\nflags:\t09\n",
		"pos:\t1\nflags:\t02\nlock:\t1: POSIX ADVISORY WRITE 1 fe:00:1 5 4\n",
		"pos:\t1\nflags:\t02\nlock:\t1: POSIX ADVISORY WRITE 1 fe:00:1 0\n"} {
		if _, err := ParseFdInfo(strings.NewReader(in)); err == nil {
			t.Errorf("ParseFdInfo(%q) succeeded, want error", in)
		}
	}
}

// genSmaps builds an smaps text of n mappings shaped like a real one:
// runs of file mappings of one library between anonymous ones.
func genSmaps(n int) []byte {
	var b bytes.Buffer
	addr := uint64(0x7f0000000000)
	for i := 0; i < n; i++ {
		head := fmt.Sprintf("%08x-%08x %s %08x fe:00 %d ", addr, addr+0x3000, "r-xp", (i%5)*0x1000, 1000+i/5)
		path := ""
		if i%5 != 4 {
			path = fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libexample%d.so.1", i/5)
		}
		if path != "" {
			head = fmt.Sprintf("%-72s %s", head, path)
		}
		b.WriteString(head + "\n")
		for _, k := range []string{"Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty",
			"Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous",
			"KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
			"Private_Hugetlb", "Swap", "SwapPss", "Locked"} {
			fmt.Fprintf(&b, "%-15s %8d kB\n", k+":", 12)
		}
		b.WriteString("THPeligible:           0\nProtectionKey:         0\nVmFlags: rd ex mr mw me sd \n")
		addr += 0x4000
	}
	return b.Bytes()
}

func BenchmarkParseSmaps(b *testing.B) {
	in := genSmaps(10000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		ms, err := ParseSmaps(bytes.NewReader(in))
		if err != nil || len(ms) != 10000 {
			b.Fatalf("got %d mappings, err %v", len(ms), err)
		}
	}
}

func TestGenSmaps(t *testing.T) {
	ms, err := ParseSmaps(bytes.NewReader(genSmaps(10)))
	if err != nil {
		t.Fatal(err)
	}
	want := Mapping{Start: 0x7f0000004000, End: 0x7f0000007000, Prot: r | x, Offset: 0x1000, Major: 0xfe, Inode: 1000,
		Path: "/usr/lib/x86_64-linux-gnu/libexample0.so.1", VmFlags: []string{"rd", "ex", "mr", "mw", "me", "sd"},
		AnonHugeBytes: 12 << 10}
	if diff := cmp.Diff(want, ms[1]); diff != "" {
		t.Errorf("generated mapping 1 (-want +got):\n%s", diff)
	}
}

func TestParseEventfdAndEpoll(t *testing.T) {
	e, err := ParseEventfd(strings.NewReader("pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\neventfd-count:               2a\neventfd-id: 1\neventfd-semaphore: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Eventfd{Count: 42, Semaphore: true}, e); diff != "" {
		t.Errorf("eventfd (-want +got):\n%s", diff)
	}
	if _, err := ParseEventfd(strings.NewReader("pos:\t0\n")); err == nil {
		t.Error("fdinfo without eventfd-count accepted")
	}
	ws, err := ParseEpollWatches(strings.NewReader("pos:\t0\nflags:\t02000002\ntfd:        6 events:       19 data:           5a5e28  pos:0 ino:40e sdev:10\ntfd:       12 events: 80000001 data: ffffffffffffffff  pos:0 ino:40f sdev:10\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []EpollWatch{
		{Tfd: 6, Events: 0x19, Data: 0x5a5e28, HasFile: true, Ino: 0x40e, Sdev: 0x10},
		{Tfd: 12, Events: 0x80000001, Data: ^uint64(0), HasFile: true, Ino: 0x40f, Sdev: 0x10},
	}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("epoll watches (-want +got):\n%s", diff)
	}
	if _, err := ParseEpollWatches(strings.NewReader("tfd: x events: 1 data: 2\n")); err == nil {
		t.Error("malformed tfd line accepted")
	}
}

func TestParseSignalTimerInotify(t *testing.T) {
	m, err := ParseSignalfd(strings.NewReader("pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\nsigmask:\t0000001000000200\n"))
	if err != nil || m != 0x1000000200 {
		t.Errorf("signalfd mask = %#x, %v; want 0x1000000200", m, err)
	}
	tf, err := ParseTimerfd(strings.NewReader("pos:\t0\nflags:\t02\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (99, 669710051)\nit_interval: (1, 500000000)\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Timerfd{ClockID: 1, Ticks: 3, SettimeFlags: 1, ValueNs: 99669710051, IntervalNs: 1500000000}, tf); diff != "" {
		t.Errorf("timerfd (-want +got):\n%s", diff)
	}
	ws, err := ParseInotify(strings.NewReader("pos:\t0\ninotify wd:3 ino:60948 sdev:fe00000 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:4809060000000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []InotifyWatch{{Wd: 3, Ino: 0x60948, Sdev: 0xfe00000, Mask: 0xfff, HandleType: 1, Handle: []byte{0x48, 0x09, 0x06, 0, 0, 0, 0, 0}}}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("inotify (-want +got):\n%s", diff)
	}
	if _, err := ParseTimerfd(strings.NewReader("clockid: 1\n")); err == nil {
		t.Error("incomplete timerfd accepted")
	}
}

func TestParsePosixTimers(t *testing.T) {
	// Linux 6.18: a SIGEV_NONE timer on CLOCK_REALTIME, a SIGUSR1 one on
	// CLOCK_MONOTONIC carrying a pointer, and one for a thread.
	in := "ID: 1\nsignal: 0/0000000000000000\nnotify: none/pid.26758\nClockID: 0\n" +
		"ID: 0\nsignal: 10/00007ffd12345678\nnotify: signal/pid.26758\nClockID: 1\n" +
		"ID: 7\nsignal: 34/0000000000000007\nnotify: signal/tid.26760\nClockID: 7\n"
	got, err := ParsePosixTimers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []PosixTimer{
		{ID: 1, Notify: SigevNone, Target: 26758},
		{ID: 0, ClockID: 1, Signo: 10, SigValue: 0x7ffd12345678, Notify: SigevSignal, Target: 26758},
		{ID: 7, ClockID: 7, Signo: 34, SigValue: 7, Notify: SigevSignal | SigevThreadID, Target: 26760},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParsePosixTimers (-want +got):\n%s", d)
	}
	for _, bad := range []string{"signal: 1/0\n", "ID: x\n", "ID: 1\nnotify: bogus/pid.1\n", "ID: 1\nnotify: signal/xid.1\n", "ID: 1\nfoo: 1\n"} {
		if _, err := ParsePosixTimers(strings.NewReader(bad)); err == nil {
			t.Errorf("ParsePosixTimers(%q) succeeded, want error", bad)
		}
	}
}

// TestParseSyscall: the three shapes of /proc/PID/task/TID/syscall
// (fs/proc/base.c proc_pid_syscall), and what is not one of them.
func TestParseSyscall(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Syscall
	}{
		{"running\n", Syscall{Running: true}},
		{"-1 0x7ffd5f1e0a58 0x401136\n", Syscall{Nr: -1}},
		// vfork (58) as a vfork parent shows it while it waits.
		{"58 0x0 0x7ffc7c2a8a38 0x0 0x0 0x0 0x0 0x7ffc7c2a8a38 0x7f0d1a6d8c1b\n", Syscall{Nr: 58, Args: [6]uint64{0, 0x7ffc7c2a8a38}}},
		{"435 0x7ffe1b8c5f40 0x58 0x0 0x8 0x0 0xffffffffffffffff 0x7ffe1b8c5f30 0x7f1c2b3d4e5f\n",
			Syscall{Nr: 435, Args: [6]uint64{0x7ffe1b8c5f40, 0x58, 0, 8, 0, ^uint64(0)}}},
	} {
		got, err := ParseSyscall([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseSyscall(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseSyscall(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, bad := range []string{"", "sleeping", "58 0x0 0x1", "-1 0x1", "58 1 2 3 4 5 6 7 8", "x 0x0 0x0"} {
		if got, err := ParseSyscall([]byte(bad)); err == nil {
			t.Errorf("ParseSyscall(%q) = %+v, want an error", bad, got)
		}
	}
}
