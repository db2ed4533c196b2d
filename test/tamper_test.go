//go:build linux

package test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestTamperedImages damages every image of a real dump in every way the
// matrix below knows, one case at a time, and requires restore to refuse
// each in one line naming the image (and, in page data, the bytes) before
// any process exists, and gocr show to refuse it too. The dumped PID is
// held all along by an unrelated process (takepid): a restore that got as
// far as creating processes would fail on that PID instead, so an error
// naming the image, with the holder still there afterwards, shows the
// refusal came first. The page data of page images is the exception: the
// restorer verifies it as it reads it in, after the processes exist and
// before any of them runs, so those cases run once the PID is free; the
// restore must fail naming the image and the bytes, leave no process
// behind, and leave the job's log as it was (the process never ran).
// The cases: (a) every image cut short, (b) a byte flipped in the header,
// the middle and the end of every image, and in a page image in its
// first, middle and last page and in its checksums, (c) every image taken
// from a second dump of the same process, (d) every image replaced by a
// symbolic link to an intact copy of it, a FIFO, a character device and a
// directory. The counts are in docs/RELIABILITY.md.
func TestTamperedImages(t *testing.T) {
	needsGocr(t)
	for _, s := range []struct {
		name     string
		target   string
		args     []string
		dumpArgs []string
	}{
		// Two page streams: pages-PID.img and pages-PID.1.img.
		{"Counter", "counter", nil, []string{"--page-streams", "2"}},
		// A sparse memfd and two more: memfd-ID.img images.
		{"Memfd", "fdkinds", []string{"memfd"}, nil},
	} {
		t.Run(s.name, func(t *testing.T) {
			tg := startTargetOpts(t, s.target, startOpts{args: s.args})
			trackTree(t, tg.pid)
			first := filepath.Join(t.TempDir(), "first")
			second := filepath.Join(t.TempDir(), "second")
			dump(t, tg.pid, first, append([]string{"--leave-running"}, s.dumpArgs...)...)
			dump(t, tg.pid, second, s.dumpArgs...)
			tg.waitDead(t, "a dump without --leave-running")
			tried, refused := tamperMatrix(t, tg, first, second)
			t.Logf("tampered images of %s: %d cases tried, %d refused before any process ran", s.target, tried, refused)
			if refused != tried {
				t.Errorf("%d of %d tampered dumps were not refused", tried-refused, tried)
			}
			// The second dump is intact: it restores and passes.
			pid := restoreDetached(t, tg, copyDir(t, second), nil)
			checkResult(t, tg, pid)
		})
	}
}

// tamperCase is one way to damage the image file of a dump.
type tamperCase struct {
	name   string
	file   string
	damage func(t *testing.T, path string)
	want   []string // what the error must say besides the file's name
	// asRead: the damage is in page data the restorer verifies as it
	// reads it in, once the processes exist.
	asRead bool
}

// tamperMatrix runs every case on a copy of the dump first, with the PID
// held by an unrelated process, and returns how many it tried and how
// many restore and show refused as they must.
func tamperMatrix(t *testing.T, tg *target, first, second string) (tried, refused int) {
	t.Helper()
	names := imageNames(t, first)
	if other := imageNames(t, second); !slices.Equal(names, other) {
		t.Fatalf("the two dumps hold different images:\n%q\n%q", names, other)
	}
	holder := takePid(t, tg.pid)
	// The control: an intact copy gets as far as the PID, and stops.
	r := runGocr(t, nil, "restore", "-D", copyDir(t, first), "-d")
	assertRefused(t, r, []string{"pid " + strconv.Itoa(tg.pid) + " is in use"}, nil)

	var cases []tamperCase
	for _, name := range names {
		cases = append(cases, tamperCases(t, filepath.Join(first, name), filepath.Join(second, name))...)
	}
	var ok atomic.Int32
	run := func(c tamperCase) {
		t.Run(c.file+"/"+c.name, func(t *testing.T) {
			dir := neutralCopy(t, first)
			c.damage(t, filepath.Join(dir, c.file))
			log := readLog(t, tg)
			for _, args := range [][]string{{"restore", "-D", dir, "-d"}, {"show", dir}} {
				start := time.Now()
				r := runGocr(t, nil, args...)
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("gocr %s took %v", args[0], d)
				}
				want := append([]string{c.file}, c.want...)
				if args[0] == "show" {
					// show's line lists the bad images; it says
					// what is wrong with each in place.
					want = []string{c.file}
					if c.name == "from-second-dump" {
						want = []string{"two dumps are mixed"}
					}
					mixedInventory := c.file == "inventory.img" && c.name == "from-second-dump"
					if !mixedInventory && !strings.Contains(r.stdout, "=== "+c.file+" ===\nerror: ") {
						t.Errorf("show does not report %s bad in place:\n%s", c.file, r.stdout)
					}
					for _, w := range c.want {
						if !strings.Contains(r.stdout, w) {
							t.Errorf("show does not say %q in place:\n%s", w, r.stdout)
						}
					}
				}
				assertRefused(t, r, want, nil)
				if strings.Contains(r.stderr, "in use") {
					t.Fatalf("gocr %s got as far as the PID: %s", args[0], r.stderr)
				}
			}
			if c.asRead {
				// Its processes were made, and killed before they ran.
				if !waitGone(tg.pid, pidGoneTimeout) {
					t.Fatalf("pid %d is still there (state %s) after the restore failed", tg.pid, procState(tg.pid))
				}
				if now := readLog(t, tg); now != log {
					t.Fatalf("the job's log changed during the failed restore: the restored process ran\n%s", now[len(log):])
				}
			}
			ok.Add(1)
		})
	}
	for _, c := range cases {
		if !c.asRead {
			run(c)
		}
	}
	// The holder of the PID was left alone.
	if s := procState(tg.pid); s != "S" {
		t.Errorf("the unrelated process holding pid %d is in state %q, want S (sleeping)", tg.pid, s)
	} else if ppid := readPpid(t, tg.pid); ppid != holder.Process.Pid {
		t.Errorf("pid %d has parent %d, want takepid %d: not the unrelated process", tg.pid, ppid, holder.Process.Pid)
	}
	releasePid(t, holder, tg.pid)
	for _, c := range cases {
		if c.asRead {
			run(c)
		}
	}
	return len(cases), int(ok.Load())
}

