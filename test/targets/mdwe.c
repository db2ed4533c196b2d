/*
 * mdwe: memory-deny-write-execute (PR_SET_MDWE, Linux 6.3): a child that
 * set PR_MDWE_REFUSE_EXEC_GAIN itself, the parent with
 * PR_MDWE_NO_INHERIT too, and a child forked under that, which does not
 * inherit it (man 2 PR_SET_MDWE). After restore each checks PR_GET_MDWE
 * and that the kernel still refuses a writable and executable mapping
 * (EACCES), or for the child without it, allows one.
 *
 * Usage: mdwe RESULT_PATH
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define TGT_PR_SET_MDWE 65
#define TGT_PR_GET_MDWE 66

static int check(const char *who, long want)
{
	long got = prctl(TGT_PR_GET_MDWE, 0, 0, 0, 0);
	if (got != want) {
		tgt_log("%s: PR_GET_MDWE is %ld, want %ld\n", who, got, want);
		return 1;
	}
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int refused = m == MAP_FAILED && errno == EACCES;
	if (m != MAP_FAILED)
		munmap(m, 4096);
	if (refused != (want != 0)) {
		tgt_log("%s: a writable and executable mapping %s\n", who, refused ? "is refused" : "is allowed");
		return 1;
	}
	return 0;
}

static pid_t spawn(long flags, long want)
{
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (flags && prctl(TGT_PR_SET_MDWE, flags, 0, 0, 0) < 0)
			_exit(2);
		tgt_wait();
		_exit(check("child", want));
	}
	return pid;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	/* A child that sets REFUSE_EXEC_GAIN itself, then the parent with
	 * NO_INHERIT too, and a child of it forked under that, without. */
	pid_t own = spawn(1, 1);
	if (prctl(TGT_PR_SET_MDWE, 3, 0, 0, 0) < 0)
		tgt_fail("PR_SET_MDWE 3: %s", strerror(errno));
	pid_t none = spawn(0, 0);
	if (check("before the dump", 3))
		tgt_fail("PR_SET_MDWE did not take (see the log)");
	tgt_ready();
	tgt_wait();
	int bad = check("parent", 3);
	pid_t kids[2] = { own, none };
	for (int i = 0; i < 2; i++) {
		int st;
		kill(kids[i], SIGTERM);
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	}
	if (bad)
		tgt_fail("memory-deny-write-execute is not as before the dump (see the log)");
	tgt_pass();
}
