//go:build linux

package proc

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Fuzz targets for every /proc parser. Each asserts that a parser neither
// panics nor hangs (the fuzzing engine catches both), that what it accepts
// is within the limits its documentation states, and that what it refuses
// it refuses wholly (no partial list next to an error). The seeds are the
// real fixtures in testdata plus the formats quoted in each parser's
// comment; `make fuzz` runs each target briefly, and the seeds run with
// every `go test`.

// addFixtures adds every testdata file whose name ends in suffix as a seed.
func addFixtures(f *testing.F, suffix string) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*"+suffix))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// addStrings adds each s as a seed.
func addStrings(f *testing.F, ss ...string) {
	for _, s := range ss {
		f.Add([]byte(s))
	}
}

// requireRefusal fails t when a parser returned something next to an
// error: its callers are promised nothing or everything.
func requireRefusal(t *testing.T, what string, got any, err error) {
	t.Helper()
	if err != nil && !reflect.ValueOf(got).IsZero() {
		t.Fatalf("%s: error %v together with a result %+v", what, err, got)
	}
}

// fdinfoHeader is the common head of every fdinfo file (fs/proc/fd.c).
const fdinfoHeader = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n"

func FuzzParseFdInfo(f *testing.F) {
	addFixtures(f, ".fdinfo")
	addStrings(f, fdinfoHeader,
		fdinfoHeader+"lock:\t1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF\n",
		fdinfoHeader+"lock:\t1: POSIX  ADVISORY  READ 99 08:01:12 100 199\n",
		"pos:\t-1\nflags:\t077777777777\n", "flags:\t0\n", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		fi, err := ParseFdInfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range fi.Locks {
			if l.End != -1 && l.End < l.Start {
				t.Fatalf("lock ends at %d before its start %d", l.End, l.Start)
			}
		}
	})
}

func FuzzParseEventfd(f *testing.F) {
	addFixtures(f, "eventfd.fdinfo")
	addStrings(f, fdinfoHeader+"eventfd-count:                5\neventfd-semaphore: 1\n",
		"eventfd-count: ffffffffffffffff\n", "eventfd-count: 1ffffffffffffffff\n", "eventfd-semaphore: 1\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseEventfd(bytes.NewReader(b))
	})
}

func FuzzParseEpollWatches(f *testing.F) {
	addStrings(f, fdinfoHeader+"tfd:        5 events:       19 data:                7  pos:0 ino:1057 sdev:f\n",
		"tfd:        5 events:       19 data:                7  pos:0 ino:1057 sdev:f\ntfd: 6 events: 1 data: ffffffffffffffff pos:0 ino:1 sdev:1\n",
		"tfd: 5 events:\n", "tfd: x events: 1 data: 1\n",
		"tfd: -1 events: 1 data: 1 pos:0 ino:1 sdev:1\n", "tfd: 4294967301 events: 1 data: 1 pos:0 ino:1 sdev:1\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := ParseEpollWatches(bytes.NewReader(b))
		requireRefusal(t, "ParseEpollWatches", ws, err)
		for _, w := range ws {
			if w.Tfd < 0 || w.Tfd > math.MaxInt32 {
				t.Fatalf("watch of fd %d accepted", w.Tfd)
			}
		}
	})
}

func FuzzParseSignalfd(f *testing.F) {
	addStrings(f, fdinfoHeader+"sigmask:\t0000000000004000\n", "sigmask: zz\n", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSignalfd(bytes.NewReader(b))
	})
}

func FuzzParseTimerfd(f *testing.F) {
	addStrings(f, fdinfoHeader+"clockid: 1\nticks: 0\nsettime flags: 01\nit_value: (0, 999999)\nit_interval: (1, 0)\n",
		"clockid: 0\nticks: 3\nsettime flags: 0\nit_value: (9223372036, 854775807)\nit_interval: (-1, -1)\n",
		"it_value: (1 2)\n",
		// sec*1e9 overflowed into a negative time before it was checked.
		"clockid: 0\nticks: 0\nit_value: (9223372037, 0)\nit_interval: (0, 0)\n",
		"clockid: 0\nticks: 0\nit_value: (0, 1000000000)\nit_interval: (0, 0)\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		tf, err := ParseTimerfd(bytes.NewReader(b))
		if err == nil && (tf.ValueNs < 0 || tf.IntervalNs < 0) {
			t.Fatalf("negative time accepted: %+v", tf)
		}
	})
}

func FuzzParseInotify(f *testing.F) {
	addStrings(f, fdinfoHeader+"inotify wd:1 ino:7c sdev:800001 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:7c00000035e6fa7e\n",
		"inotify wd:2 ino:1 sdev:1 mask:1 ignored_mask:0 fhandle-bytes:0 fhandle-type:0 f_handle:\n",
		"inotify wd:0\n", "inotify f_handle:zz\n",
		// A wd past an int's range wrapped negative, a mask past 32 bits was cut.
		"inotify wd:ffffffffffffffff ino:1 sdev:1 mask:1 ignored_mask:0 fhandle-bytes:0 fhandle-type:0 f_handle:\n",
		"inotify wd:1 ino:1 sdev:1 mask:1ffffffff ignored_mask:0 fhandle-bytes:0 fhandle-type:0 f_handle:\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := ParseInotify(bytes.NewReader(b))
		requireRefusal(t, "ParseInotify", ws, err)
		for _, w := range ws {
			if w.Wd <= 0 || w.Wd > math.MaxInt32 {
				t.Fatalf("watch with descriptor 0 accepted: %+v", w)
			}
		}
	})
}

func FuzzParseUnixFdInfo(f *testing.F) {
	addStrings(f, fdinfoHeader+"scm_fds: 2\n", "scm_fds: -1\n", "scm_fds:\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseUnixFdInfo(bytes.NewReader(b))
	})
}

