/*
 * churn: threads that never stop creating and joining threads, so the set
 * of threads changes while gocr freezes the process.
 *
 * POOL long-lived pool threads each loop: create a short-lived thread with
 * an argument, join it, check its return value (2*arg+1) and that it ran on
 * a fresh TID; a monitor thread keeps checking the counters in between:
 *   created >= joined and created - joined <= POOL (read in orders that make
 *   each inequality exact), exited >= joined.
 * After SIGTERM the target requires every pool thread to make progress
 * (30 more rounds), stops the pool, joins it, and requires
 * created == joined == exited, no recorded error, and that only the main
 * thread is left in /proc/self/task (once the joined ones are gone from
 * it, within 2 s).
 *
 * Usage: churn RESULT_PATH
 */
#include "target.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define POOL 6

static atomic_long created, joined, exited;
static atomic_int stop;
static atomic_long rounds[POOL];
static char error[512];
static atomic_int has_error;
static pid_t last_tid[POOL];

static void record_error(const char *fmt, ...)
{
	va_list ap;
	if (atomic_exchange(&has_error, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(error, sizeof(error), fmt, ap);
	va_end(ap);
}

struct shortarg {
	long in;
	pid_t tid;
};

static void *short_lived(void *p)
{
	struct shortarg *a = p;
	a->tid = (pid_t)syscall(SYS_gettid);
	atomic_fetch_add(&exited, 1);
	return (void *)(2 * a->in + 1);
}

static void *pool_main(void *p)
{
	int idx = (int)(long)p;
	long r = 0;

	while (!atomic_load(&stop)) {
		struct shortarg a = { .in = idx * 1000000L + r };
		pthread_t th;
		void *ret;
		int err;

		atomic_fetch_add(&created, 1);
		err = pthread_create(&th, NULL, short_lived, &a);
		if (err) {
			record_error("pool %d: pthread_create: %s", idx, strerror(err));
			atomic_fetch_sub(&created, 1);
			return NULL;
		}
		err = pthread_join(th, &ret);
		if (err) {
			record_error("pool %d: pthread_join: %s", idx, strerror(err));
			return NULL;
		}
		atomic_fetch_add(&joined, 1);
		if ((long)ret != 2 * a.in + 1)
			record_error("pool %d round %ld: thread returned %ld, want %ld", idx, r, (long)ret,
				     2 * a.in + 1);
		if (a.tid <= 0 || a.tid == (pid_t)syscall(SYS_gettid))
			record_error("pool %d round %ld: short-lived thread tid %d", idx, r, a.tid);
		last_tid[idx] = a.tid;
		atomic_store(&rounds[idx], ++r);
	}
	return NULL;
}

static void *monitor_main(void *p)
{
	(void)p;
	while (!atomic_load(&stop)) {
		long c, j, e;
		j = atomic_load(&joined);
		c = atomic_load(&created);
		if (c < j)
			record_error("monitor: created %ld < joined %ld", c, j);
		c = atomic_load(&created);
		j = atomic_load(&joined);
		if (c - j > POOL)
			record_error("monitor: %ld threads alive (created %ld, joined %ld), at most %d", c - j, c, j, POOL);
		j = atomic_load(&joined);
		e = atomic_load(&exited);
		if (e < j)
			record_error("monitor: exited %ld < joined %ld", e, j);
		sched_yield();
	}
	return NULL;
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	if (!d)
		tgt_fail("opendir /proc/self/task: %s", strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	pthread_t pool[POOL], mon;
	long at_term[POOL];
	int err;

	tgt_init(argc, argv);
	for (int i = 0; i < POOL; i++)
		if ((err = pthread_create(&pool[i], NULL, pool_main, (void *)(long)i)))
			tgt_fail("create pool thread %d: %s", i, strerror(err));
	if ((err = pthread_create(&mon, NULL, monitor_main, NULL)))
		tgt_fail("create monitor: %s", strerror(err));
	while (atomic_load(&joined) < 1000)
		usleep(1000);
	tgt_ready();
	tgt_wait();

	for (int i = 0; i < POOL; i++)
		at_term[i] = atomic_load(&rounds[i]);
	for (int tries = 0;; tries++) {
		int behind = -1;
		for (int i = 0; i < POOL; i++)
			if (atomic_load(&rounds[i]) < at_term[i] + 30)
				behind = i;
		if (behind < 0)
			break;
		if (atomic_load(&has_error) || tries >= 500)
			tgt_fail("pool thread %d made %ld rounds in 5 s after SIGTERM, want 30 (error: %s)", behind,
				 atomic_load(&rounds[behind]) - at_term[behind], has_error ? error : "none");
		usleep(10000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < POOL; i++)
		if ((err = pthread_join(pool[i], NULL)))
			tgt_fail("join pool thread %d: %s", i, strerror(err));
	if ((err = pthread_join(mon, NULL)))
		tgt_fail("join monitor: %s", strerror(err));
	if (atomic_load(&has_error))
		tgt_fail("%s", error);
	if (created != joined || joined != exited)
		tgt_fail("created %ld, joined %ld, exited %ld: want all equal", (long)created, (long)joined,
			 (long)exited);
	/* pthread_join returns once the kernel has cleared the thread's TID
	 * (CLONE_CHILD_CLEARTID, in kernel/fork.c mm_release), which comes
	 * before the exiting thread leaves /proc (kernel/exit.c do_exit,
	 * release_task): the last one joined may show a moment longer. */
	int left = count_tasks();
	for (int tries = 0; left != 1 && tries < 200; tries++) {
		usleep(10000);
		left = count_tasks();
	}
	if (left != 1)
		tgt_fail("%d threads left 2 s after joining everything, want 1", left);
	tgt_log("churn: %ld short-lived threads\n", (long)created);
	tgt_pass();
}
