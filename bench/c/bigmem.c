/* bigmem READY_PATH MIB: MIB MiB of private anonymous memory, every page
 * written with pseudo-random bytes, then wait. The memory rows dump this. */
#include "bench.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bigmem READY_PATH MIB\n");
		return 2;
	}
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	fill(p, len, 0x9E3779B97F4A7C15ULL);
	ready(argv[1]);
	wait_forever();
}
