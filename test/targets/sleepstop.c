/*
 * sleepstop: threads waiting in the calls that keep their deadline in the
 * kernel's restart block, meant to be stopped and continued (SIGSTOP,
 * SIGCONT) before the dump, so that each waits in restart_syscall(2) when
 * it is dumped:
 *
 *   remsleep   nanosleep(3 s) given a pointer for the time left; after the
 *              restore it must sleep only what was left: its sleep, less
 *              the longest time the process was kept from running, must
 *              not exceed the request by much;
 *   fullsleep  nanosleep(3 s) with no such pointer: no EINTR, not short;
 *   pollwait   poll(NULL, 0, 3000): returns 0, not short;
 *   rawsleep   (argument "raw") nanosleep(3 s) through glibc's generic
 *              syscall(2), whose code does not show the call's number: a
 *              dump must refuse the thread, and the sleep goes on.
 *
 * A ticker thread reads the clock every 10 ms and keeps the longest gap:
 * the time the dump and restore kept the process from running.
 */
#include "target.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#define REQ_S 3.0

#include <sys/syscall.h>

enum { REMSLEEP, FULLSLEEP, POLLWAIT, RAWSLEEP, NSLEEPERS };

static const char *const names[NSLEEPERS] = { "remsleep", "fullsleep", "pollwait", "rawsleep" };
static int nsleepers = RAWSLEEP;

struct sleeper {
	double elapsed;
	int ret, err;
	atomic_int done;
};

static struct sleeper sl[NSLEEPERS];
static atomic_int all_done;
static double max_gap;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run_sleeper(void *arg)
{
	struct sleeper *s = arg;
	int which = (int)(s - sl);
	struct timespec req = { (time_t)REQ_S, 0 }, rem;
	double start;

	pthread_setname_np(pthread_self(), names[which]);
	start = mono();
	switch (which) {
	case REMSLEEP:
		s->ret = nanosleep(&req, &rem);
		break;
	case FULLSLEEP:
		s->ret = nanosleep(&req, NULL);
		break;
	case POLLWAIT:
		s->ret = poll(NULL, 0, (int)(REQ_S * 1000));
		break;
	case RAWSLEEP:
		s->ret = (int)syscall(SYS_nanosleep, &req, &rem);
		break;
	}
	s->err = errno;
	s->elapsed = mono() - start;
	atomic_store(&s->done, 1);
	return NULL;
}

static void *run_ticker(void *arg)
{
	double last = mono();

	(void)arg;
	while (!atomic_load(&all_done)) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		double now;

		nanosleep(&ts, NULL);
		now = mono();
		if (now - last > max_gap)
			max_gap = now - last;
		last = now;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[NSLEEPERS], ticker;
	char reason[1024] = "";

	sigset_t term;

	tgt_init(argc, argv);
	if (argc > 2 && strcmp(argv[2], "raw") == 0)
		nsleepers = NSLEEPERS;
	/* Only the main thread takes SIGTERM: in a sleeper it would end the
	 * sleep with EINTR. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	if (pthread_create(&ticker, NULL, run_ticker, NULL) != 0)
		tgt_fail("pthread_create ticker");
	for (int i = 0; i < nsleepers; i++)
		if (pthread_create(&th[i], NULL, run_sleeper, &sl[i]) != 0)
			tgt_fail("pthread_create %s", names[i]);
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < nsleepers; i++)
		pthread_join(th[i], NULL);
	atomic_store(&all_done, 1);
	pthread_join(ticker, NULL);

	for (int i = 0; i < nsleepers && !reason[0]; i++) {
		struct sleeper *s = &sl[i];

		if (s->ret != 0)
			snprintf(reason, sizeof(reason), "%s returned %d (%s) after %.3f s",
				 names[i], s->ret, strerror(s->err), s->elapsed);
		else if (s->elapsed < REQ_S)
			snprintf(reason, sizeof(reason), "%s returned after %.3f s, asked %.0f s",
				 names[i], s->elapsed, REQ_S);
	}
	/* Restarted with what was left, the sleep lasts its request plus the
	 * time the process did not run; restarted in full, it lasts also what
	 * it had slept before the dump (at least 1 s: the test waits so). */
	if (!reason[0] && sl[REMSLEEP].elapsed - max_gap > REQ_S + 0.6)
		snprintf(reason, sizeof(reason),
			 "remsleep slept %.3f s with the process kept from running %.3f s at most: it slept its whole request again after the restore",
			 sl[REMSLEEP].elapsed, max_gap);
	if (reason[0])
		tgt_fail("%s", reason);
	tgt_log("remsleep %.3f s, longest gap %.3f s\n", sl[REMSLEEP].elapsed, max_gap);
	tgt_pass();
}
