/*
 * vmflags: the advice and locks a process put on its mappings come back:
 * each mapping's VmFlags line in /proc/self/smaps (fs/proc/task_mmu.c
 * show_smap_vma_flags) reads after the restore exactly as before.
 *
 *   MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTFORK, MADV_DONTDUMP,
 *   MADV_WIPEONFORK, MADV_SEQUENTIAL, MADV_RANDOM, MADV_MERGEABLE (where
 *   the kernel has KSM), mlock, mlock2(MLOCK_ONFAULT), each on its own
 *   mapping with a guard page between them so none merge.
 *
 * With "seal" as its second argument it instead seals one mapping
 * (mseal(2), "sl"), which a dump must refuse.
 *
 * With "low" it instead maps a page at the lowest address it may
 * (vm.mmap_min_addr), leaving no room below its mappings for gocr's
 * parasite, and calls mlockall(MCL_FUTURE | MCL_ONFAULT), which gocr
 * reads from the VmFlags of the parasite's mapping wherever it went: after
 * the restore the page holds what it did and a new mapping is locked on
 * fault ("lo", "lf").
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

#define REGION (4 * 4096)
#define NREGIONS 10

static const struct {
	const char *name;
	int advice; /* -1 mlock, -2 mlock2 on fault */
} kinds[NREGIONS] = {
	{ "hugepage", MADV_HUGEPAGE },   { "nohugepage", MADV_NOHUGEPAGE },
	{ "dontfork", MADV_DONTFORK },   { "dontdump", MADV_DONTDUMP },
	{ "wipeonfork", MADV_WIPEONFORK }, { "sequential", MADV_SEQUENTIAL },
	{ "random", MADV_RANDOM },       { "mergeable", MADV_MERGEABLE },
	{ "mlock", -1 },                 { "mlock-onfault", -2 },
};

static char *region[NREGIONS];
static char flags_before[NREGIONS][256];

#define SPARSE_SIZE (64UL << 30)
#define SPARSE_STRIDE (4UL << 30)
static char *sparse; /* NULL where the kernel would not map it */
static char sparse_flags[256];

static void vmflags(char *addr, char *out, size_t cap);

/* sparse_byte is what the page at off of the sparse mapping holds. */
static char sparse_byte(unsigned long off)
{
	return (char)('A' + off / SPARSE_STRIDE);
}

/* map_sparse maps the MAP_NORESERVE region and writes its pages. With
 * vm.overcommit_memory 2 the kernel ignores MAP_NORESERVE and refuses
 * 64 GiB (man 5 proc_sys_vm): not checked then, said in the log. */
static void map_sparse(void)
{
	sparse = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sparse == MAP_FAILED && errno == ENOMEM) {
		sparse = NULL;
		tgt_log("noreserve: not checked, the kernel refuses 64 GiB (vm.overcommit_memory 2?)");
		return;
	}
	if (sparse == MAP_FAILED)
		tgt_fail("mmap 64 GiB MAP_NORESERVE: %s", strerror(errno));
	for (unsigned long off = 0; off < SPARSE_SIZE; off += SPARSE_STRIDE)
		memset(sparse + off, sparse_byte(off), 4096);
	memset(sparse + SPARSE_SIZE - 4096, 'z', 4096);
	vmflags(sparse, sparse_flags, sizeof(sparse_flags));
	tgt_log("noreserve: %s", sparse_flags);
}

static void check_sparse(void)
{
	if (!sparse)
		return;
	char now[256];
	vmflags(sparse, now, sizeof(now));
	if (strcmp(now, sparse_flags) != 0)
		tgt_fail("MAP_NORESERVE mapping: \"%s\" after restore, \"%s\" before", now, sparse_flags);
	for (unsigned long off = 0; off < SPARSE_SIZE; off += SPARSE_STRIDE) {
		for (int j = 0; j < 4096; j++)
			if (sparse[off + j] != sparse_byte(off))
				tgt_fail("MAP_NORESERVE mapping: byte %#lx changed", off + j);
		if (sparse[off + SPARSE_STRIDE / 2] != 0)
			tgt_fail("MAP_NORESERVE mapping: byte %#lx, never written, is not 0", off + SPARSE_STRIDE / 2);
	}
	for (int j = 0; j < 4096; j++)
		if (sparse[SPARSE_SIZE - 4096 + j] != 'z')
			tgt_fail("MAP_NORESERVE mapping: its last page changed");
}

