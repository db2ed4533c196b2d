/*
 * incwriter: memory that changes between incremental dumps. It holds
 * regions of private anonymous memory filled with pseudo-random bytes,
 * and keeps a checksum of each. Each SIGUSR1 runs one round of changes
 * and then writes the round's number to RESULT_PATH.round:
 *   - random bytes into NPAGES random pages of the 64 MiB region,
 *   - a few of its pages dropped (MADV_DONTNEED: they read as zeros),
 *   - in a private mapping of a file of its own (RESULT_PATH.file), whose
 *     pages it copied on write at setup, pages 0-7 dropped (they read
 *     the file again) and four of them written again; the others are
 *     not touched until the next dump (their checksum is taken from the
 *     file), so that they are still empty in the process when it is
 *     dumped,
 *   - round 1: a new region mapped and filled;
 *     round 2: a region moved by mremap to an address it did not have,
 *     another grown by mremap and its new part filled;
 *     round 3: a region unmapped, and a hole unmapped in the middle of
 *     another (splitting it in two),
 * and the checksums are computed again over every region. On SIGTERM it
 * computes them once more and compares: a page from an older dump than
 * the newest, or a page missing, fails it.
 *
 * SIGUSR2 makes it exec itself (a new image, its memory set up afresh,
 * that writes RESULT_PATH.execed once ready): a dump after it must not
 * take any page from one before.
 *
 * Usage: incwriter RESULT_PATH [NPAGES [execed]]
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>

#define MiB (1024UL * 1024UL)
#define PAGE 4096UL
#define MAXREGIONS 16

struct region {
	uint8_t *addr;
	size_t len;
	uint64_t sum;
};

static struct region regions[MAXREGIONS];
static int nregions;
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static volatile sig_atomic_t rounds_asked, exec_asked;
static int rounds_done;
static long npages = 2048;
static uint8_t *filemap; /* the private file mapping, FILEPAGES pages */
#define FILEPAGES 256
static uint8_t dropped[FILEPAGES]; /* pages of filemap that read the file */

static uint64_t next(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static void fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = next();
		memcpy(p + i, &v, 8);
	}
}

static uint64_t hash_more(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0x100000001b3ULL;
		h ^= h >> 31;
	}
	return h;
}

static uint64_t checksum(const uint8_t *p, size_t len)
{
	return hash_more(0xcbf29ce484222325ULL, p, len);
}

/* The checksum the file mapping must have, its dropped pages read from
 * the file rather than touched. */
static uint64_t file_checksum(void)
{
	char path[4096 + 16];
	static uint8_t page[PAGE];
	snprintf(path, sizeof(path), "%s.file", tgt_result_path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail_on_term("open %s: %s", path, strerror(errno));
	uint64_t h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < FILEPAGES; i++) {
		if (!dropped[i]) {
			h = hash_more(h, filemap + i * PAGE, PAGE);
			continue;
		}
		if (pread(fd, page, PAGE, (off_t)i * PAGE) != (ssize_t)PAGE)
			tgt_fail_on_term("read %s: %s", path, strerror(errno));
		h = hash_more(h, page, PAGE);
	}
	close(fd);
	return h;
}

static uint8_t *map_filled(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		tgt_fail_on_term("mmap %zu: %s", len, strerror(errno));
	fill(p, len);
	return p;
}

static void add_region(uint8_t *p, size_t len)
{
	if (nregions == MAXREGIONS)
		tgt_fail_on_term("too many regions");
	regions[nregions].addr = p;
	regions[nregions].len = len;
	nregions++;
}

static void remove_region(int i)
{
	regions[i] = regions[--nregions];
}

static void sum_all(void)
{
	for (int i = 0; i < nregions; i++)
		regions[i].sum = regions[i].addr == filemap ? file_checksum() : checksum(regions[i].addr, regions[i].len);
}

static void on_usr1(int sig)
{
	(void)sig;
	rounds_asked++;
}

static void on_usr2(int sig)
{
	(void)sig;
	exec_asked = 1;
}

