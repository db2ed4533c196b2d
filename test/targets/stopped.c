/*
 * stopped: a job stopped by job control (man 7 signal, "stop"), dumped and
 * restored while stopped.
 *
 * The root P and its child C each run a second thread that counts, and
 * count their own SIGCONT deliveries in a handler. C leads a process group
 * of its own (so it is never orphaned, and SIGTSTP stops it: man 7
 * credentials) and raises SIGTSTP; P waits until waitpid(WUNTRACED) reports
 * C stopped by it, creates the ready file and raises SIGSTOP. The harness
 * dumps both while stopped, restores them, requires every thread of both
 * to be in state T, and sends P SIGCONT. Then:
 *   P  requires its SIGCONT handler to have run exactly once by the time
 *      raise() returns (0: it ran on without being continued; 2: it was
 *      continued twice) and its thread to count again; requires C to be
 *      stopped still (state T), and a waitpid(WUNTRACED|WNOHANG) of C to
 *      report nothing, or C stopped by SIGTSTP (a restore gives a parent
 *      the stop report again, docs/INTERNALS.md); sends C SIGCONT and
 *      requires waitpid(WCONTINUED) to report it continued;
 *   C  requires the same of its own handler and thread, and exits 0 (10+
 *      on a failure, named in P's verdict).
 * After SIGTERM P reaps C with status 0 and passes.
 *
 * Usage: stopped RESULT_PATH
 */
#include "target.h"

#include <pthread.h>
#include <sys/wait.h>

static volatile sig_atomic_t conts;
static volatile unsigned long ticks;

static void on_cont(int sig)
{
	(void)sig;
	conts++;
}

static void *ticker(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
		ticks++;
	}
	return NULL;
}

/*
 * Starts the counting thread and the SIGCONT counter; 0 or an errno. The
 * thread blocks SIGCONT (a new thread inherits its creator's mask:
 * pthread_create(3)): a process-directed signal is handled by any thread
 * not blocking it (signal(7)), and were it the counting thread's turn, the
 * main thread could return from raise() before that handler ran.
 */
static int start_ticker(void)
{
	struct sigaction sa;
	sigset_t cont, old;
	pthread_t th;
	int err;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cont;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCONT, &sa, NULL) < 0)
		return errno;
	sigemptyset(&cont);
	sigaddset(&cont, SIGCONT);
	if ((err = pthread_sigmask(SIG_BLOCK, &cont, &old)) != 0)
		return err;
	err = pthread_create(&th, NULL, ticker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

/* Whether the ticker thread counts: it runs, it was not left stopped. */
static int ticking(void)
{
	unsigned long t0 = ticks;
	for (int i = 0; i < 500 && ticks == t0; i++) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return ticks != t0;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

static void child_main(void)
{
	if (start_ticker() != 0)
		_exit(10);
	raise(SIGTSTP);
	if (conts != 1)
		_exit(11 + (conts > 1)); /* 11: not continued, 12: continued twice */
	if (!ticking())
		_exit(13);
	_exit(0);
}

int main(int argc, char **argv)
{
	int status, err;
	pid_t child;
	char state;

	tgt_init(argc, argv);
	if ((err = start_ticker()) != 0)
		tgt_fail("start ticker: %s", strerror(err));
	child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		setpgid(0, 0);
		child_main();
	}
	/* Both sides, so the group exists whichever runs first. */
	if (setpgid(child, child) < 0 && errno != EACCES)
		tgt_fail("setpgid child: %s", strerror(errno));
	if (waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTSTP)
		tgt_fail("child %d: waitpid status %#x, want stopped by SIGTSTP", child, status);
	tgt_log("stopped: child %d stopped, stopping %d\n", child, getpid());
	tgt_ready();
	raise(SIGSTOP);

	if (conts != 1)
		tgt_fail_on_term("SIGCONT handled %d times when raise(SIGSTOP) returned, want 1 (0: ran on without SIGCONT)",
				 (int)conts);
	if (!ticking())
		tgt_fail_on_term("thread does not count after SIGCONT");
	if ((state = proc_state(child)) != 'T')
		tgt_fail_on_term("child %d is in state %c after the root was continued, want T", child, state);
	switch (waitpid(child, &status, WUNTRACED | WNOHANG)) {
	case 0:
		break;
	case -1:
		tgt_fail_on_term("waitpid WUNTRACED child %d: %s", child, strerror(errno));
	default:
		if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTSTP)
			tgt_fail_on_term("child %d: waitpid WUNTRACED status %#x, want stopped by SIGTSTP", child, status);
		tgt_log("stopped: the child's stop was reported again\n");
	}
	if (kill(child, SIGCONT) < 0)
		tgt_fail_on_term("SIGCONT child %d: %s", child, strerror(errno));
	if (waitpid(child, &status, WCONTINUED) != child || !WIFCONTINUED(status))
		tgt_fail_on_term("child %d: waitpid WCONTINUED status %#x, want continued", child, status);
	tgt_wait();
	if (waitpid(child, &status, 0) != child)
		tgt_fail("reap child %d: %s", child, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tgt_fail("child exit status %#x, want 0 (11: ran on without SIGCONT, 12: SIGCONT twice, 13: its "
			 "thread does not count)",
			 status);
	tgt_pass();
}
