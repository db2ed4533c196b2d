/*
 * restoredstate: state that a restore used to change without a word, set
 * up so that the target can tell, after a restore, that it came back
 * exactly.
 *
 * usage: restoredstate RESULT_PATH MODE
 *   timerfd-abs   fd 60: CLOCK_REALTIME, TFD_TIMER_ABSTIME|CANCEL_ON_SET,
 *                 due in an hour; fd 61: CLOCK_MONOTONIC, TFD_TIMER_ABSTIME,
 *                 due in an hour, every 10 s after; fd 62: CLOCK_MONOTONIC,
 *                 disarmed after a TFD_TIMER_ABSTIME settime. Each keeps
 *                 its settime flags, and the armed ones their absolute
 *                 expiration, however long the process was dumped.
 *   exit-signal   a child made with clone(2) whose exit signal is SIGUSR1:
 *                 after a restore its parent still gets SIGUSR1, not
 *                 SIGCHLD, when it exits.
 */
#include "target.h"

#include <sched.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define TFD_REALTIME 60
#define TFD_MONOTONIC 61
#define TFD_DISARMED 62
#define HOUR_NS (3600LL * 1000000000LL)
/* How far the restored expiration may be from the dumped one: a timer
 * restored relative would be late by the whole time spent dumped. */
#define SLACK_NS (200LL * 1000000LL)

static long long now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_ts(long long ns)
{
	struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };
	return ts;
}

static void place(int fd, int want, const char *what)
{
	if (fd < 0)
		tgt_fail("%s: %s", what, strerror(errno));
	if (dup2(fd, want) != want)
		tgt_fail("dup2 %s: %s", what, strerror(errno));
	close(fd);
}

static long long expiry[2];

static void check_timer(int fd, clockid_t clock, const char *flags, long long want_expiry, long long interval)
{
	char info[1024], line[64];
	tgt_read_fdinfo(fd, info, sizeof(info));
	snprintf(line, sizeof(line), "settime flags: %s\n", flags);
	if (!strstr(info, line))
		tgt_fail("timerfd %d: fdinfo %s, want %s", fd, info, line);
	struct itimerspec cur;
	if (timerfd_gettime(fd, &cur) < 0)
		tgt_fail("timerfd_gettime %d: %s", fd, strerror(errno));
	long long left = cur.it_value.tv_sec * 1000000000LL + cur.it_value.tv_nsec;
	long long every = cur.it_interval.tv_sec * 1000000000LL + cur.it_interval.tv_nsec;
	if (every != interval)
		tgt_fail("timerfd %d: interval %lld ns, want %lld", fd, every, interval);
	if (want_expiry == 0) {
		if (left != 0)
			tgt_fail("timerfd %d: armed (%lld ns left), want disarmed", fd, left);
		return;
	}
	long long got = now_ns(clock) + left;
	if (got < want_expiry - SLACK_NS || got > want_expiry + SLACK_NS)
		tgt_fail("timerfd %d: expires at %lld, want %lld (off by %lld ns)", fd, got, want_expiry, got - want_expiry);
}

static void run_timerfd_abs(void)
{
	place(timerfd_create(CLOCK_REALTIME, 0), TFD_REALTIME, "realtime timerfd");
	place(timerfd_create(CLOCK_MONOTONIC, 0), TFD_MONOTONIC, "monotonic timerfd");
	place(timerfd_create(CLOCK_MONOTONIC, 0), TFD_DISARMED, "disarmed timerfd");
	expiry[0] = now_ns(CLOCK_REALTIME) + HOUR_NS;
	expiry[1] = now_ns(CLOCK_MONOTONIC) + HOUR_NS;
	struct itimerspec rt = { { 0, 0 }, ns_ts(expiry[0]) };
	struct itimerspec mono = { { 10, 0 }, ns_ts(expiry[1]) };
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };
	if (timerfd_settime(TFD_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &rt, NULL) < 0 ||
	    timerfd_settime(TFD_MONOTONIC, TFD_TIMER_ABSTIME, &mono, NULL) < 0 ||
	    timerfd_settime(TFD_DISARMED, TFD_TIMER_ABSTIME, &off, NULL) < 0)
		tgt_fail("timerfd_settime: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	check_timer(TFD_REALTIME, CLOCK_REALTIME, "03", expiry[0], 0);
	check_timer(TFD_MONOTONIC, CLOCK_MONOTONIC, "01", expiry[1], 10LL * 1000000000LL);
	check_timer(TFD_DISARMED, CLOCK_MONOTONIC, "01", 0, 0);
	tgt_pass();
}

static volatile sig_atomic_t got_usr1, got_chld;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1++;
	else
		got_chld++;
}

static void run_exit_signal(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGCHLD, &sa, NULL) < 0)
		tgt_fail("sigaction: %s", strerror(errno));
	/* fork(2) with SIGUSR1 as the exit signal (clone(2), flags' low byte). */
	pid_t pid = syscall(SYS_clone, SIGUSR1, NULL, NULL, NULL, 0);
	if (pid < 0)
		tgt_fail("clone: %s", strerror(errno));
	if (pid == 0) {
		for (;;) {
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
		}
	}
	tgt_ready();
	tgt_wait();
	/* stat field 38 (man 5 proc_pid_stat), after the last ')'. */
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int f = open(path, O_RDONLY);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (n <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	int field = 2, exit_signal = -1;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
		if (++field == 38)
			exit_signal = atoi(tok);
	if (exit_signal != SIGUSR1)
		tgt_fail("child %d has exit signal %d, want SIGUSR1 (%d)", pid, exit_signal, SIGUSR1);
	kill(pid, SIGKILL);
	int st;
	/* A child whose exit signal is not SIGCHLD is waited for with
	 * __WALL (man 2 wait). Its signal is handled before waitpid returns. */
	if (waitpid(pid, &st, __WALL) != pid)
		tgt_fail("waitpid: %s", strerror(errno));
	if (got_usr1 != 1 || got_chld != 0)
		tgt_fail("the child's exit sent SIGUSR1 %d times and SIGCHLD %d times, want 1 and 0", (int)got_usr1, (int)got_chld);
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: restoredstate RESULT_PATH MODE");
	if (strcmp(argv[2], "timerfd-abs") == 0)
		run_timerfd_abs();
	else if (strcmp(argv[2], "exit-signal") == 0)
		run_exit_signal();
	tgt_fail("unknown mode %s", argv[2]);
}
