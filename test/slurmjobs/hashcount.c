/*
 * hashcount: a batch job's program whose whole state is in its memory.
 *
 * Usage: hashcount N STEP_MS TAG [ignore-term]
 *
 * It counts from 1 to N, one step every STEP_MS milliseconds. Each step
 * folds the step's number into a running 64-bit FNV-1a hash and writes
 * "step I hash H\n" on stdout with one write(2); after step N it writes
 * "done N hash H\n" and exits 0. Nothing of where it is is written
 * anywhere it reads back: restarted from scratch it would start at step 1
 * again, restarted from a checkpoint it goes on from the step after the
 * last one written, so its output shows which. TAG only names the
 * process on its command line, for the test to find it. With ignore-term
 * it ignores SIGTERM, as a program must to be checkpointed at a SIGTERM
 * that Slurm also sends it (proctrack/linuxproc, docs/SLURM.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* FNV-1a, 64 bits (offset basis and prime of the FNV specification),
 * over the 8 little-endian bytes of the step number. */
static uint64_t fold(uint64_t h, uint64_t step)
{
	for (int i = 0; i < 8; i++) {
		h ^= (step >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void say(const char *line)
{
	size_t n = strlen(line);

	if (write(1, line, n) != (ssize_t)n) {
		fprintf(stderr, "hashcount: write(stdout): %s\n", strerror(errno));
		exit(2);
	}
}

int main(int argc, char **argv)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	char line[96];
	long n, ms;

	if (argc < 4) {
		fprintf(stderr, "usage: hashcount N STEP_MS TAG [ignore-term]\n");
		return 2;
	}
	n = strtol(argv[1], NULL, 10);
	ms = strtol(argv[2], NULL, 10);
	if (argc > 4 && strcmp(argv[4], "ignore-term") == 0)
		signal(SIGTERM, SIG_IGN);
	for (long i = 1; i <= n; i++) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		h = fold(h, (uint64_t)i);
		snprintf(line, sizeof(line), "step %ld hash %016" PRIx64 "\n", i, h);
		say(line);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	snprintf(line, sizeof(line), "done %ld hash %016" PRIx64 "\n", n, h);
	say(line);
	return 0;
}
