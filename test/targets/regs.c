/*
 * regs: known values in r12-r15, MXCSR and every vector register (ymm0-15
 * with AVX; zmm0-31 and k0-7 with AVX-512F+BW), held while the thread spins
 * on a memory flag, so a dump catches them live and a restore must put every
 * bit back. The SIGTERM handler only sets the flag: signal delivery saves
 * and restores the whole extended state in the signal frame (the kernel's
 * arch/x86/kernel/fpu/signal.c), so the handler cannot disturb them.
 *
 * The ready file comes first and the registers are loaded right after; the
 * harness waits ~200 ms after ready before dumping.
 */
#include "target.h"

#include <cpuid.h>
#include <stdint.h>

struct regs {
	uint64_t gpr[4];     /* offset 0: r12..r15 */
	uint64_t zmm[32][8]; /* offset 32: 64 bytes per register */
	uint64_t k[8];       /* offset 2080 */
	uint32_t mxcsr;      /* offset 2144 */
	uint32_t pad;
};
_Static_assert(__builtin_offsetof(struct regs, zmm) == 32, "zmm offset");
_Static_assert(__builtin_offsetof(struct regs, k) == 2080, "k offset");
_Static_assert(__builtin_offsetof(struct regs, mxcsr) == 2144, "mxcsr offset");

static struct regs want __attribute__((aligned(64)));
static struct regs got __attribute__((aligned(64)));
static const uint32_t mxcsr_default = 0x1f80;
/* Round toward zero, flush-to-zero and denormals-are-zero: nothing a fresh
 * FPU state or a signal handler would leave behind. */
#define MXCSR_PATTERN 0xffc0

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define GPR_LOAD \
	"mov 0(%%rdi), %%r12\n\t" "mov 8(%%rdi), %%r13\n\t" \
	"mov 16(%%rdi), %%r14\n\t" "mov 24(%%rdi), %%r15\n\t" \
	"ldmxcsr 2144(%%rdi)\n\t"
#define GPR_STORE \
	"mov %%r12, 0(%%rsi)\n\t" "mov %%r13, 8(%%rsi)\n\t" \
	"mov %%r14, 16(%%rsi)\n\t" "mov %%r15, 24(%%rsi)\n\t" \
	"stmxcsr 2144(%%rsi)\n\t"
/* Spins without touching any register but the flags. */
#define SPIN "1: pause\n\t" "cmpl $0, (%%rdx)\n\t" "je 1b\n\t"

#define YL(n) "vmovdqu (32+" #n "*64)(%%rdi), %%ymm" #n "\n\t"
#define YS(n) "vmovdqu %%ymm" #n ", (32+" #n "*64)(%%rsi)\n\t"
#define ZL(n) "vmovdqu64 (32+" #n "*64)(%%rdi), %%zmm" #n "\n\t"
#define ZS(n) "vmovdqu64 %%zmm" #n ", (32+" #n "*64)(%%rsi)\n\t"
#define KL(n) "kmovq (2080+" #n "*8)(%%rdi), %%k" #n "\n\t"
#define KS(n) "kmovq %%k" #n ", (2080+" #n "*8)(%%rsi)\n\t"
#define X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
	M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define X32(M) X16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) \
	M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define X8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

#define CLOBBER_XMM16 "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", \
	"xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

__attribute__((noinline)) static void hold_avx(void)
{
	asm volatile(GPR_LOAD X16(YL) SPIN GPR_STORE X16(YS)
		     "ldmxcsr %3\n\t"
		     "vzeroupper\n\t"
		     :
		     : "D"(&want), "S"(&got), "d"(&got_term), "m"(mxcsr_default)
		     : "r12", "r13", "r14", "r15", CLOBBER_XMM16, "memory", "cc");
}

__attribute__((noinline, target("avx512f,avx512bw"))) static void hold_avx512(void)
{
	asm volatile(GPR_LOAD X32(ZL) X8(KL) SPIN GPR_STORE X32(ZS) X8(KS)
		     "ldmxcsr %3\n\t"
		     "vzeroupper\n\t"
		     :
		     : "D"(&want), "S"(&got), "d"(&got_term), "m"(mxcsr_default)
		     : "r12", "r13", "r14", "r15", CLOBBER_XMM16,
		       "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
		       "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
		       "xmm28", "xmm29", "xmm30", "xmm31",
		       "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7",
		       "memory", "cc");
}

static uint64_t xcr0(void)
{
	uint32_t lo, hi;

	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

int main(int argc, char **argv)
{
	unsigned a, b, c, d;
	int avx, avx512, nvec, lanes, i, j;

	tgt_init(argc, argv);
	if (!__get_cpuid(1, &a, &b, &c, &d))
		tgt_fail("cpuid leaf 1 unavailable");
	/* AVX needs both the CPU bit and the OS enabling YMM state in XCR0
	 * (Intel SDM vol. 1, 14.3 "Detection of Intel AVX instructions"). */
	avx = (c & bit_AVX) && (c & bit_OSXSAVE) && (xcr0() & 0x6) == 0x6;
	if (!avx)
		tgt_fail("this CPU or kernel does not enable AVX; the target needs it");
	avx512 = 0;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
		avx512 = (b & bit_AVX512F) && (b & bit_AVX512BW) &&
			 (xcr0() & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM */
	nvec = avx512 ? 32 : 16;
	lanes = avx512 ? 8 : 4;

	for (i = 0; i < 4; i++)
		want.gpr[i] = mix(1000 + i);
	for (i = 0; i < 32; i++)
		for (j = 0; j < 8; j++)
			want.zmm[i][j] = mix((uint64_t)(i * 8 + j));
	for (i = 0; i < 8; i++)
		want.k[i] = mix(2000 + i);
	want.mxcsr = MXCSR_PATTERN;
	tgt_log("vector state: %s\n", avx512 ? "avx512 zmm0-31 k0-7" : "avx ymm0-15");

	tgt_ready();
	if (avx512)
		hold_avx512();
	else
		hold_avx();

	for (i = 0; i < 4; i++)
		if (got.gpr[i] != want.gpr[i])
			tgt_fail("r%d is %#llx, want %#llx", 12 + i,
				 (unsigned long long)got.gpr[i], (unsigned long long)want.gpr[i]);
	if (got.mxcsr != want.mxcsr)
		tgt_fail("mxcsr is %#x, want %#x", got.mxcsr, want.mxcsr);
	for (i = 0; i < nvec; i++)
		for (j = 0; j < lanes; j++)
			if (got.zmm[i][j] != want.zmm[i][j])
				tgt_fail("%s%d qword %d is %#llx, want %#llx",
					 avx512 ? "zmm" : "ymm", i, j,
					 (unsigned long long)got.zmm[i][j],
					 (unsigned long long)want.zmm[i][j]);
	if (avx512)
		for (i = 0; i < 8; i++)
			if (got.k[i] != want.k[i])
				tgt_fail("k%d is %#llx, want %#llx", i,
					 (unsigned long long)got.k[i], (unsigned long long)want.k[i]);
	tgt_pass();
}
