/*
 * timens: CLOCK_MONOTONIC and CLOCK_BOOTTIME, and absolute timerfds on
 * them, across a restore that may be on "another boot". argv[2] is how
 * many seconds the test moves the clocks recorded in the images (it
 * rewrites them, as another boot would read them): after the restore
 * each clock must have gone on from its value before the dump plus that
 * much (and the few seconds the test takes, never minutes more), and the
 * timerfds must expire at the absolute times they were set to, read on
 * the clocks as the job sees them:
 *
 *   fd 50: CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, due 2 s after the clock's
 *          value at the start, moved if moved forward: its expiration is
 *          checked against timerfd_gettime, then waited for (with the
 *          clocks moved back, it is due hours after the restore: only
 *          checked not to have fired)
 *   fd 51: the same on CLOCK_BOOTTIME
 *   fd 52: CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, due 1 s after the start:
 *          with the clocks moved, long past after the restore, so it has
 *          fired
 *
 * and a thread asleep in clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)
 * until fd 50's expiration, which the dump interrupts and the restore
 * restarts with the same deadline: it must wake no earlier (and, with
 * the deadline near, wake).
 */
#include "target.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/timerfd.h>

#define NS 1000000000LL
#define TFD_MONO 50
#define TFD_BOOT 51
#define TFD_PAST 52
/* How much later than the dump plus the moved time a clock may read
 * after the restore: the test's own time, with room for a slow machine;
 * a clock that did not go on from the dump is off by the boot's age. */
#define SLACK_NS (300 * NS)
/* How far an expiration may be from the one set: the dump reads a
 * timer's time left and then its clock, microseconds apart unless gocr
 * is preempted in between; a timer not rebased is off by hours. */
#define GETTIME_SLACK_NS (200 * 1000 * 1000LL)

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		tgt_fail("clock_gettime %d: %s", (int)clock, strerror(errno));
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void place(int fd, int want, const char *what)
{
	if (fd < 0)
		tgt_fail("%s: %s", what, strerror(errno));
	if (fd != want) {
		if (dup2(fd, want) < 0)
			tgt_fail("dup2 %s: %s", what, strerror(errno));
		close(fd);
	}
}

static void arm(int fd, int64_t at, const char *what)
{
	struct itimerspec its = { .it_value = { at / NS, at % NS } };

	if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		tgt_fail("timerfd_settime %s: %s", what, strerror(errno));
}

static void check_clock(clockid_t clock, const char *name, int64_t before, int64_t moved)
{
	int64_t now = now_ns(clock), gone = now - before;

	if (gone < moved || gone > moved + SLACK_NS)
		tgt_fail("%s went on by %.3f s over the restore, want %lld s and at most %lld s more",
			 name, (double)gone / NS, (long long)(moved / NS), (long long)(SLACK_NS / NS));
}

/* The timer must expire at `at` on its clock: timerfd_gettime's time left
 * plus the clock now, and the clock once it has fired. */
static void check_timer(int fd, clockid_t clock, const char *name, int64_t at)
{
	struct itimerspec cur;
	uint64_t ticks;
	int64_t now = now_ns(clock), after, left;

	if (timerfd_gettime(fd, &cur) < 0)
		tgt_fail("timerfd_gettime %s: %s", name, strerror(errno));
	after = now_ns(clock);
	left = (int64_t)cur.it_value.tv_sec * NS + cur.it_value.tv_nsec;
	/* The time left was read between the two clock readings. */
	if (left > 0 && (now + left > at + GETTIME_SLACK_NS || after + left < at - GETTIME_SLACK_NS))
		tgt_fail("%s timer expires at %.3f s, set for %.3f s", name, (double)(now + left) / NS, (double)at / NS);
	if (at - now > 10 * NS) {
		if (left <= 0)
			tgt_fail("%s timer due in %.3f s has fired", name, (double)(at - now) / NS);
		return;
	}
	if (read(fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		tgt_fail("read %s timer: %s", name, strerror(errno));
	now = now_ns(clock);
	if (ticks != 1 || now < at)
		tgt_fail("%s timer fired %llu times at %.3f s, set for %.3f s", name,
			 (unsigned long long)ticks, (double)now / NS, (double)at / NS);
}

static int64_t sleep_until;
static volatile int64_t woke_at;

static void *sleeper(void *arg)
{
	struct timespec ts = { sleep_until / NS, sleep_until % NS };
	int r;

	(void)arg;
	while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	if (r != 0)
		woke_at = -r;
	else
		__atomic_store_n(&woke_at, now_ns(CLOCK_MONOTONIC), __ATOMIC_SEQ_CST);
	return NULL;
}

/* The sleeping thread must wake at its deadline on the job's clock: not
 * before, and (a near deadline) not hours after either. */
static void check_sleeper(pthread_t th)
{
	int64_t now = now_ns(CLOCK_MONOTONIC);

	if (sleep_until - now > 10 * NS) {
		if (woke_at != 0)
			tgt_fail("clock_nanosleep until %.3f s woke at %.3f s", (double)sleep_until / NS,
				 (double)woke_at / NS);
		return;
	}
	pthread_join(th, NULL);
	if (woke_at < 0)
		tgt_fail("clock_nanosleep: %s", strerror((int)-woke_at));
	if (woke_at < sleep_until)
		tgt_fail("clock_nanosleep until %.3f s woke at %.3f s", (double)sleep_until / NS, (double)woke_at / NS);
}

int main(int argc, char **argv)
{
	int64_t moved, ahead, mono, boot;
	uint64_t ticks;
	pthread_t th;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: timens RESULT_PATH SECONDS_MOVED");
	moved = atoll(argv[2]) * NS;
	place(timerfd_create(CLOCK_MONOTONIC, 0), TFD_MONO, "monotonic timerfd");
	place(timerfd_create(CLOCK_BOOTTIME, 0), TFD_BOOT, "boottime timerfd");
	place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), TFD_PAST, "past timerfd");
	mono = now_ns(CLOCK_MONOTONIC);
	boot = now_ns(CLOCK_BOOTTIME);
	ahead = (moved > 0 ? moved : 0) + 2 * NS;
	arm(TFD_MONO, mono + ahead, "monotonic");
	arm(TFD_BOOT, boot + ahead, "boottime");
	if (moved > 0)
		arm(TFD_PAST, mono + NS, "past");
	sleep_until = mono + ahead;
	if ((errno = pthread_create(&th, NULL, sleeper, NULL)) != 0)
		tgt_fail("pthread_create: %s", strerror(errno));
	tgt_ready();
	tgt_wait();

	check_clock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC", mono, moved);
	check_clock(CLOCK_BOOTTIME, "CLOCK_BOOTTIME", boot, moved);
	if (moved > 0 && read(TFD_PAST, &ticks, sizeof(ticks)) != sizeof(ticks))
		tgt_fail("a timer due %lld s before the moved clock's time has not fired: %s",
			 (long long)((moved - NS) / NS), strerror(errno));
	check_timer(TFD_MONO, CLOCK_MONOTONIC, "CLOCK_MONOTONIC", mono + ahead);
	check_timer(TFD_BOOT, CLOCK_BOOTTIME, "CLOCK_BOOTTIME", boot + ahead);
	check_sleeper(th);
	tgt_pass();
}
