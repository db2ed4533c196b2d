/*
 * memory: about 256 MiB of memory whose every 8-byte word is a function of
 * its address and a per-region seed, laid out in every kind of mapping the
 * restorer must rebuild: brk heap, populated and sparsely touched anonymous
 * memory, a private file mapping with copy-on-write pages, read-only and
 * PROT_NONE regions, an untouched PROT_NONE guard, two adjacent read-write
 * anonymous mappings the kernel keeps apart, and a large stack array.
 * It also saves /proc/self/maps before becoming ready and requires the
 * restored layout to be identical, line by line.
 *
 * Usage: memory RESULT_PATH TMPDIR
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>

#define MiB (1024UL * 1024UL)
#define PAGE 4096UL

#define HEAP_SIZE (32 * MiB)
#define POP_SIZE (64 * MiB)    /* MAP_POPULATE, fully written */
#define SPARSE_SIZE (96 * MiB) /* every 7th page written */
#define FILE_SIZE (32 * MiB)   /* MAP_PRIVATE, even pages written */
#define RO_SIZE (16 * MiB)
#define NONE_SIZE (8 * MiB)
#define GUARD_SIZE (4 * MiB)
#define MOVED_SIZE (1 * MiB)
#define STACK_ARRAY (1 * MiB)
#define SPARSE_STRIDE 7

enum {
	SEED_HEAP = 0x1111,
	SEED_POP = 0x2222,
	SEED_SPARSE = 0x3333,
	SEED_FILE = 0x4444, /* the file's content, keyed by file offset */
	SEED_COW = 0x5555,  /* what was written through the private mapping */
	SEED_RO = 0x6666,
	SEED_NONE = 0x7777,
	SEED_STACK = 0x8888,
	SEED_MOVED = 0x9999,
	SEED_AFTER = 0xaaaa,
};

/* Static so that saving and re-reading maps never changes the layout. */
static char maps_saved[256 * 1024];
static char maps_now[256 * 1024];
static uint64_t filebuf[64 * 1024 / 8];

static uint64_t pattern(uint64_t key, uint64_t seed)
{
	uint64_t x = (key >> 3) ^ (seed * 0x9E3779B97F4A7C15ULL);

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x ? x : 1; /* never zero, so a lost page cannot look right */
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pattern((uint64_t)(uintptr_t)&w[i], seed);
}

static void check(const char *what, const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t want = pattern((uint64_t)(uintptr_t)&w[i], seed);
		if (w[i] != want)
			tgt_fail("%s: word at %p is %#llx, want %#llx", what,
				 (void *)&w[i], (unsigned long long)w[i],
				 (unsigned long long)want);
	}
}

static void check_zero(const char *what, const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != 0)
			tgt_fail("%s: never-written word at %p is %#llx, want 0",
				 what, (void *)&w[i], (unsigned long long)w[i]);
}

static void *map_anon(size_t len, int prot, int extra)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	if (p == MAP_FAILED)
		tgt_fail("mmap %zu bytes: %s", len, strerror(errno));
	return p;
}

static size_t read_maps(char *buf, size_t cap)
{
	size_t n = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		tgt_fail("open /proc/self/maps: %s", strerror(errno));
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0)
			tgt_fail("read /proc/self/maps: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			tgt_fail("/proc/self/maps larger than %zu bytes", cap);
	}
	close(fd);
	buf[n] = 0;
	return n;
}

static void compare_maps(void)
{
	const char *a = maps_saved, *b = maps_now;
	int line = 1;

	read_maps(maps_now, sizeof(maps_now));
	while (*a || *b) {
		const char *ea = strchrnul(a, '\n'), *eb = strchrnul(b, '\n');
		if (ea - a != eb - b || memcmp(a, b, (size_t)(ea - a)) != 0)
			tgt_fail("/proc/self/maps line %d differs: dumped \"%.*s\", "
				 "now \"%.*s\"", line, (int)(ea - a), a,
				 (int)(eb - b), b);
		a = *ea ? ea + 1 : ea;
		b = *eb ? eb + 1 : eb;
		line++;
	}
}

