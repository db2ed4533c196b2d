/*
 * posixtimers: timer_create(2) timers come back under the same IDs, with
 * their clocks, notifications (a signal with its value, a signal to one
 * thread, none), intervals and what was left of them, and go on firing.
 *
 *   0: CLOCK_MONOTONIC, SIGUSR1 with sival_int 42, every 50 ms
 *   1: CLOCK_REALTIME, SIGEV_NONE, one shot in 600 s
 *   2: created and deleted, so the IDs have a gap
 *   3: CLOCK_BOOTTIME, SIGRTMIN+2 to the second thread, every 3600 s
 *   4: CLOCK_MONOTONIC, SIGUSR2, disarmed
 *   5: CLOCK_MONOTONIC, SIGRTMIN+4 (blocked), every 20 ms, its signal
 *      queued since before the dump
 *
 * Checked after the restore: /proc/self/timers reads exactly as before
 * (IDs, signals and values, the thread notified, clocks); each timer's
 * interval is as set and the one-shot has no more time left than before
 * the dump; timer 0 keeps delivering SIGUSR1 with its value and ID; timer
 * 5's signal is still the timer's own: 100 ms after the restore the first
 * SIGRTMIN+4 taken counts the expirations since as its overrun, where an
 * ordinary copy of the dumped signal would come first with none.
 *
 * With "overrun" as its second argument it instead holds a timer whose
 * last signal came with an overrun count, which a dump must refuse.
 *
 * With "itimers" it instead sets the three interval timers (setitimer:
 * ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF), each far from expiring, with
 * an interval of its own: after the restore each has its interval, and
 * some time left, no more than before the dump. The kernel adds a tick
 * to the value a CPU-time timer (virtual, prof) is set to (getitimer
 * right after setitimer reads it a tick longer), which the restore takes
 * off again: not a microsecond more. The CPU-time ones count the
 * process's CPU time in whole ticks (kernel/time/itimer.c get_cpu_itimer
 * samples it at ticks): what the dump and restore ran in the process
 * takes a tick from them now and then, so less is allowed, by far less
 * than a second.
 */
#include "target.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/time.h>

static timer_t tm[6];
static struct itimerspec oneshot; /* timer 1 before the dump */
static volatile sig_atomic_t ticks, bad_value, bad_id;
static volatile pid_t second_tid;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_value.sival_int != 42)
		bad_value = 1;
	if (si->si_code != SI_TIMER || si->si_timerid != 0)
		bad_id = 1;
	ticks++;
}

