/*
 * takepid PID: a process unrelated to gocr that takes PID, so a test can
 * hold a PID a restore wants and see that a failed restore leaves it
 * alone. It creates a child with exactly that PID (clone3 set_tid, which
 * needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE, man 2 clone3), prints
 * "taken" once it exists, and waits for it; the child sleeps until it is
 * killed, and dies with takepid (PR_SET_PDEATHSIG) so no test leaves it
 * behind. Exit 3 if the PID is in use already.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: takepid PID\n");
		return 2;
	}
	pid_t want = (pid_t)atoi(argv[1]);
	pid_t self = getpid();
	struct clone_args ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (unsigned long)&want,
		.set_tid_size = 1,
	};
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		fprintf(stderr, "takepid: clone3 set_tid %d: %s\n", want, strerror(errno));
		return errno == EEXIST ? 3 : 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != self)
			_exit(1);
		for (;;)
			pause();
	}
	printf("taken\n");
	fflush(stdout);
	int status;
	while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}
