//go:build linux

package dump

import "testing"

// TestAssignStreams: every page lands in exactly one stream, in address
// order, streams fill in order with sizes at most one quota apart, and
// each stream's offsets are contiguous from 0.
func TestAssignStreams(t *testing.T) {
	runs := []run{
		{addr: 0x10000, npages: 5, readable: true, vma: 0},
		{addr: 0x20000, npages: 1, readable: false, vma: 1},
		{addr: 0x30000, npages: 10, readable: true, vma: 2},
		{addr: 0x50000, npages: 1, readable: true, vma: 2},
	}
	for n := 1; n <= maxStreams; n++ {
		out := assignStreams(runs, n)
		var total uint64
		sizes := make([]int64, n)
		next := uint64(0)
		for i, r := range out {
			if r.npages == 0 {
				t.Fatalf("n=%d: run %d is empty", n, i)
			}
			if r.addr < next {
				t.Fatalf("n=%d: run %d at %#x is out of address order", n, i, r.addr)
			}
			next = r.addr + r.npages*pageSize
			if i > 0 && r.stream < out[i-1].stream {
				t.Fatalf("n=%d: run %d goes back to stream %d", n, i, r.stream)
			}
			if r.off != sizes[r.stream] {
				t.Fatalf("n=%d: run %d at offset %d of stream %d, want %d", n, i, r.off, r.stream, sizes[r.stream])
			}
			sizes[r.stream] += int64(r.npages * pageSize)
			total += r.npages
		}
		if total != 17 {
			t.Fatalf("n=%d: %d pages assigned, want 17", n, total)
		}
		quota := int64((17+n-1)/n) * pageSize
		for s, size := range sizes {
			if size > quota || (s < n-1 && size != quota) {
				t.Errorf("n=%d: stream %d holds %d bytes, quota %d", n, s, size, quota)
			}
		}
	}
	if out := assignStreams(nil, 3); len(out) != 0 {
		t.Errorf("no runs assigned as %v", out)
	}
}

func TestStreamsFor(t *testing.T) {
	cases := []struct {
		bytes uint64
		o     pageOptions
		want  int
	}{
		{1 << 30, pageOptions{transfer: "write", cpus: 2}, 2},
		{1 << 30, pageOptions{transfer: "write", cpus: 64}, maxStreams},
		{40 << 20, pageOptions{transfer: "write", cpus: 8}, 1},
		{4 << 10, pageOptions{transfer: "write", cpus: 8}, 1},
		{1 << 30, pageOptions{transfer: "write", cpus: 1}, 1},
		{1 << 30, pageOptions{transfer: "splice", cpus: 8}, 1},
		{4 << 10, pageOptions{transfer: "write", cpus: 1, streams: 3}, 3},
		{4 << 10, pageOptions{transfer: "splice", cpus: 1, streams: 3}, 1},
	}
	for _, c := range cases {
		if got := streamsFor(c.bytes, c.o); got != c.want {
			t.Errorf("streamsFor(%d, %+v) = %d, want %d", c.bytes, c.o, got, c.want)
		}
	}
}

// TestInAddressOrder: runs written at different times (a snapshot's after
// what was written while frozen) are listed in address order when every
// stream keeps the order of its data, and left as they are otherwise.
func TestInAddressOrder(t *testing.T) {
	frozenLast := []run{
		{addr: 0x5000, npages: 1, stream: 1, off: 0},
		{addr: 0x1000, npages: 2, stream: 0, off: 0},
		{addr: 0x8000, npages: 1, stream: 0, off: 2 * pageSize},
	}
	got := inAddressOrder(frozenLast)
	for i, want := range []uint64{0x1000, 0x5000, 0x8000} {
		if got[i].addr != want {
			t.Fatalf("sorted %v, want addresses 0x1000, 0x5000, 0x8000", got)
		}
	}
	sharedStream := []run{
		{addr: 0x5000, npages: 1, stream: 0, off: 0},
		{addr: 0x1000, npages: 2, stream: 0, off: pageSize},
	}
	if got := inAddressOrder(sharedStream); got[0].addr != 0x5000 {
		t.Fatalf("runs of one stream reordered against their data: %v", got)
	}
}