static void write_round(void)
{
	char path[4096 + 16], text[32];
	snprintf(path, sizeof(path), "%s.round", tgt_result_path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		tgt_fail_on_term("create %s: %s", path, strerror(errno));
	snprintf(text, sizeof(text), "%d\n", rounds_done);
	tgt_write_all(fd, text, strlen(text));
	close(fd);
}

static void round_of_changes(void)
{
	struct region *big = &regions[0];
	size_t bigpages = big->len / PAGE;
	for (long i = 0; i < npages; i++) {
		uint8_t *pg = big->addr + (next() % bigpages) * PAGE;
		fill(pg + (next() % (PAGE / 8)) * 8, 8);
		pg[0] ^= 1;
	}
	for (int i = 0; i < 8; i++)
		if (madvise(big->addr + (next() % bigpages) * PAGE, PAGE, MADV_DONTNEED) < 0)
			tgt_fail_on_term("madvise: %s", strerror(errno));
	if (madvise(filemap, 8 * PAGE, MADV_DONTNEED) < 0)
		tgt_fail_on_term("madvise file mapping: %s", strerror(errno));
	for (int i = 0; i < 8; i++)
		dropped[i] = 1;
	fill(filemap + (rounds_done % 2) * 4 * PAGE, 4 * PAGE);
	for (int i = 0; i < 4; i++)
		dropped[(rounds_done % 2) * 4 + i] = 0;
	rounds_done++;
	switch (rounds_done) {
	case 1:
		add_region(map_filled(4 * MiB), 4 * MiB);
		break;
	case 2: {
		/* Moved: to a place taken for it first, so that it is a new
		 * address for sure. */
		struct region *r = &regions[1];
		void *to = mmap(NULL, r->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (to == MAP_FAILED)
			tgt_fail_on_term("mmap: %s", strerror(errno));
		void *moved = mremap(r->addr, r->len, r->len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		if (moved == MAP_FAILED)
			tgt_fail_on_term("mremap move: %s", strerror(errno));
		r->addr = moved;
		/* Grown: in place if the kernel can, else moved too. */
		struct region *g = &regions[2];
		void *grown = mremap(g->addr, g->len, g->len + 2 * MiB, MREMAP_MAYMOVE);
		if (grown == MAP_FAILED)
			tgt_fail_on_term("mremap grow: %s", strerror(errno));
		g->addr = grown;
		fill(g->addr + g->len, 2 * MiB);
		g->len += 2 * MiB;
		break;
	}
	case 3: {
		struct region *h = &regions[2];
		size_t half = (h->len / 2) & ~(PAGE - 1);
		if (munmap(h->addr + half, PAGE) < 0)
			tgt_fail_on_term("munmap hole: %s", strerror(errno));
		add_region(h->addr + half + PAGE, h->len - half - PAGE);
		h->len = half;
		if (munmap(regions[3].addr, regions[3].len) < 0)
			tgt_fail_on_term("munmap: %s", strerror(errno));
		remove_region(3);
		break;
	}
	}
	sum_all();
	write_round();
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	tgt_init(argc, argv);
	if (argc > 2)
		npages = atol(argv[2]);
	if (argc > 3 && strcmp(argv[3], "execed") == 0) {
		/* Memory unlike the image before's. */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		rng ^= (uint64_t)now.tv_nsec << 20 ^ (uint64_t)getpid();
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		tgt_fail("sigaction(SIGUSR1): %s", strerror(errno));
	sa.sa_handler = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		tgt_fail("sigaction(SIGUSR2): %s", strerror(errno));
	add_region(map_filled(64 * MiB), 64 * MiB);
	add_region(map_filled(8 * MiB), 8 * MiB);
	add_region(map_filled(4 * MiB), 4 * MiB);
	add_region(map_filled(1 * MiB), 1 * MiB);
	{
		char path[4096 + 16];
		static uint8_t page[PAGE];
		snprintf(path, sizeof(path), "%s.file", tgt_result_path);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			tgt_fail("create %s: %s", path, strerror(errno));
		for (int i = 0; i < FILEPAGES; i++) {
			fill(page, PAGE);
			tgt_write_all(fd, (const char *)page, PAGE);
		}
		filemap = mmap(NULL, FILEPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (filemap == MAP_FAILED)
			tgt_fail("mmap %s: %s", path, strerror(errno));
		close(fd);
		fill(filemap, FILEPAGES * PAGE); /* every page copied on write */
		add_region(filemap, FILEPAGES * PAGE);
	}
	sum_all();
	tgt_ready();
	if (argc > 3 && strcmp(argv[3], "execed") == 0) {
		char path[4096 + 16];
		snprintf(path, sizeof(path), "%s.execed", tgt_result_path);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			tgt_fail("create %s: %s", path, strerror(errno));
		close(fd);
	}
	while (!got_term) {
		if (exec_asked) {
			char n[32];
			snprintf(n, sizeof(n), "%ld", npages);
			char *args[] = { argv[0], argv[1], n, "execed", NULL };
			execv("/proc/self/exe", args);
			tgt_fail_on_term("exec: %s", strerror(errno));
		}
		if (rounds_done < rounds_asked) {
			round_of_changes();
			continue;
		}
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < nregions; i++) {
		uint64_t s = checksum(regions[i].addr, regions[i].len);
		if (s != regions[i].sum)
			tgt_fail("region %d (%p, %zu bytes) has checksum %#llx, %#llx was kept", i, (void *)regions[i].addr,
				 regions[i].len, (unsigned long long)s, (unsigned long long)regions[i].sum);
	}
	tgt_pass();
}
