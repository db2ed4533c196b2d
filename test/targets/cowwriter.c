/*
 * cowwriter: writes its memory without pause, so that a dump taken while
 * it runs (--leave-running) must be the state at one instant. Step c
 * writes one word in every region: word 0 of page (c mod pages) gets
 * value(c, region), the counter is then set to c. Before each write the
 * word is checked to hold what the step one lap earlier wrote there (or
 * its first value): a page from any other instant than the others, in
 * any region, fails the check within one lap after a restore, and each
 * lap covers every page. On SIGTERM it runs one more lap of the largest
 * region, checking, and reports.
 *
 * Regions: private anonymous (the snapshot's), MAP_SHARED anonymous, a
 * MAP_SHARED memfd (a file whose contents the dump saves: a regular
 * file's stay in the file, which the job goes on writing after a
 * --leave-running dump), MADV_DONTFORK and MADV_WIPEONFORK private
 * memory (fork leaves them out of a snapshot: they are captured while
 * the process is frozen). The counter is private too.
 *
 * A second thread writes a private region of its own the same way.
 *
 * It also waits for any child, each step, with __WALL (which sees clone
 * children too) and counts SIGCHLD: it has no children, so anything
 * seen there is a process gocr left in its tree.
 *
 * Usage: cowwriter RESULT_PATH [subreaper]
 */
#include "target.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define MiB (1024UL * 1024UL)
#define PAGE 4096UL

enum { R_PRIVATE, R_SHARED, R_FILE, R_DONTFORK, R_WIPEONFORK, R_THREAD, NREGIONS };
static const char *names[NREGIONS] = { "private", "shared", "shared memfd", "dontfork", "wipeonfork", "thread's" };
static const size_t sizes[NREGIONS] = { 64 * MiB, 4 * MiB, 4 * MiB, 4 * MiB, 4 * MiB, 16 * MiB };
static volatile uint64_t *regions[NREGIONS];
static volatile uint64_t counter;
static volatile sig_atomic_t sigchld;

static uint64_t value(uint64_t c, int r)
{
	uint64_t x = c * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(r + 1) << 56;
	x ^= x >> 29;
	return x ? x : 1;
}

/* The first value of page p of region r, before any step. */
static uint64_t initial(uint64_t p, int r)
{
	return value(~p, r);
}

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

/* step c of the regions [first, last). */
static void step(uint64_t c, int first, int last)
{
	for (int r = first; r < last; r++) {
		uint64_t pages = sizes[r] / PAGE;
		uint64_t p = c % pages;
		volatile uint64_t *w = regions[r] + p * (PAGE / 8);
		uint64_t want = c >= pages ? value(c - pages, r) : initial(p, r);
		if (*w != want)
			tgt_fail("step %llu: %s page %llu holds %#llx, want %#llx (step %llu's): not one instant",
				 (unsigned long long)c, names[r], (unsigned long long)p,
				 (unsigned long long)*w, (unsigned long long)want,
				 (unsigned long long)(c - pages));
		*w = value(c, r);
	}
	if (first == 0)
		counter = c;
}

/* A second thread writes a region of its own the same way, so that the
 * instant is one for both threads: neither's memory may come from later
 * than the other's registers. */
static volatile int thread_stop;

static void *writer(void *arg)
{
	(void)arg;
	uint64_t c = 0;
	while (!thread_stop)
		step(c++, R_THREAD, R_THREAD + 1);
	for (uint64_t end = c + sizes[R_THREAD] / PAGE; c < end;)
		step(c++, R_THREAD, R_THREAD + 1);
	return NULL;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc > 2 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		tgt_fail("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		tgt_fail("sigaction(SIGCHLD): %s", strerror(errno));

	int fd = memfd_create("cowwriter", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)sizes[R_FILE]) < 0)
		tgt_fail("memfd: %s", strerror(errno));
	for (int r = 0; r < NREGIONS; r++) {
		int shared = r == R_SHARED || r == R_FILE;
		void *m = mmap(NULL, sizes[r], PROT_READ | PROT_WRITE,
			       (shared ? MAP_SHARED : MAP_PRIVATE) | (r == R_FILE ? 0 : MAP_ANONYMOUS),
			       r == R_FILE ? fd : -1, 0);
		if (m == MAP_FAILED)
			tgt_fail("mmap %s: %s", names[r], strerror(errno));
		if (r == R_DONTFORK && madvise(m, sizes[r], MADV_DONTFORK) < 0)
			tgt_fail("MADV_DONTFORK: %s", strerror(errno));
		if (r == R_WIPEONFORK && madvise(m, sizes[r], MADV_WIPEONFORK) < 0)
			tgt_fail("MADV_WIPEONFORK: %s", strerror(errno));
		regions[r] = m;
		for (uint64_t p = 0; p < sizes[r] / PAGE; p++)
			regions[r][p * (PAGE / 8)] = initial(p, r);
	}
	close(fd);
	pthread_t th;
	if (pthread_create(&th, NULL, writer, NULL) != 0)
		tgt_fail("pthread_create failed");
	tgt_ready();

	uint64_t c = 0;
	while (!got_term) {
		step(c++, 0, R_THREAD);
		if ((c & 255) == 0) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			int st;
			pid_t pid = waitpid(-1, &st, __WALL | WNOHANG);
			if (pid != -1 || errno != ECHILD)
				tgt_fail_on_term("waitpid(-1, __WALL) returned %d (errno %d): a child appeared", pid, errno);
			if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | __WALL) != -1 ||
			    errno != ECHILD)
				tgt_fail_on_term("waitid(P_ALL) found child %d: a child appeared", si.si_pid);
			if (sigchld)
				tgt_fail_on_term("%d SIGCHLD arrived: a child came and went", (int)sigchld);
		}
	}
	uint64_t lap = sizes[R_PRIVATE] / PAGE;
	for (uint64_t end = c + lap; c < end;)
		step(c++, 0, R_THREAD);
	thread_stop = 1;
	pthread_join(th, NULL);
	tgt_log("%llu steps\n", (unsigned long long)c);
	tgt_pass();
}