func FuzzParsePosixTimers(f *testing.F) {
	addStrings(f, "ID: 1\nsignal: 14/00000000deadbeef\nnotify: signal/pid.123\nClockID: 1\n",
		"ID: 0\nsignal: 0/0000000000000000\nnotify: thread/tid.77\nClockID: 0\nID: 2\nsignal: 34/ffffffffffffffff\nnotify: none/pid.1\nClockID: 7\n",
		"signal: 1/0\n", "ID: 1\nnotify: signal/pid\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParsePosixTimers(bytes.NewReader(b))
		requireRefusal(t, "ParsePosixTimers", ts, err)
		for _, tm := range ts {
			switch tm.Notify {
			case SigevSignal, SigevNone, SigevThread, SigevSignal | SigevThreadID, SigevNone | SigevThreadID, SigevThread | SigevThreadID:
			default:
				t.Fatalf("timer %d: notify %d is no sigev_notify", tm.ID, tm.Notify)
			}
		}
	})
}

// checkMappings checks what parseMaps promises of every mapping.
func checkMappings(t *testing.T, ms []Mapping, smaps bool) {
	t.Helper()
	for _, m := range ms {
		if m.End < m.Start {
			t.Fatalf("mapping %x-%x ends before it starts", m.Start, m.End)
		}
		if m.Prot&^(unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC) != 0 {
			t.Fatalf("mapping %x-%x: prot %#x", m.Start, m.End, m.Prot)
		}
		if m.Major >= 1<<12 || m.Minor >= 1<<20 {
			t.Fatalf("mapping %x-%x: device %x:%x out of range", m.Start, m.End, m.Major, m.Minor)
		}
		if m.Deleted != (len(m.Path) > len(deletedSuffix) && strings.HasSuffix(m.Path, deletedSuffix)) {
			t.Fatalf("mapping %x-%x: Deleted %v for path %q", m.Start, m.End, m.Deleted, m.Path)
		}
		if strings.ContainsRune(m.Path, '\n') {
			t.Fatalf("mapping %x-%x: path %q spans lines", m.Start, m.End, m.Path)
		}
		if !smaps && m.VmFlags != nil {
			t.Fatalf("mapping %x-%x: VmFlags from maps", m.Start, m.End)
		}
	}
}

func FuzzParseMaps(f *testing.F) {
	addFixtures(f, ".maps")
	addStrings(f, "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n",
		"1-0 r--p 0 0:0 0\n", "0-1 r--p 0 fff:fffff 0\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(bytes.NewReader(b))
		requireRefusal(t, "ParseMaps", ms, err)
		checkMappings(t, ms, false)
	})
}

func FuzzParseSmaps(f *testing.F) {
	addFixtures(f, ".smaps")
	addStrings(f, "VmFlags: rd\n", "0-1000 r--p 0 0:0 0\nVmFlags: rd\nVmFlags: wr\n", "0-1000 r--p 0 0:0 0\nRss: 4 kB\nVmFlags:\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseSmaps(bytes.NewReader(b))
		requireRefusal(t, "ParseSmaps", ms, err)
		checkMappings(t, ms, true)
	})
}

func FuzzParseStatus(f *testing.F) {
	addFixtures(f, ".status")
	addStrings(f, "Name:\ta\\nb\nUmask:\t0022\nState:\tS (sleeping)\nGroups:\t\nNSpid:\t1\t2\n", "Uid:\t1\n", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStatus(bytes.NewReader(b))
	})
}

func FuzzParseStat(f *testing.F) {
	addFixtures(f, ".stat")
	addStrings(f, "1 (a) b) S 0", "1 () S", "(", ")(", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		requireRefusal(t, "ParseStat", s, err)
		if err == nil && bytes.IndexByte(b, '(') < 0 {
			t.Fatalf("stat without a comm accepted: %+v", s)
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	addFixtures(f, ".limits")
	addStrings(f, "Limit Soft Limit Hard Limit Units\nMax cpu time unlimited unlimited seconds\n", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		ls, err := ParseLimits(bytes.NewReader(b))
		requireRefusal(t, "ParseLimits", ls, err)
		if err != nil {
			return
		}
		if len(ls) != len(limitNames) {
			t.Fatalf("%d limits, want all %d", len(ls), len(limitNames))
		}
		for i, l := range ls {
			if l.Resource != i {
				t.Fatalf("limit %d is resource %d", i, l.Resource)
			}
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	addStrings(f, "running", "-1 0x7ffc0000 0x401000\n",
		"230 0x0 0x0 0x7ffe1000 0x0 0x0 0x0 0x7ffe0ff8 0x7f0000001234\n", "1 0x", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSyscall(b)
		requireRefusal(t, "ParseSyscall", s, err)
	})
}

// FuzzParseUnixDiagReply takes the reply bytes and the sequence number
// they must answer.
func FuzzParseUnixDiagReply(f *testing.F) {
	name := append([]byte("/tmp/sock"), 0)
	for _, reply := range [][]byte{
		diagReply(7, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_STREAM, 1, 42,
			diagAttr(unixDiagName, name), diagAttr(unixDiagPeer, u32s(43)),
			diagAttr(unixDiagRqlen, u32s(5, 10)), diagAttr(unixDiagIcons, u32s(1, 2, 3)), diagAttr(unixDiagShutdown, []byte{1}))),
		diagReply(7, unix.NLMSG_ERROR, u32s(^uint32(unix.ENOENT)+1)),
		diagReply(7, unix.NLMSG_DONE, nil),
		diagReply(7, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_DGRAM, 7, 1, []byte{4, 0})),
	} {
		f.Add(reply, uint32(7))
	}
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		_, _ = ParseUnixDiagReply(b, seq)
	})
}
