/*
 * vforker: a process caught in vfork. The child, which shares the
 * parent's memory and stack until it execs or exits (man 2 vfork), creates
 * the ready file and then sleeps, without exec, until RESULT_PATH.release
 * exists; meanwhile the parent waits in vfork in state D, where no signal
 * but SIGKILL reaches it (kernel/fork.c wait_for_vfork_done). The child
 * then exits 7. The parent, back from vfork, checks that vfork returned
 * that child and that it exited 7, waits for SIGTERM and reports.
 *
 * The child makes only system calls that touch nothing of the parent's
 * but errno (prctl, ready file, access, nanosleep), so the parent's state
 * is its own when it resumes.
 */
#include "target.h"

#include <sys/prctl.h>
#include <sys/wait.h>

#define CHILD_STATUS 7

int main(int argc, char **argv)
{
	static char release[4096 + 16];
	int status;
	pid_t parent, pid, waited;

	tgt_init(argc, argv);
	snprintf(release, sizeof(release), "%s.release", argv[1]);
	parent = getpid();
	pid = vfork();
	if (pid < 0)
		tgt_fail("vfork: %s", strerror(errno));
	if (pid == 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		/* A test that ends early kills the parent (SIGKILL reaches a
		 * vfork parent): the child must not outlive it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		tgt_ready();
		while (access(release, F_OK) != 0)
			nanosleep(&ts, NULL);
		_exit(CHILD_STATUS);
	}
	do
		waited = waitpid(pid, &status, 0);
	while (waited < 0 && errno == EINTR);
	if (waited != pid)
		tgt_fail_on_term("waitpid(%d) = %d: %s", pid, waited, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_STATUS)
		tgt_fail_on_term("the vfork child ended with status %#x, want exit %d", status, CHILD_STATUS);
	tgt_wait();
	tgt_pass();
}
