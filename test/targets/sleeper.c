/*
 * sleeper: the main thread sleeps in nanosleep(3 s) in a loop, so a dump
 * catches it inside the syscall. A restore must resume the sleep the way
 * the kernel restarts it after a stop (restart_syscall(2)): never EINTR
 * unless our own SIGTERM arrived, and never shorter than requested.
 */
#include "target.h"

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const struct timespec req = { 3, 0 };
	long completed = 0;

	tgt_init(argc, argv);
	tgt_ready();
	for (;;) {
		double start = mono(), elapsed;
		int r = nanosleep(&req, NULL);
		int err = errno;

		elapsed = mono() - start;
		if (r < 0 && err == EINTR && got_term)
			break;
		if (r < 0)
			tgt_fail_on_term("nanosleep %ld returned %s without SIGTERM after %.3f s",
				 completed + 1, strerror(err), elapsed);
		if (elapsed < 3.0)
			tgt_fail_on_term("nanosleep %ld returned 0 after %.6f s, want >= 3 s",
				 completed + 1, elapsed);
		completed++;
		if (got_term)
			break;
	}
	/* The harness waits longer than one sleep before SIGTERM, so at least
	 * one sleep must have run to completion (across the restore). */
	if (completed < 1)
		tgt_fail("no nanosleep completed before SIGTERM");
	tgt_pass();
}
