/*
 * threadtree: a root and NCHILD children, each process with NTHR threads
 * besides its main one, every thread counting in a nanosleep loop. After
 * SIGTERM (the root passes it on to its children) each process checks that
 * /proc/self/task lists exactly its NTHR+1 threads and that every counter
 * goes on moving: the whole process runs, every thread of it. Each child
 * reports one byte to the root over a pipe (and its exit status); the
 * root writes PASS only if every child, and itself, passed.
 *
 * Usage: threadtree RESULT_PATH
 */
#include "target.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define NCHILD 3
#define NTHR 3

static _Atomic long counters[NTHR];

static void *counter(void *arg)
{
	_Atomic long *c = arg;
	sigset_t all;

	/* SIGTERM goes to the main thread only. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		atomic_fetch_add(c, 1);
	}
	return NULL;
}

static int tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* check returns NULL if this process is whole and runs, or why not. */
static const char *check(void)
{
	static char why[256];
	long before[NTHR];
	int n = tasks();

	if (n != NTHR + 1) {
		snprintf(why, sizeof(why), "pid %d has %d threads, want %d", getpid(), n, NTHR + 1);
		return why;
	}
	for (int i = 0; i < NTHR; i++)
		before[i] = atomic_load(&counters[i]);
	/* Every counter must move: a thread that does not run never does. */
	for (int tries = 0; tries < 1000; tries++) {
		int moved = 1;
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		for (int i = 0; i < NTHR; i++)
			if (atomic_load(&counters[i]) <= before[i] + 2)
				moved = 0;
		if (moved)
			return NULL;
		nanosleep(&ts, NULL);
	}
	snprintf(why, sizeof(why), "pid %d: a thread's counter stopped", getpid());
	return why;
}

static void start_threads(void)
{
	for (int i = 0; i < NTHR; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, counter, &counters[i]) != 0)
			tgt_fail("pthread_create");
	}
}

int main(int argc, char **argv)
{
	pid_t kids[NCHILD];
	int verdict[2];

	tgt_init(argc, argv);
	if (pipe(verdict) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	for (int k = 0; k < NCHILD; k++) {
		kids[k] = fork();
		if (kids[k] < 0)
			tgt_fail("fork: %s", strerror(errno));
		if (kids[k] == 0) {
			close(verdict[0]);
			start_threads();
			tgt_wait();
			char ok = check() == NULL ? 'P' : 'F';
			write(verdict[1], &ok, 1);
			_exit(ok == 'P' ? 0 : 1);
		}
	}
	close(verdict[1]);
	start_threads();
	tgt_ready();
	tgt_wait();
	for (int k = 0; k < NCHILD; k++)
		kill(kids[k], SIGTERM);
	const char *why = check();
	for (int k = 0; k < NCHILD; k++) {
		char ok = 0;
		int st;

		if (read(verdict[0], &ok, 1) != 1 || ok != 'P')
			tgt_fail("child %d of %d failed its check (%c)", k + 1, NCHILD, ok ? ok : '-');
		if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			tgt_fail("child %d: status %#x", kids[k], st);
	}
	if (why)
		tgt_fail("%s", why);
	tgt_pass();
}
