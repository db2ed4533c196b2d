/*
 * sharedtables: a child made with clone(2) sharing one of its parent's
 * tables without being a thread: "files" (CLONE_FILES), "fs" (CLONE_FS),
 * "vm" (CLONE_VM) or "sighand" (CLONE_VM|CLONE_SIGHAND). A dump must refuse
 * it: restored per process, the two would no longer share.
 *
 * usage: sharedtables RESULT_PATH MODE
 */
#include "target.h"

#include <sched.h>
#include <sys/wait.h>

static char child_stack[64 * 1024] __attribute__((aligned(16)));

static int child(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: sharedtables RESULT_PATH files|fs|vm|sighand");
	int flags;
	if (strcmp(argv[2], "files") == 0)
		flags = CLONE_FILES;
	else if (strcmp(argv[2], "fs") == 0)
		flags = CLONE_FS;
	else if (strcmp(argv[2], "vm") == 0)
		flags = CLONE_VM;
	else if (strcmp(argv[2], "sighand") == 0)
		flags = CLONE_VM | CLONE_SIGHAND;
	else
		tgt_fail("unknown mode %s", argv[2]);
	pid_t pid = clone(child, child_stack + sizeof(child_stack), flags | SIGCHLD, NULL);
	if (pid < 0)
		tgt_fail("clone: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	kill(pid, SIGKILL);
	int st;
	if (waitpid(pid, &st, 0) != pid)
		tgt_fail("waitpid: %s", strerror(errno));
	tgt_pass();
}
