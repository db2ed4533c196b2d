/*
 * mdwe: memory-deny-write-execute (PR_SET_MDWE, Linux 6.3) with the
 * flags given, then a child forked under it, which inherits them unless
 * PR_MDWE_NO_INHERIT was among them (kernel/fork.c mmf_init_legacy_flags
 * / prctl(2)). After restore each checks PR_GET_MDWE and that the kernel
 * still refuses a writable and executable mapping (EACCES), or for a
 * child without it, allows one.
 *
 * Usage: mdwe RESULT_PATH FLAGS
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

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: mdwe RESULT_PATH FLAGS");
	long flags = strtol(argv[2], NULL, 0);
	if (prctl(TGT_PR_SET_MDWE, flags, 0, 0, 0) < 0)
		tgt_fail("PR_SET_MDWE %ld: %s", flags, strerror(errno));
	long inherited = (flags & 2) ? 0 : flags;
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		tgt_wait();
		_exit(check("child", inherited));
	}
	if (check("before the dump", flags))
		tgt_fail("PR_SET_MDWE did not take (see the log)");
	tgt_ready();
	tgt_wait();
	int st, bad = check("parent", flags);
	kill(child, SIGTERM);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bad = 1;
	if (bad)
		tgt_fail("memory-deny-write-execute is not as before the dump (see the log)");
	tgt_pass();
}
