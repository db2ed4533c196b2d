/*
 * vmasplit: two neighbouring private anonymous mappings, alike in every
 * way /proc shows, that the kernel keeps as two VMAs because each has an
 * anon_vma of its own (mm/vma.c is_mergeable_anon_vma): the first made
 * in place and written, the second made elsewhere, written, and moved
 * next to it with mremap. Python's allocator leaves such pairs behind
 * by chance. After the restore /proc/self/maps must show the same two
 * VMAs, with the same pages written and the others still zero.
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>

#define LEN (16 * 4096UL)

/* Whether /proc/self/maps has a line for exactly [start, end). */
static int has_vma(uintptr_t start, uintptr_t end)
{
	static char buf[1 << 16];
	char want[64];
	tgt_read_file("/proc/self/maps", buf, sizeof(buf));
	snprintf(want, sizeof(want), "\n%lx-%lx ", (unsigned long)start, (unsigned long)end);
	return strstr(buf, want) != NULL;
}

static void check(const char *when, char *a)
{
	uintptr_t s = (uintptr_t)a;
	if (!has_vma(s, s + LEN) || !has_vma(s + LEN, s + 2 * LEN))
		tgt_fail("%s: /proc/self/maps does not show %lx-%lx and %lx-%lx as two VMAs", when,
			 (unsigned long)s, (unsigned long)(s + LEN), (unsigned long)(s + LEN), (unsigned long)(s + 2 * LEN));
	for (unsigned long p = 0; p < 2 * LEN / 4096; p++) {
		/* Pages 0, 3 of each mapping written, the others never. */
		unsigned long in = p % (LEN / 4096);
		char want = (in == 0 || in == 3) ? (char)(p + 1) : 0;
		if (a[p * 4096] != want)
			tgt_fail("%s: page %lu holds %d, want %d", when, p, a[p * 4096], want);
	}
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	char *a = mmap(NULL, 2 * LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	a[0] = 1;
	a[3 * 4096] = 4;
	b[0] = LEN / 4096 + 1;
	b[3 * 4096] = LEN / 4096 + 4;
	if (mremap(b, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, a + LEN) != a + LEN)
		tgt_fail("mremap: %s", strerror(errno));
	check("before the dump", a);
	tgt_ready();
	tgt_wait();
	check("after the restore", a);
	tgt_pass();
}
