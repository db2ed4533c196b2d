// Package crc32c is the arithmetic that joins CRC32-C (Castagnoli)
// checksums of pieces of data into the checksum of the whole, without the
// data: what lets a page image's chunk be checksummed from the sums its
// writers took of its pieces as they wrote them.
//
// A CRC is the remainder of the message, as a polynomial over GF(2),
// modulo the generator P. Appending n zero bytes to a message multiplies
// its remainder by x^(8n) mod P; so for the standard CRC (initial value
// and final XOR all ones, as hash/crc32 computes it)
//
//	crc(A‖B) = crc(A)·x^(8·len(B)) mod P  ⊕  crc(B)
//
// (the all-ones terms cancel). Polynomials are held bit-reflected, as the
// CRC is: bit 31 is x^0, bit 0 is x^31, and 0x82F63B78 is P without its
// x^32 term (the Castagnoli polynomial, RFC 3720 B.4; hash/crc32.Castagnoli).
package crc32c

import (
	"encoding/binary"
	"sync"
)

// poly is P, reflected, without x^32.
const poly = 0x82F63B78

// one is the polynomial 1 (x^0), reflected.
const one = 1 << 31

// mulMod is a·b mod P, both reflected.
func mulMod(a, b uint32) uint32 {
	var p uint32
	// For each power x^i of a, from x^0 up, add b·x^i.
	for m := uint32(one); m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b ·= x: a right shift when reflected; the x^32 that falls
		// off the end is P's other terms.
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow2 is x^(2^k) mod P for k = 0..63, reflected.
var xPow2 = func() (t [64]uint32) {
	t[0] = one >> 1 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = mulMod(t[k-1], t[k-1])
	}
	return t
}()

// xPow is x^e mod P, reflected, for e < 2^64.
func xPow(e uint64) uint32 {
	p := uint32(one)
	for k := 0; e != 0; k, e = k+1, e>>1 {
		if e&1 != 0 {
			p = mulMod(p, xPow2[k])
		}
	}
	return p
}

// Shift is crc·x^(8n) mod P: the register crc becomes after n more zero
// bytes, with no initial value or final XOR applied.
func Shift(crc uint32, n int64) uint32 {
	return mulMod(crc, xPow(8*uint64(n)))
}

// Combine is the CRC32-C of A‖B from a = CRC32-C(A), b = CRC32-C(B) and
// nb = len(B).
func Combine(a, b uint32, nb int64) uint32 {
	return Shift(a, nb) ^ b
}

// ShiftTable is Shift(·, n) as four tables of a byte each: Shift(c, n) is
// t[0][c&0xff] ^ t[1][c>>8&0xff] ^ t[2][c>>16&0xff] ^ t[3][c>>24], the
// shift being linear in c. The blobs use it to join the CRCs of the lanes
// they compute side by side (nolibc/crc32c.h crc_lanes).
func ShiftTable(n int64) (t [4][256]uint32) {
	k := xPow(8 * uint64(n))
	for j := range t {
		for b := range 256 {
			t[j][b] = mulMod(uint32(b)<<(8*j), k)
		}
	}
	return t
}

// Lane is how many bytes each of the three lanes the blobs sum side by
// side takes (nolibc/crc32c.h crc_lanes): a 4 KiB page is three lanes and
// 16 bytes.
const Lane = 1360

// LaneTablesSize is LaneTables' size: two shifts of four tables of 256
// u32 each.
const LaneTablesSize = 2 * 4 * 256 * 4

// LaneTables is Shift(·, Lane) then Shift(·, 2·Lane) as crc_lanes reads
// them (struct crc_lanes shift1, shift2), little-endian.
var LaneTables = sync.OnceValue(func() []byte {
	b := make([]byte, 0, LaneTablesSize)
	for _, n := range []int64{Lane, 2 * Lane} {
		t := ShiftTable(n)
		for j := range t {
			for _, v := range t[j] {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		}
	}
	return b
})
