package crc32c

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 100, 4096, 1 << 20, 3<<20 + 5} {
		for _, cut := range []int{0, n / 3, n / 2, n} {
			data := randomBytes(r, n)
			want := crc32.Checksum(data, castagnoli)
			a := crc32.Checksum(data[:cut], castagnoli)
			b := crc32.Checksum(data[cut:], castagnoli)
			if got := Combine(a, b, int64(n-cut)); got != want {
				t.Errorf("Combine of %d+%d bytes = %#x, want %#x", cut, n-cut, got, want)
			}
		}
	}
}

// TestShiftIsZeros: Shift is what appending zero bytes does to the bare
// register (hash/crc32 applies the all-ones XOR before and after).
func TestShiftIsZeros(t *testing.T) {
	for _, n := range []int64{0, 1, 3, 8, 1360, 2720, 4096} {
		for _, c := range []uint32{0, 1, 0x80000000, 0xdeadbeef, 0xffffffff} {
			want := ^crc32.Update(^c, castagnoli, make([]byte, n))
			if got := Shift(c, n); got != want {
				t.Errorf("Shift(%#x, %d) = %#x, want %#x", c, n, got, want)
			}
		}
	}
}

func TestShiftTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int64{1, 1360, 2720} {
		tab := ShiftTable(n)
		for range 1000 {
			c := r.Uint32()
			got := tab[0][c&0xff] ^ tab[1][c>>8&0xff] ^ tab[2][c>>16&0xff] ^ tab[3][c>>24]
			if want := Shift(c, n); got != want {
				t.Fatalf("table shift of %#x by %d = %#x, want %#x", c, n, got, want)
			}
		}
	}
}

// TestLanes is the parasite's way in Go (parasite/c/parasite.c
// crc_lanes): three lanes of a block summed side by side from registers
// 0 but the first, joined with the shift tables.
func TestLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const lane = 1360
	t1, t2 := ShiftTable(lane), ShiftTable(2*lane)
	shift := func(tab *[4][256]uint32, c uint32) uint32 {
		return tab[0][c&0xff] ^ tab[1][c>>8&0xff] ^ tab[2][c>>16&0xff] ^ tab[3][c>>24]
	}
	// raw is the bare register update (the crc32 instruction).
	raw := func(c uint32, b []byte) uint32 { return ^crc32.Update(^c, castagnoli, b) }
	data := randomBytes(r, 3*lane*5+17)
	c := ^uint32(0)
	p := data
	for len(p) >= 3*lane {
		a := raw(c, p[:lane])
		b := raw(0, p[lane:2*lane])
		d := raw(0, p[2*lane:3*lane])
		c = shift(&t2, a) ^ shift(&t1, b) ^ d
		p = p[3*lane:]
	}
	c = raw(c, p)
	if got, want := ^c, crc32.Checksum(data, castagnoli); got != want {
		t.Errorf("three lanes: %#x, want %#x", got, want)
	}
}
