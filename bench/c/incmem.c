/* incmem READY_PATH MIB PERCENT: MIB MiB of private anonymous memory,
 * filled, for incremental dumps. A clock thread reads CLOCK_MONOTONIC
 * without pause and keeps the longest gap between two readings: how long
 * the process was kept from running. SIGUSR1: write one word into
 * PERCENT % of the pages (chosen anew each time, each page at most once),
 * forget the longest gap, then write how many pages were written to
 * READY_PATH.written. SIGUSR2: write the longest gap since, in ns, to
 * READY_PATH.gap. */
#include "bench.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

static volatile sig_atomic_t asked, report;
static volatile uint64_t longest;
static volatile int reset;

static void on_usr1(int sig) { (void)sig; asked = 1; }
static void on_usr2(int sig) { (void)sig; report = 1; }

static void *clock_thread(void *arg)
{
	(void)arg;
	uint64_t last = now();
	for (;;) {
		uint64_t t = now();
		if (reset) {
			reset = 0;
			longest = 0;
		} else if (t - last > longest) {
			longest = t - last;
		}
		last = t;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: incmem READY_PATH MIB PERCENT\n");
		return 2;
	}
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	uint64_t percent = strtoull(argv[3], NULL, 10);
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	fill(p, len, 0x9E3779B97F4A7C15ULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, clock_thread, NULL) != 0)
		die("pthread_create");
	ready(argv[1]);
	uint64_t round = 0;
	size_t pages = len / 4096;
	for (;;) {
		if (asked) {
			asked = 0;
			round++;
			uint64_t n = 0;
			for (size_t i = 0; i < pages; i++) {
				uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ULL ^ round * 0xBF58476D1CE4E5B9ULL;
				h ^= h >> 31;
				h *= 0x94D049BB133111EBULL;
				h ^= h >> 29;
				if (h % 100 < percent) {
					p[i * 512 + (h >> 40) % 512] = h;
					n++;
				}
			}
			reset = 1;
			write_number(argv[1], "written", n);
		}
		if (report) {
			report = 0;
			write_number(argv[1], "gap", longest);
		}
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
