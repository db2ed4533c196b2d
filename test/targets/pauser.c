/*
 * pauser: blocked in pause(2) at dump time. pause returns only when a
 * handler ran (pause(2)), so it must return -1/EINTR exactly once, after our
 * SIGTERM handler set the flag; any earlier wake-up means the restore
 * delivered something or broke the syscall.
 */
#include "target.h"

int main(int argc, char **argv)
{
	int r, err;

	tgt_init(argc, argv);
	tgt_ready();
	r = pause();
	err = errno;
	if (!got_term)
		tgt_fail_on_term("pause returned %d (%s) before SIGTERM", r, strerror(err));
	if (r != -1 || err != EINTR)
		tgt_fail("pause returned %d (%s), want -1 EINTR", r, strerror(err));
	tgt_pass();
}
