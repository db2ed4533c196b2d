/*
 * crc32c.h: CRC32-C on the SSE4.2 crc32 instruction, shared by the
 * parasite (summing the pages it writes) and the restorer (verifying the
 * pages it reads in). Both blobs are built with -mgeneral-regs-only: the
 * instruction works in general registers, so neither touches a vector
 * register (the parasite must not clobber the target's).
 */
#ifndef GOCR_CRC32C_H
#define GOCR_CRC32C_H

#include "nolibc.h"

/* The crc32 instruction computes CRC32-C with the register bare: no
 * initial value or final XOR (Intel SDM "CRC32"). */
static inline u64 crc32_u64(u64 crc, u64 v)
{
	__asm__("crc32q %1, %0" : "+r"(crc) : "rm"(v));
	return crc;
}

static inline u32 crc32_u8(u32 crc, u8 v)
{
	__asm__("crc32b %1, %0" : "+r"(crc) : "rm"(v));
	return crc;
}

typedef u64 __attribute__((may_alias, aligned(1))) u64_unaligned;

/* What summing in three lanes needs: the lane length (whole u64s), and
 * the tables that shift a register past one and past two lanes
 * (internal/crc32c ShiftTable; 4 tables of 256 u32 each). */
struct crc_lanes {
	u64 lane;
	const u32 *shift1; /* Shift(c, lane) */
	const u32 *shift2; /* Shift(c, 2 * lane) */
};

static inline u32 shift_by(const u32 *t, u32 c)
{
	return t[c & 0xff] ^ t[256 + (c >> 8 & 0xff)] ^ t[512 + (c >> 16 & 0xff)] ^ t[768 + (c >> 24)];
}

/* crc_lanes updates the bare register crc with n bytes at p: blocks of
 * three lanes summed side by side (the second and third from 0) and
 * joined by shifting the first two past the lanes after them
 * (internal/crc32c: the CRC of A||B is A's shifted by len(B), XOR B's).
 * The instruction's latency is three times its issue rate, so three
 * independent lanes keep it busy. */
static u32 crc_lanes(u32 crc, const u8 *p, u64 n, const struct crc_lanes *cl)
{
	u64 lane = cl->lane;
	while (n >= 3 * lane) {
		u64 a = crc, b = 0, c = 0;
		for (u64 i = 0; i < lane; i += 8) {
			a = crc32_u64(a, *(const u64_unaligned *)(p + i));
			b = crc32_u64(b, *(const u64_unaligned *)(p + lane + i));
			c = crc32_u64(c, *(const u64_unaligned *)(p + 2 * lane + i));
		}
		crc = shift_by(cl->shift2, (u32)a) ^ shift_by(cl->shift1, (u32)b) ^ (u32)c;
		p += 3 * lane;
		n -= 3 * lane;
	}
	u64 c64 = crc;
	for (; n >= 8; p += 8, n -= 8)
		c64 = crc32_u64(c64, *(const u64_unaligned *)p);
	crc = (u32)c64;
	for (; n > 0; p++, n--)
		crc = crc32_u8(crc, *p);
	return crc;
}

#endif
