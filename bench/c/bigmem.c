/* bigmem READY_PATH MIB [hugepage]: MIB MiB of private anonymous memory,
 * every page written with pseudo-random bytes, then wait. The memory rows
 * dump this. With "hugepage" the memory is 2 MiB-aligned and madvised
 * MADV_HUGEPAGE first, so it is faulted in transparent huge pages where
 * the machine's THP mode is madvise or always (the THP row). */
#include "bench.h"

#define HUGE (2UL << 20)

int main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 4 && strcmp(argv[3], "hugepage") == 0)) {
		fprintf(stderr, "usage: bigmem READY_PATH MIB [hugepage]\n");
		return 2;
	}
	int huge = argc == 4;
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	char *raw = mmap(NULL, len + (huge ? HUGE : 0), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	char *p = raw;
	if (huge) {
		p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
		if (madvise(p, len, MADV_HUGEPAGE) != 0)
			die("madvise MADV_HUGEPAGE");
	}
	fill(p, len, 0x9E3779B97F4A7C15ULL);
	ready(argv[1]);
	wait_forever();
}