/* Grows the stack VMA below main's frame once, before maps is saved, so
 * that the deeper calls made while verifying do not change [stack]. */
__attribute__((noinline)) static void pretouch_stack(void)
{
	volatile char pad[128 * 1024];
	size_t i;

	for (i = 0; i < sizeof(pad); i += PAGE)
		pad[i] = 1;
}

int main(int argc, char **argv)
{
	char stack_array[STACK_ARRAY] __attribute__((aligned(64)));
	char path[4096];
	uint8_t *heap, *pop, *sparse, *file, *ro, *none, *guard, *moved, *after;
	uintptr_t brk0;
	size_t i, off;
	int fd;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: memory RESULT_PATH TMPDIR");

	/* brk heap: align the start so that the region is whole pages. */
	brk0 = (uintptr_t)sbrk(0);
	if (sbrk((intptr_t)(((brk0 + PAGE - 1) & ~(PAGE - 1)) - brk0)) == (void *)-1)
		tgt_fail("sbrk align: %s", strerror(errno));
	heap = sbrk(HEAP_SIZE);
	if (heap == (void *)-1)
		tgt_fail("sbrk %lu: %s", HEAP_SIZE, strerror(errno));
	fill(heap, HEAP_SIZE, SEED_HEAP);

	pop = map_anon(POP_SIZE, PROT_READ | PROT_WRITE, MAP_POPULATE);
	fill(pop, POP_SIZE, SEED_POP);

	sparse = map_anon(SPARSE_SIZE, PROT_READ | PROT_WRITE, 0);
	for (off = 0; off < SPARSE_SIZE; off += SPARSE_STRIDE * PAGE)
		fill(sparse + off, PAGE, SEED_SPARSE);

	/* The file gets its content through write(2), keyed by file offset;
	 * the private mapping is then written on even pages only, so the image
	 * holds both copy-on-write pages and pages that still come from the
	 * file. */
	snprintf(path, sizeof(path), "%s/memory-private.bin", argv[2]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	for (off = 0; off < FILE_SIZE; off += sizeof(filebuf)) {
		for (i = 0; i < sizeof(filebuf) / 8; i++)
			filebuf[i] = pattern(off + i * 8, SEED_FILE);
		if (pwrite(fd, filebuf, sizeof(filebuf), (off_t)off) != sizeof(filebuf))
			tgt_fail("write %s: %s", path, strerror(errno));
	}
	file = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (file == MAP_FAILED)
		tgt_fail("mmap %s: %s", path, strerror(errno));
	for (off = 0; off < FILE_SIZE; off += 2 * PAGE)
		fill(file + off, PAGE, SEED_COW);

	ro = map_anon(RO_SIZE, PROT_READ | PROT_WRITE, 0);
	fill(ro, RO_SIZE, SEED_RO);
	if (mprotect(ro, RO_SIZE, PROT_READ) < 0)
		tgt_fail("mprotect ro: %s", strerror(errno));

	none = map_anon(NONE_SIZE, PROT_READ | PROT_WRITE, 0);
	fill(none, NONE_SIZE, SEED_NONE);
	if (mprotect(none, NONE_SIZE, PROT_NONE) < 0)
		tgt_fail("mprotect none: %s", strerror(errno));

	guard = map_anon(GUARD_SIZE, PROT_NONE, 0);

	/* Two adjacent read-write anonymous mappings that stay apart: the
	 * first was written, then moved there with mremap, which keeps its
	 * page offset (mm/vma.c copy_vma), so the second, mapped afresh right
	 * after it, does not follow on from it and is not merged with it
	 * (mm/vma.c can_vma_merge_after). The second's odd pages only are
	 * written: its first page is never touched. */
	moved = map_anon(2 * MOVED_SIZE, PROT_NONE, 0);
	after = map_anon(MOVED_SIZE, PROT_READ | PROT_WRITE, 0);
	after[0] = 1; /* an unwritten one takes the offset of its new place */
	if (mremap(after, MOVED_SIZE, MOVED_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, moved) != moved)
		tgt_fail("mremap: %s", strerror(errno));
	fill(moved, MOVED_SIZE, SEED_MOVED);
	after = mmap(moved + MOVED_SIZE, MOVED_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (after != moved + MOVED_SIZE)
		tgt_fail("mmap after the moved mapping: %s", strerror(errno));
	for (off = PAGE; off < MOVED_SIZE; off += 2 * PAGE)
		fill(after + off, PAGE, SEED_AFTER);

	fill(stack_array, sizeof(stack_array), SEED_STACK);
	pretouch_stack();

	read_maps(maps_saved, sizeof(maps_saved));
	snprintf(path, sizeof(path), "\n%lx-", (unsigned long)after);
	if (!strstr(maps_saved, path))
		tgt_fail("the mapping after the moved one (%p) was merged with it: nothing to check", after);
	tgt_ready();
	tgt_wait();

	/* Layout first: the PROT_NONE region is made readable below. */
	compare_maps();

	check("heap", heap, HEAP_SIZE, SEED_HEAP);
	if ((uintptr_t)sbrk(0) != (uintptr_t)heap + HEAP_SIZE)
		tgt_fail("program break is %p, want %p", sbrk(0), heap + HEAP_SIZE);
	check("populated anon", pop, POP_SIZE, SEED_POP);
	for (off = 0; off < SPARSE_SIZE; off += PAGE) {
		if ((off / PAGE) % SPARSE_STRIDE == 0)
			check("sparse anon", sparse + off, PAGE, SEED_SPARSE);
		else
			check_zero("sparse anon", sparse + off, PAGE);
	}
	for (off = 0; off < FILE_SIZE; off += PAGE) {
		if ((off / PAGE) % 2 == 0) {
			check("private file mapping (written page)", file + off, PAGE, SEED_COW);
			continue;
		}
		const uint64_t *w = (const uint64_t *)(file + off);
		for (i = 0; i < PAGE / 8; i++)
			if (w[i] != pattern(off + i * 8, SEED_FILE))
				tgt_fail("private file mapping: unwritten page at offset %zu "
					 "word %zu is %#llx, want the file's %#llx", off, i,
					 (unsigned long long)w[i],
					 (unsigned long long)pattern(off + i * 8, SEED_FILE));
	}
	/* Writes through a MAP_PRIVATE mapping never reach the file (mmap(2)). */
	for (off = 0; off < FILE_SIZE; off += sizeof(filebuf)) {
		if (pread(fd, filebuf, sizeof(filebuf), (off_t)off) != sizeof(filebuf))
			tgt_fail("pread %s: %s", path, strerror(errno));
		for (i = 0; i < sizeof(filebuf) / 8; i++)
			if (filebuf[i] != pattern(off + i * 8, SEED_FILE))
				tgt_fail("%s changed at offset %zu", path, off + i * 8);
	}
	check("read-only region", ro, RO_SIZE, SEED_RO);
	if (mprotect(none, NONE_SIZE, PROT_READ) < 0)
		tgt_fail("mprotect PROT_NONE region readable: %s", strerror(errno));
	check("PROT_NONE region", none, NONE_SIZE, SEED_NONE);
	check("moved mapping", moved, MOVED_SIZE, SEED_MOVED);
	for (off = 0; off < MOVED_SIZE; off += PAGE) {
		if ((off / PAGE) % 2)
			check("mapping after the moved one", after + off, PAGE, SEED_AFTER);
		else
			check_zero("mapping after the moved one", after + off, PAGE);
	}
	check("stack array", stack_array, sizeof(stack_array), SEED_STACK);
	(void)guard;
	tgt_pass();
}