// readLog is the target's log as it is now.
func readLog(t *testing.T, tg *target) string {
	t.Helper()
	b, err := os.ReadFile(tg.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// neutralCopy copies the dump in src to a new directory whose path names
// no image (t.TempDir's would hold the subtest's name, which holds the
// image's), so an error naming the image is seen to do so itself.
func neutralCopy(t *testing.T, src string) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "gocr-tamper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "ckpt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range listDir(t, src) {
		copyFile(t, filepath.Join(src, name), filepath.Join(dir, name), 0o600)
	}
	return dir
}

// imageNames lists the images of dir (not stats-dump.json).
func imageNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, name := range listDir(t, dir) {
		if strings.HasSuffix(name, ".img") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// tamperCases are the cases for the image at path; other is the same
// image of the second dump.
func tamperCases(t *testing.T, path, other string) []tamperCase {
	t.Helper()
	file := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data)
	var cases []tamperCase
	add := func(name string, damage func(t *testing.T, path string), want ...string) {
		cases = append(cases, tamperCase{name: name, file: file, damage: damage, want: want})
	}
	// The restorer verifies a page image's data, and checksums, as it
	// reads it in.
	asRead := func(name string) bool {
		return strings.HasPrefix(file, "pages-") && (strings.HasSuffix(name, "-page") || name == "data-checksum")
	}
	// (a) Cut short: to nothing, inside the header, to half, by a byte.
	for _, size := range []int{0, 20, n / 2, n - 1} {
		add(fmt.Sprintf("truncated-to-%d", size), func(t *testing.T, p string) {
			if err := os.Truncate(p, int64(size)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// (b) A byte flipped: the magic, the dump ID, the middle, the end.
	flips := map[string]int{"magic": 0, "dump-id": 20, "middle": n / 2, "last-byte": n - 1}
	var dataWant []string
	if isDataImage(file) {
		// The page image layout of docs/IMAGES.md: the data size at
		// 32, the header's checksum at 4092, the data from 4096, its
		// checksums after it.
		size := int(binary.LittleEndian.Uint64(data[32:]))
		flips = map[string]int{
			"magic": 0, "dump-id": 20, "data-size": 32, "chunk-size": 41, "header-checksum": 4092,
			"data-checksum": n - 1,
		}
		if size > 0 { // an empty memfd has neither data nor checksums
			flips["first-page"] = 4096
			flips["middle-page"] = 4096 + size/2
			flips["last-page"] = 4096 + size - 1
		}
		dataWant = []string{"page data bytes", "checksum mismatch"}
	}
	for name, off := range flips {
		var want []string
		if strings.HasSuffix(name, "-page") {
			want = dataWant
			if strings.HasPrefix(file, "pages-") {
				want = append(want, "pages 0x")
			}
		}
		add("flipped-"+name, func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[off] ^= 0x20
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, want...)
		cases[len(cases)-1].asRead = asRead(name)
	}
	// (c) The same image of the second dump of the same process.
	add("from-second-dump", func(t *testing.T, p string) {
		copyFile(t, other, p, 0o600)
	}, "two dumps are mixed")
	// (d) Not a regular file. The link leads to an intact copy.
	add("symlink", func(t *testing.T, p string) {
		intact := filepath.Join(t.TempDir(), file)
		if err := os.Rename(p, intact); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(intact, p); err != nil {
			t.Fatal(err)
		}
	}, "symbolic link")
	replace := func(kind string, make func(p string) error) {
		add(kind, func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := make(p); err != nil {
				t.Fatal(err)
			}
		}, kind)
	}
	replace("FIFO", func(p string) error { return syscall.Mkfifo(p, 0o600) })
	// /dev/zero (char 1:5, Documentation/admin-guide/devices.txt)
	// would read zeros forever.
	replace("character device", func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|5) })
	replace("directory", func(p string) error { return os.Mkdir(p, 0o700) })
	return cases
}

// isDataImage tells a page or memfd image from a record image.
func isDataImage(name string) bool {
	return strings.HasPrefix(name, "pages-") || strings.HasPrefix(name, "memfd-")
}
