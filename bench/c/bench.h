/*
 * Shared scaffolding for the benchmark targets: argv[1] is READY_PATH, which
 * a target creates once its state is set up; it then sleeps until killed.
 * The bench (bench/processes.go) kills every target by PID. Unlike the test
 * targets these do not verify themselves: they exist to be measured.
 */
#ifndef GOCR_BENCH_H
#define GOCR_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

static inline void ready(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create ready file");
	close(fd);
}

/* now is CLOCK_MONOTONIC in ns. */
static inline uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* write_number writes v and a newline to READY_PATH.SUFFIX, where the
 * bench reads a target's figures. */
static inline void write_number(const char *ready, const char *suffix, uint64_t v)
{
	char path[4096], text[32];
	snprintf(path, sizeof(path), "%s.%s", ready, suffix);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create result file");
	int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)v);
	if (write(fd, text, (size_t)n) != n)
		die("write result file");
	close(fd);
}

/* Sleeps in pause() so that a restore that restarts the syscall finds the
 * process exactly where it was. */
static inline void wait_forever(void)
{
	for (;;)
		pause();
}

/*
 * fill writes incompressible bytes fast: xorshift64* runs at several GB/s,
 * so filling costs little more than the page faults, and no page is all
 * zeros or a repeat of another (which a smarter dumper could skip).
 */
static inline void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p, x = seed | 1;
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		w[i] = x * 0x2545F4914F6CDD1DULL;
	}
}

#endif
