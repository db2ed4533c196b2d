/*
 * limit MIB: the machine's limit for the work gocr does, measured in a
 * separate process so that the benchmark's own Go heap stays small and the
 * buffer is an ordinary C process's memory, faulted in and filled exactly
 * as bigmem's is (same PRNG, same page size, no Go GC or THP differences).
 *
 * After filling MIB MiB it reads commands on stdin, one a line, and
 * answers each with the elapsed nanoseconds (or "error ...") on stdout:
 *
 *   w PATH 1|0   write() the whole buffer to a new file PATH, fsync if 1
 *   r PATH...    read() the files into fresh anonymous memory (mmap'ed for
 *                this command and unmapped after it), as a restore
 *                reads its page image into fresh mappings
 *   f MIB        fault MIB MiB of fresh anonymous memory in transparent
 *                huge pages (2 MiB-aligned, MADV_HUGEPAGE, one byte
 *                written per 2 MiB): what memory in huge pages costs
 *                before anything is copied into it; "error ..." if the
 *                kernel gave fewer than all of it in huge pages
 */
#include "bench.h"
#include <time.h>

static char *buf;
static size_t buflen;

/* At most 1 GiB per call: write(2)/read(2) transfer at most 0x7ffff000
 * bytes at once anyway. */
#define CHUNK (1UL << 30)

static int do_write(const char *path, int sync)
{
	uint64_t t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (size_t off = 0; off < buflen;) {
		size_t n = buflen - off < CHUNK ? buflen - off : CHUNK;
		ssize_t w = write(fd, buf + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (sync && fsync(fd) != 0) {
		close(fd);
		return -1;
	}
	if (close(fd) != 0)
		return -1;
	printf("%llu\n", (unsigned long long)(now() - t0));
	return 0;
}

static int do_read(char **paths, int n)
{
	uint64_t t0 = now();
	for (int i = 0; i < n; i++) {
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		off_t size = lseek(fd, 0, SEEK_END);
		if (size < 0)
			return -1;
		if (size == 0) {
			close(fd);
			continue;
		}
		char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		for (off_t off = 0; off < size;) {
			size_t want = (size_t)(size - off) < CHUNK ? (size_t)(size - off) : CHUNK;
			ssize_t r = pread(fd, p + off, want, off);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			off += r;
		}
		close(fd);
		/* Unmapping is outside what a restore pays (its memory stays
		 * mapped), but a 4 GiB munmap is cheap next to the faults. */
		munmap(p, size);
	}
	printf("%llu\n", (unsigned long long)(now() - t0));
	return 0;
}

#define HUGE (2UL << 20)

/* anon_huge_kib is AnonHugePages of this process (/proc/self/smaps_rollup,
 * man 5 proc_pid_smaps_rollup), or -1. */
static long anon_huge_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "re");
	if (!f)
		return -1;
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "AnonHugePages:", 14) == 0)
			kib = strtol(line + 14, NULL, 10);
	fclose(f);
	return kib;
}

static int do_fault_huge(size_t mib)
{
	size_t len = mib << 20;
	uint64_t t0 = now();
	char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return -1;
	char *p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (madvise(p, len, MADV_HUGEPAGE) != 0) {
		munmap(raw, len + HUGE);
		return -1;
	}
	for (size_t off = 0; off < len; off += HUGE)
		p[off] = 1;
	uint64_t t = now() - t0;
	long kib = anon_huge_kib();
	munmap(raw, len + HUGE);
	if (kib < (long)(len >> 10)) {
		printf("error only %ld of %zu KiB in huge pages\n", kib, len >> 10);
		return 0;
	}
	printf("%llu\n", (unsigned long long)t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: limit MIB\n");
		return 2;
	}
	buflen = strtoull(argv[1], NULL, 10) << 20;
	buf = mmap(NULL, buflen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	fill(buf, buflen, 0x9E3779B97F4A7C15ULL);
	printf("ready\n");
	fflush(stdout);

	char line[65536];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		char *args[256];
		int n = 0;
		for (char *tok = strtok(line, " "); tok && n < 256; tok = strtok(NULL, " "))
			args[n++] = tok;
		int rc = -1;
		if (n == 3 && strcmp(args[0], "w") == 0)
			rc = do_write(args[1], args[2][0] == '1');
		else if (n >= 2 && strcmp(args[0], "r") == 0)
			rc = do_read(args + 1, n - 1);
		else if (n == 2 && strcmp(args[0], "f") == 0)
			rc = do_fault_huge(strtoull(args[1], NULL, 10));
		else
			errno = EINVAL;
		if (rc != 0)
			printf("error %s\n", strerror(errno));
		fflush(stdout);
	}
	return 0;
}