/* vmflags copies the VmFlags line of the mapping starting at addr. */
static void vmflags(char *addr, char *out, size_t cap)
{
	static char smaps[1 << 20];
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open smaps: %s", strerror(errno));
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, smaps + n, sizeof(smaps) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	smaps[n] = 0;
	char head[32];
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	char *p = smaps;
	while (p && strncmp(p, head, strlen(head)) != 0) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		tgt_fail("no mapping at %p in smaps", (void *)addr);
	char *f = strstr(p, "VmFlags:");
	if (!f)
		tgt_fail("no VmFlags for %p", (void *)addr);
	char *nl = strchr(f, '\n');
	size_t len = nl ? (size_t)(nl - f) : strlen(f);
	if (len >= cap)
		len = cap - 1;
	memcpy(out, f, len);
	out[len] = 0;
}

static void hold_sealed(void)
{
	char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	if (syscall(SYS_mseal, p, REGION, 0) < 0)
		tgt_fail("mseal: %s", strerror(errno));
	tgt_log("sealed %p", (void *)p);
	tgt_ready();
	tgt_wait();
	tgt_pass();
}

/* new_mapping_locked fails unless a new mapping's VmFlags show
 * mlockall(MCL_FUTURE | MCL_ONFAULT) (mm/mlock.c apply_mlockall_flags). */
static void new_mapping_locked(const char *when)
{
	char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	char flags[256];
	vmflags(m, flags, sizeof(flags));
	munmap(m, 4096);
	strcat(flags, " ");
	if (!strstr(flags, " lo ") || !strstr(flags, " lf "))
		tgt_fail("%s: a new mapping has \"%s\", want lo and lf (mlockall MCL_FUTURE | MCL_ONFAULT)", when, flags);
}

static void hold_low(void)
{
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
	unsigned long min = 0;
	if (!f || fscanf(f, "%lu", &min) != 1)
		tgt_fail("read /proc/sys/vm/mmap_min_addr");
	fclose(f);
	min = (min + 4095) & ~4095UL;
	if (min == 0)
		min = 4096;
	/* An LSM may keep a process from mapping higher still
	 * (CONFIG_LSM_MMAP_MIN_ADDR): the first page it may map. */
	char *low = MAP_FAILED;
	for (unsigned long a = min; a < min + (1 << 20) && low == MAP_FAILED; a += 4096)
		low = mmap((void *)a, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (low == MAP_FAILED)
		tgt_fail("mmap within 1 MiB of mmap_min_addr %#lx: %s", min, strerror(errno));
	memset(low, 'L', 4096);
	if (mlockall(MCL_FUTURE | MCL_ONFAULT) < 0)
		tgt_fail("mlockall: %s", strerror(errno));
	new_mapping_locked("before the dump");
	tgt_log("a page at %p", (void *)low);
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < 4096; i++)
		if (low[i] != 'L')
			tgt_fail("the page at %p changed at byte %d", (void *)low, i);
	new_mapping_locked("after the restore");
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc > 2 && strcmp(argv[2], "seal") == 0)
		hold_sealed();
	if (argc > 2 && strcmp(argv[2], "low") == 0)
		hold_low();
	/* One reservation, then each region at its place with a gap. */
	char *base = mmap(NULL, NREGIONS * 2 * REGION, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	for (int i = 0; i < NREGIONS; i++) {
		region[i] = mmap(base + i * 2 * REGION, REGION, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (region[i] == MAP_FAILED)
			tgt_fail("mmap %s: %s", kinds[i].name, strerror(errno));
		memset(region[i], 'a' + i, REGION);
		long r;
		if (kinds[i].advice == -1)
			r = mlock(region[i], REGION);
		else if (kinds[i].advice == -2)
			r = syscall(SYS_mlock2, region[i], REGION, MLOCK_ONFAULT);
		else
			r = madvise(region[i], REGION, kinds[i].advice);
		if (r < 0 && kinds[i].advice == MADV_MERGEABLE && errno == EINVAL) {
			/* No KSM in this kernel (CONFIG_KSM): nothing to keep. */
			tgt_log("mergeable: not checked, the kernel has no KSM");
		} else if (r < 0) {
			tgt_fail("%s: %s", kinds[i].name, strerror(errno));
		}
		vmflags(region[i], flags_before[i], sizeof(flags_before[i]));
		tgt_log("%s: %s", kinds[i].name, flags_before[i]);
	}
	map_sparse();
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < NREGIONS; i++) {
		char now[256];
		vmflags(region[i], now, sizeof(now));
		if (strcmp(now, flags_before[i]) != 0)
			tgt_fail("%s mapping: \"%s\" after restore, \"%s\" before", kinds[i].name, now, flags_before[i]);
		for (int j = 0; j < REGION; j += 4096)
			if (region[i][j] != 'a' + i)
				tgt_fail("%s mapping: page %d changed", kinds[i].name, j / 4096);
	}
	check_sparse();
	tgt_pass();
}
