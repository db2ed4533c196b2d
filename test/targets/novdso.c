/*
 * novdso: a process that unmapped its vDSO and vvar pages ([vdso],
 * [vvar], [vvar_vclock]: whichever /proc/self/maps shows), as a sandbox
 * or a runtime that wants every clock read to be a system call does, with
 * a second thread. After the unmap nothing here calls into the vDSO:
 * glibc keeps the vDSO's function pointers it found at startup, so
 * clock_gettime would jump into the unmapped pages; clocks are read with
 * syscall(SYS_clock_gettime), sleeps are system calls (nanosleep).
 *
 * MODE says what it unmaps: "all" of them; "vvar" the vvar pages only,
 * keeping [vdso]. (A part of one the kernel does not unmap: it refuses
 * to split a special mapping, mm/mmap.c special_mapping_split.)
 *
 * After restore it checks that /proc/self/maps shows the same lines of
 * the vDSO area as before (none, for "all"), that AT_SYSINFO_EHDR is as
 * before in getauxval and in the kernel's copy of the auxiliary vector
 * (/proc/self/auxv, restored by PR_SET_MM), that both threads' counters
 * went on from where they were, and that the monotonic clock did not go
 * back.
 *
 * Usage: novdso RESULT_PATH MODE
 */
#include "target.h"

#include <elf.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static volatile unsigned long main_count, thread_count;

static char maps[1 << 16];

/* read_file reads path into buf, NUL-terminated, with raw calls. */
static size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			tgt_fail("read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			tgt_fail("%s: longer than %zu bytes", path, cap - 1);
	}
	close(fd);
	buf[n] = 0;
	return n;
}

static int is_special(const char *line)
{
	return strstr(line, "[vdso]") || strstr(line, "[vvar]") || strstr(line, "[vvar_vclock]");
}

static char before[4096], after[4096];

/* specials writes the lines of /proc/self/maps of the vDSO area, their
 * address ranges and names, into buf. */
static void specials(char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = 0;
	read_file("/proc/self/maps", maps, sizeof(maps));
	for (char *line = maps; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (is_special(line)) {
			char *name = strrchr(line, ' ');
			char *range_end = strchr(line, ' ');
			int len = snprintf(buf + n, cap - n, "%.*s%s\n", (int)(range_end - line), line, name);
			if (len < 0 || (size_t)len >= cap - n)
				tgt_fail("too many vDSO area mappings");
			n += (size_t)len;
		}
		line = end ? end + 1 : line + strlen(line);
	}
}

/* The kernel's AT_SYSINFO_EHDR, from /proc/self/auxv. */
static uint64_t kernel_sysinfo_ehdr(void)
{
	static char buf[4096];
	size_t n = read_file("/proc/self/auxv", buf, sizeof(buf));
	for (size_t off = 0; off + 16 <= n; off += 16) {
		uint64_t type, val;
		memcpy(&type, buf + off, 8);
		memcpy(&val, buf + off + 8, 8);
		if (type == AT_SYSINFO_EHDR)
			return val;
	}
	return 0;
}

static long monotonic_ns(void)
{
	struct timespec ts;
	if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts))
		tgt_fail("clock_gettime: %s", strerror(errno));
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *counting(void *arg)
{
	(void)arg;
	for (;;) {
		thread_count++;
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	unsigned long aux = getauxval(AT_SYSINFO_EHDR);
	if (!aux)
		tgt_fail("no AT_SYSINFO_EHDR: this kernel gives no vDSO");

	if (argc < 3)
		tgt_fail("usage: novdso RESULT_PATH all|vvar");
	const char *mode = argv[2];
	int vvar_only = !strcmp(mode, "vvar");
	if (!vvar_only && strcmp(mode, "all"))
		tgt_fail("unknown mode %s", mode);

	/* Find first, unmap after: munmap changes the maps being read. */
	uintptr_t lo[8], hi[8];
	int n = 0;
	read_file("/proc/self/maps", maps, sizeof(maps));
	for (char *line = maps; *line && n < 8;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		int pick = vvar_only ? !!strstr(line, "[vvar") : is_special(line);
		if (pick && sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
			n++;
		line = end ? end + 1 : line + strlen(line);
	}
	if (n == 0)
		tgt_fail("nothing of the vDSO area to unmap in /proc/self/maps");
	for (int i = 0; i < n; i++)
		if (munmap((void *)lo[i], hi[i] - lo[i]))
			tgt_fail("munmap %#lx: %s", (unsigned long)lo[i], strerror(errno));
	specials(before, sizeof(before));
	if (!vvar_only && before[0])
		tgt_fail("the vDSO area is still mapped after munmap: %s", before);
	uint64_t kaux = kernel_sysinfo_ehdr();
	if (kaux != aux)
		tgt_fail("/proc/self/auxv AT_SYSINFO_EHDR %#lx, getauxval %#lx", (unsigned long)kaux, aux);

	pthread_t th;
	int err = pthread_create(&th, NULL, counting, NULL);
	if (err)
		tgt_fail("pthread_create: %s", strerror(err));
	while (thread_count == 0) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	long t0 = monotonic_ns();
	tgt_ready();
	unsigned long at_ready = main_count;
	while (!got_term) {
		main_count++;
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}

	specials(after, sizeof(after));
	if (strcmp(before, after))
		tgt_fail("the vDSO area's mappings were\n%snow\n%s", before, after);
	if (getauxval(AT_SYSINFO_EHDR) != aux)
		tgt_fail("getauxval(AT_SYSINFO_EHDR) %#lx, was %#lx", getauxval(AT_SYSINFO_EHDR), aux);
	if ((kaux = kernel_sysinfo_ehdr()) != aux)
		tgt_fail("/proc/self/auxv AT_SYSINFO_EHDR %#lx, was %#lx", (unsigned long)kaux, aux);
	if (main_count <= at_ready)
		tgt_fail("main thread's counter %lu, %lu at the dump", main_count, at_ready);
	unsigned long seen = thread_count;
	for (int i = 0; thread_count == seen; i++) {
		if (i == 5000)
			tgt_fail("the second thread's counter stays at %lu", seen);
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (monotonic_ns() < t0)
		tgt_fail("CLOCK_MONOTONIC went back");
	tgt_pass();
}
