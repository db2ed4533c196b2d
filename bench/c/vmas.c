/* vmas READY_PATH N: N one-page VMAs. One mapping of N pages, every page
 * touched, then every other page made read-only: neighbours differ in
 * protection, so the kernel cannot merge them and /proc/PID/maps lists N
 * lines (plus the binary's own). */
#include "bench.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: vmas READY_PATH N\n");
		return 2;
	}
	size_t n = strtoull(argv[2], NULL, 10);
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	fill(p, n * pg, 42);
	for (size_t i = 0; i < n; i += 2)
		if (mprotect(p + i * pg, pg, PROT_READ) != 0)
			die("mprotect");
	ready(argv[1]);
	wait_forever();
}