static void *second(void *arg)
{
	(void)arg;
	second_tid = (pid_t)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static void read_timers(char *buf, size_t cap)
{
	int fd = open("/proc/self/timers", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open /proc/self/timers: %s", strerror(errno));
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
}

static void make_timer(int i, clockid_t clock, struct sigevent *sev, long first_ms, long every_ms)
{
	if (timer_create(clock, sev, &tm[i]) < 0)
		tgt_fail("timer_create %d: %s", i, strerror(errno));
	if ((long)(intptr_t)tm[i] != i)
		tgt_fail("timer %d got ID %ld", i, (long)(intptr_t)tm[i]);
	struct itimerspec its = {
		.it_value = { first_ms / 1000, (first_ms % 1000) * 1000000 },
		.it_interval = { every_ms / 1000, (every_ms % 1000) * 1000000 },
	};
	if (timer_settime(tm[i], 0, &its, NULL) < 0)
		tgt_fail("timer_settime %d: %s", i, strerror(errno));
}

static long long ms(struct timespec ts)
{
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_interval(int i, long long want_ms)
{
	struct itimerspec its;
	if (timer_gettime(tm[i], &its) < 0)
		tgt_fail("timer_gettime %d: %s (the timer is gone)", i, strerror(errno));
	if (ms(its.it_interval) != want_ms)
		tgt_fail("timer %d interval is %lld ms, want %lld", i, ms(its.it_interval), want_ms);
}

/* A 1 ms timer whose SIGUSR2 stays blocked for 50 ms: when it is taken,
 * timer_getoverrun reports the expirations that found it pending. The
 * timer keeps running (disarming it would drop its pending signal), its
 * signal blocked. */
static void hold_overrun(void)
{
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2 };
	make_timer(0, CLOCK_MONOTONIC, &sev, 1, 1);
	usleep(50000);
	int sig;
	sigwait(&usr2, &sig);
	if (timer_getoverrun(tm[0]) <= 0)
		tgt_fail("no overrun after 50 ms of a blocked 1 ms timer");
	tgt_ready();
	tgt_wait();
	tgt_pass();
}

/* Timer 5 expires at least four times in 100 ms: the kernel counts them
 * as the overrun of the one signal it has queued (man 2 timer_getoverrun). */
static void check_queued_signal(void)
{
	struct timespec wait = { 0, 100 * 1000 * 1000 }, none = { 0, 0 };
	while (nanosleep(&wait, &wait) < 0 && errno == EINTR)
		;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	siginfo_t si;
	if (sigtimedwait(&set, &si, &none) != SIGRTMIN + 4)
		tgt_fail("timer 5's SIGRTMIN+4 is not pending after the restore: %s", strerror(errno));
	if (si.si_code != SI_TIMER || si.si_timerid != 5 || si.si_value.sival_int != 5)
		tgt_fail("the SIGRTMIN+4 taken is not timer 5's (code %d, timer %d, value %d)", si.si_code,
			 si.si_timerid, si.si_value.sival_int);
	if (si.si_overrun < 3)
		tgt_fail("timer 5's signal came with overrun %d after 100 ms of a 20 ms timer: it is not the timer's own",
			 si.si_overrun);
	check_interval(5, 20);
}

static void hold_itimers(void)
{
	static const int which[3] = { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF };
	static const char *names[3] = { "ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF" };
	struct itimerval before[3], now;
	/* The tick the kernel adds, as setitimer of 1 s reads back. */
	struct itimerval one = { .it_value = { .tv_sec = 1 } };
	if (setitimer(ITIMER_VIRTUAL, &one, NULL) < 0 || getitimer(ITIMER_VIRTUAL, &now) < 0)
		tgt_fail("setitimer ITIMER_VIRTUAL: %s", strerror(errno));
	long long tick = now.it_value.tv_sec * 1000000LL + now.it_value.tv_usec - 1000000;
	if (tick < 0)
		tick = 0;
	for (int i = 0; i < 3; i++) {
		struct itimerval set = { .it_interval = { .tv_sec = 7 + i }, .it_value = { .tv_sec = 600 + 100 * i } };
		if (setitimer(which[i], &set, NULL) < 0)
			tgt_fail("setitimer %s: %s", names[i], strerror(errno));
	}
	for (int i = 0; i < 3; i++)
		getitimer(which[i], &before[i]);
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < 3; i++) {
		if (getitimer(which[i], &now) < 0)
			tgt_fail("getitimer %s: %s", names[i], strerror(errno));
		if (now.it_interval.tv_sec != 7 + i || now.it_interval.tv_usec != 0)
			tgt_fail("%s interval is %ld.%06ld s, want %d s", names[i], (long)now.it_interval.tv_sec,
				 (long)now.it_interval.tv_usec, 7 + i);
		long long left = now.it_value.tv_sec * 1000000LL + now.it_value.tv_usec;
		long long was = before[i].it_value.tv_sec * 1000000LL + before[i].it_value.tv_usec;
		if (left <= 0 || left > was)
			tgt_fail("%s has %lld us left, had %lld before the dump (a tick is %lld us)", names[i], left, was,
				 tick);
		if (which[i] != ITIMER_REAL && left < was - 1000000)
			tgt_fail("%s has %lld us left, a second less than the %lld it had before the dump", names[i], left, was);
	}
	tgt_pass();
}

int main(int argc, char **argv)
{
	static char before[4096], after[4096];
	tgt_init(argc, argv);
	if (argc > 2 && strcmp(argv[2], "overrun") == 0)
		hold_overrun();
	if (argc > 2 && strcmp(argv[2], "itimers") == 0)
		hold_itimers();

	struct sigaction sa = { .sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		tgt_fail("sigaction: %s", strerror(errno));
	/* The second thread's signal and SIGUSR2 stay pending-or-blocked:
	 * timer 3 fires only in an hour, timer 4 never. */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGRTMIN + 2);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 4);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, second, NULL) != 0)
		tgt_fail("pthread_create");
	while (!second_tid)
		usleep(1000);

	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	sev.sigev_value.sival_int = 42;
	make_timer(0, CLOCK_MONOTONIC, &sev, 50, 50);
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	make_timer(1, CLOCK_REALTIME, &none, 600000, 0);
	make_timer(2, CLOCK_MONOTONIC, &none, 0, 0);
	struct sigevent thr = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 2 };
	thr._sigev_un._tid = second_tid;
	make_timer(3, CLOCK_BOOTTIME, &thr, 3600000, 3600000);
	struct sigevent usr2 = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2 };
	make_timer(4, CLOCK_MONOTONIC, &usr2, 0, 0);
	if (timer_delete(tm[2]) < 0)
		tgt_fail("timer_delete: %s", strerror(errno));
	struct sigevent rt4 = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 4 };
	rt4.sigev_value.sival_int = 5;
	make_timer(5, CLOCK_MONOTONIC, &rt4, 20, 20);
	for (sigset_t p;;) {
		if (sigpending(&p) == 0 && sigismember(&p, SIGRTMIN + 4))
			break;
		usleep(1000);
	}

	read_timers(before, sizeof(before));
	timer_gettime(tm[1], &oneshot);
	tgt_ready();
	tgt_wait();

	read_timers(after, sizeof(after));
	if (strcmp(before, after) != 0)
		tgt_fail("/proc/self/timers differs after restore:\nbefore:\n%s\nafter:\n%s", before, after);
	check_interval(0, 50);
	check_interval(1, 0);
	check_interval(3, 3600000);
	check_interval(4, 0);
	struct itimerspec its;
	timer_gettime(tm[1], &its);
	if (ms(its.it_value) <= 0 || ms(its.it_value) > ms(oneshot.it_value))
		tgt_fail("one-shot timer has %lld ms left, had %lld before the dump", ms(its.it_value), ms(oneshot.it_value));
	timer_gettime(tm[3], &its);
	if (ms(its.it_value) <= 0)
		tgt_fail("the thread's timer is disarmed");
	timer_gettime(tm[4], &its);
	if (ms(its.it_value) != 0)
		tgt_fail("the disarmed timer has %lld ms left", ms(its.it_value));
	int from = ticks;
	for (int i = 0; i < 50 && ticks < from + 3; i++)
		usleep(20000);
	if (ticks < from + 3)
		tgt_fail("timer 0 fired %d times in a second after restore, want 3 or more", ticks - from);
	if (bad_value)
		tgt_fail("a SIGUSR1 from timer 0 had another sival_int than 42");
	if (bad_id)
		tgt_fail("a SIGUSR1 from timer 0 was not SI_TIMER from timer 0");
	check_queued_signal();
	tgt_pass();
}
