/* mixedmem READY_PATH MIB: MIB MiB of private anonymous memory as a job's
 * memory may be, page by page in turn: two pages of pseudo-random bytes
 * (numbers, compressed or encrypted data), one page of text (words of a
 * small vocabulary, as logs and source hold) and one page of zeros (written,
 * so it is resident and dumped). Half is incompressible, half compresses
 * well. The compression rows checkpoint this. */
#include "bench.h"

static const char *words[] = {
	"the", "job", "step", "value", "error", "count", "node", "time",
	"check", "restart", "memory", "page", "result", "input", "output", "rank",
	"matrix", "solver", "iteration", "residual", "converged", "timestep", "mesh", "flux",
};

static void text(char *p, size_t len, uint64_t *x)
{
	size_t i = 0;
	while (i < len) {
		*x ^= *x >> 12;
		*x ^= *x << 25;
		*x ^= *x >> 27;
		uint64_t r = *x * 0x2545F4914F6CDD1DULL;
		const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
		for (; *w && i < len; w++)
			p[i++] = *w;
		if (i < len)
			p[i++] = (r >> 32) % 9 == 0 ? '\n' : ' ';
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mixedmem READY_PATH MIB\n");
		return 2;
	}
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	for (size_t off = 0; off < len; off += 4096) {
		switch ((off / 4096) % 4) {
		case 0:
		case 1:
			fill(p + off, 4096, x + off);
			break;
		case 2:
			text(p + off, 4096, &x);
			break;
		case 3:
			memset(p + off, 0, 4096);
			break;
		}
	}
	ready(argv[1]);
	wait_forever();
}
