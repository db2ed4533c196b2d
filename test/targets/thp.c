/*
 * thp: memory held in transparent huge pages comes back in huge pages,
 * and memory that was not stays in small ones, with its contents and its
 * mapping's VmFlags exactly as before.
 *
 *   advised    64 MiB, MADV_HUGEPAGE ("hg"): huge pages at first touch
 *              wherever the machine's THP mode is madvise or always;
 *   plain      64 MiB, no advice: small pages under madvise, huge ones
 *              under always;
 *   collapsed  8 MiB, no advice, made huge by the process itself with
 *              MADV_COLLAPSE (Linux 6.1), so it has huge pages without
 *              "hg" in any mode;
 *   nohuge     8 MiB collapsed likewise, then madvised MADV_NOHUGEPAGE
 *              ("nh"), which keeps the huge pages it has (mm/khugepaged.c
 *              hugepage_madvise only changes the flags).
 *
 * Each region is 2 MiB-aligned with an unmapped gap around it, so none
 * merge. After the restore, for each region: its AnonHugePages (smaps) is
 * at least what it was, and 0 if it was 0; its VmFlags line is the same;
 * every word holds what was written.
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define MIB (1UL << 20)
#define HUGE (2 * MIB)
#define NREGIONS 4

static const struct {
	const char *name;
	size_t size;
	int advice; /* 0: none */
	int collapse;
	int advice_after; /* 0: none */
} kinds[NREGIONS] = {
	{ "advised", 64 * MIB, MADV_HUGEPAGE, 0, 0 },
	{ "plain", 64 * MIB, 0, 0, 0 },
	{ "collapsed", 8 * MIB, 0, 1, 0 },
	{ "nohuge", 8 * MIB, 0, 1, MADV_NOHUGEPAGE },
};

static uint64_t *region[NREGIONS];
static long huge_before[NREGIONS];
static char flags_before[NREGIONS][256];

static uint64_t word(int r, size_t i)
{
	return ((uint64_t)(r + 1) << 56) ^ (i * 0x9E3779B97F4A7C15ULL);
}

/* smaps reads the AnonHugePages (kB) and the VmFlags line of the mapping
 * starting at addr. */
static long smaps(void *addr, char *flags, size_t cap)
{
	static char buf[1 << 20];
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open smaps: %s", strerror(errno));
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	char head[32];
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	char *p = buf;
	while (p && strncmp(p, head, strlen(head)) != 0) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		tgt_fail("no mapping at %p in smaps", addr);
	char *h = strstr(p, "AnonHugePages:");
	char *f = strstr(p, "VmFlags:");
	if (!h || !f)
		tgt_fail("no AnonHugePages or VmFlags for %p", addr);
	char *nl = strchr(f, '\n');
	size_t len = nl ? (size_t)(nl - f) : strlen(f);
	if (len >= cap)
		len = cap - 1;
	memcpy(flags, f, len);
	flags[len] = 0;
	return strtol(h + strlen("AnonHugePages:"), NULL, 10);
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	size_t total = HUGE;
	for (int i = 0; i < NREGIONS; i++)
		total += kinds[i].size + HUGE;
	char *res = mmap(NULL, total + HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	char *at = (char *)(((uintptr_t)res + 2 * HUGE - 1) & ~(HUGE - 1));
	for (int i = 0; i < NREGIONS; i++) {
		void *p = mmap(at, kinds[i].size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			tgt_fail("mmap %s: %s", kinds[i].name, strerror(errno));
		region[i] = p;
		at += kinds[i].size + HUGE;
		if (kinds[i].advice && madvise(p, kinds[i].size, kinds[i].advice) < 0)
			tgt_fail("madvise %s: %s", kinds[i].name, strerror(errno));
		for (size_t w = 0; w < kinds[i].size / 8; w++)
			region[i][w] = word(i, w);
		if (kinds[i].collapse && madvise(p, kinds[i].size, MADV_COLLAPSE) < 0)
			tgt_log("%s: MADV_COLLAPSE: %s (left in small pages)", kinds[i].name, strerror(errno));
		if (kinds[i].advice_after && madvise(p, kinds[i].size, kinds[i].advice_after) < 0)
			tgt_fail("madvise %s: %s", kinds[i].name, strerror(errno));
		huge_before[i] = smaps(p, flags_before[i], sizeof(flags_before[i]));
		tgt_log("%s at %p: AnonHugePages %ld kB, %s", kinds[i].name, p, huge_before[i], flags_before[i]);
	}
	/* The harness runs this only where the THP mode is madvise or
	 * always, where MADV_HUGEPAGE memory is faulted in huge pages. */
	if (huge_before[0] == 0)
		tgt_fail_on_term("advised: no huge pages at setup, though madvised MADV_HUGEPAGE");
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < NREGIONS; i++) {
		char flags[256];
		long huge = smaps(region[i], flags, sizeof(flags));
		if (strcmp(flags, flags_before[i]) != 0)
			tgt_fail("%s: \"%s\" after restore, \"%s\" before", kinds[i].name, flags, flags_before[i]);
		for (size_t w = 0; w < kinds[i].size / 8; w++)
			if (region[i][w] != word(i, w))
				tgt_fail("%s: word %zu is %#llx, want %#llx", kinds[i].name, w,
					 (unsigned long long)region[i][w], (unsigned long long)word(i, w));
		if (huge < huge_before[i])
			tgt_fail("%s: AnonHugePages %ld kB after restore, %ld kB before", kinds[i].name, huge,
				 huge_before[i]);
		if (huge_before[i] == 0 && huge != 0)
			tgt_fail("%s: AnonHugePages %ld kB after restore, none before", kinds[i].name, huge);
	}
	tgt_pass();
}
