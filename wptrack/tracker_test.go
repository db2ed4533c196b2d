//go:build linux

package wptrack

import (
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

const page = 4096

// selfTracker tracks the test's own memory: a userfaultfd acts on its
// creator's mm, exactly as one the parasite makes in a target.
func selfTracker(t *testing.T) *Tracker {
	t.Helper()
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, CreateFlags, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v (kernel built without CONFIG_USERFAULTFD)", errno)
	}
	tr, err := Start(int(fd))
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("no async write-protect on this kernel (needs Linux 6.7): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func selfPagemap(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// pagesOf lists the page indexes regions cover, from base, and which of
// them hold no data.
func pagesOf(t *testing.T, regions []Region, base uint64) (written, empty []int) {
	t.Helper()
	for _, r := range regions {
		for a := r.Start; a < r.End; a += page {
			written = append(written, int((a-base)/page))
			if !r.Present {
				empty = append(empty, int((a-base)/page))
			}
		}
	}
	return written, empty
}

// TestScanReportsExactlyTheWrittenPages writes a known, scattered set of
// pages (more regions than one scan call returns) of a mapping partly
// populated before tracking began, and drops a few with MADV_DONTNEED:
// the scan must report exactly those, the dropped ones without data,
// and a second scan nothing.
func TestScanReportsExactlyTheWrittenPages(t *testing.T) {
	tr := selfTracker(t)
	pm := selfPagemap(t)
	const npages = 16384 // 64 MiB
	mem, err := unix.Mmap(-1, 0, npages*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	base := uint64(sliceStart(mem))
	end := base + npages*page
	for i := 0; i < npages/2; i++ {
		mem[i*page] = 1 // the first half populated before tracking
	}
	if err := tr.Register(base, end); err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(base, end); err != nil {
		t.Fatal(err)
	}
	if got, err := Scan(pm, base, end); err != nil || len(got) != 0 {
		t.Fatalf("scan right after protecting: %v, %v; want nothing", got, err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	want := map[int]bool{}
	for len(want) < 3000 { // scattered: far more regions than scanVecLen
		want[rng.IntN(npages)] = true
	}
	for i := 100; i < 164; i++ { // and one long run
		want[i] = true
	}
	for p := range want {
		mem[p*page+rng.IntN(page)] = byte(rng.Uint32())
	}
	dropped := []int{}
	for _, p := range []int{npages/2 - 3, npages/2 + 7} { // one populated before, one not
		if err := unix.Madvise(mem[p*page:(p+1)*page], unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		if !want[p] {
			dropped = append(dropped, p)
		}
		want[p] = true
	}
	got, err := Scan(pm, base, end)
	if err != nil {
		t.Fatal(err)
	}
	written, empty := pagesOf(t, got, base)
	wantList := make([]int, 0, len(want))
	for p := range want {
		wantList = append(wantList, p)
	}
	slices.Sort(wantList)
	if !slices.Equal(written, wantList) {
		t.Fatalf("scan reported %d written pages, want %d; first difference: %v", len(written), len(wantList), firstDiff(written, wantList))
	}
	for _, p := range dropped {
		if !slices.Contains(empty, p) {
			t.Errorf("page %d, dropped with MADV_DONTNEED, is reported as holding data", p)
		}
	}
	if got, err := Scan(pm, base, end); err != nil || len(got) != 0 {
		t.Fatalf("second scan: %d regions, %v; want nothing", len(got), err)
	}
	mem[5*page] = 7
	mem[npages*page-1] = 7
	got, err = Scan(pm, base, end)
	if err != nil {
		t.Fatal(err)
	}
	if written, _ := pagesOf(t, got, base); !slices.Equal(written, []int{5, npages - 1}) {
		t.Fatalf("third scan reported pages %v, want [5 %d]", written, npages-1)
	}
}

// TestScanRefusesUnregisteredMapping: a scan of memory the tracker does
// not cover fails rather than reporting nothing written.
func TestScanRefusesUnregisteredMapping(t *testing.T) {
	selfTracker(t)
	pm := selfPagemap(t)
	mem, err := unix.Mmap(-1, 0, 16*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	base := uint64(sliceStart(mem))
	if _, err := Scan(pm, base, base+16*page); !errors.Is(err, unix.EPERM) {
		t.Fatalf("scan of an unregistered mapping: %v, want EPERM", err)
	}
}

// TestRegisterTakenByAnotherTracker: a range registered with one
// userfaultfd cannot be registered with another, which is how a dump
// tells its own tracking from someone else's.
func TestRegisterTakenByAnotherTracker(t *testing.T) {
	a, b := selfTracker(t), selfTracker(t)
	mem, err := unix.Mmap(-1, 0, 16*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	base := uint64(sliceStart(mem))
	if err := a.Register(base, base+16*page); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(base, base+16*page); err != nil {
		t.Fatalf("registering again with the same tracker: %v", err)
	}
	if err := b.Register(base, base+16*page); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("registering with another tracker: %v, want EBUSY", err)
	}
}

func firstDiff(a, b []int) []int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return []int{i, a[i], b[i]}
		}
	}
	return []int{min(len(a), len(b))}
}

// TestProbe: gocr check's probe agrees with what the tests above found.
func TestProbe(t *testing.T) {
	selfTracker(t) // skips where the kernel lacks the features
	if err := Probe(); err != nil {
		t.Fatalf("Probe: %v on a kernel that tracks writes", err)
	}
}
