/*
 * waiter: the main thread is blocked in wait4(2) on its child at dump
 * time. The child exits with status 7 once RESULT_PATH.go exists (the test
 * creates it after the restore). wait4 must resume as the kernel restarts
 * it after a stop (-ERESTARTSYS): never EINTR before our SIGTERM, and it
 * must return that child with that status.
 */
#include <sys/wait.h>
#include "target.h"

int main(int argc, char **argv)
{
	char go[4200];
	pid_t child;
	int status = 0;

	tgt_init(argc, argv);
	snprintf(go, sizeof(go), "%s.go", argv[1]);
	child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		while (access(go, F_OK) != 0)
			usleep(20000);
		_exit(7);
	}
	tgt_ready();
	for (;;) {
		pid_t w = wait4(child, &status, 0, NULL);
		if (w == child)
			break;
		if (w < 0 && errno == EINTR && got_term)
			tgt_fail("SIGTERM came before the child exited: was %s created?", go);
		tgt_fail_on_term("wait4 returned %d (%s) before the child exited", (int)w, strerror(errno));
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
		tgt_fail("child status %#x, want exit 7", status);
	while (!got_term)
		pause();
	tgt_pass();
}
