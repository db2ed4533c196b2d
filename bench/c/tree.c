/* tree READY_PATH N: a tree of N processes: the root forks children that
 * each fork a few of their own (breadth-first, up to 4 children each), so
 * the tree is several levels deep, as a real process tree is. Every
 * process dies with its parent (PR_SET_PDEATHSIG) so none outlives the
 * benchmark even if killing by PID missed one. */
#include "bench.h"
#include <signal.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tree READY_PATH N\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	/* Process i (0 is the root) has children 4i+1 .. 4i+4 below n. */
	long me = 0;
	int pipefd[2];
	if (pipe(pipefd) != 0)
		die("pipe");
	for (long c = 4 * me + 1; c <= 4 * me + 4 && c < n; c++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			me = c;
			c = 4 * me; /* the loop's c++ makes it 4*me+1 */
			continue;
		}
	}
	/* Every process writes one byte when its own children exist; the
	 * root waits for all n-1 others. */
	if (me != 0) {
		close(pipefd[0]);
		if (write(pipefd[1], "x", 1) != 1)
			die("write");
		close(pipefd[1]);
		wait_forever();
	}
	close(pipefd[1]);
	char b;
	for (long i = 1; i < n; i++)
		if (read(pipefd[0], &b, 1) != 1)
			die("read");
	close(pipefd[0]);
	ready(argv[1]);
	wait_forever();
}
