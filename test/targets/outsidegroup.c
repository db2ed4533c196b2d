/*
 * outsidegroup: processes in a process group led from outside the dump.
 *
 *   root   in the group it was started in, led by the harness (mode
 *          "root"); a group of its own (mode "other", started so)
 *   └── leader   setpgid(0, 0): a group of its own
 *       └── member   mode "root": joins the root's group (led from
 *                    outside), so its parent is in another group;
 *                    mode "other": joins group PGID (led from outside,
 *                    and not the root's)
 *
 * Mode "root" is restored: after it, member is in the root's group again
 * (whichever the restore gives the root), leader in its own, and all in
 * the root's session. Mode "other" is refused at dump, and runs on.
 * SIGTERM to the root is passed down; each process checks itself and
 * exits 0, or prints why and exits 1; the root writes the verdict.
 *
 * Usage: outsidegroup RESULT_PATH root | outsidegroup RESULT_PATH other PGID
 */
#include "target.h"

#include <sys/wait.h>

static pid_t root;

/* Waits for SIGTERM, passes it to child (if any) and returns 0 if the
 * child exited 0. */
static int pass_down(pid_t child)
{
	int st;
	tgt_wait();
	if (child <= 0)
		return 0;
	kill(child, SIGTERM);
	if (waitpid(child, &st, 0) != child)
		return 1;
	return !WIFEXITED(st) || WEXITSTATUS(st) != 0;
}

static int check(const char *who, pid_t want_pgid)
{
	if (getpgid(0) != want_pgid) {
		tgt_log("%s: in group %d, want %d\n", who, getpgid(0), want_pgid);
		return 1;
	}
	if (getsid(0) != getsid(root)) {
		tgt_log("%s: in session %d, the root in %d\n", who, getsid(0), getsid(root));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int p[2];
	char c = 0;
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: outsidegroup RESULT_PATH root|other [PGID]");
	int mode_root = strcmp(argv[2], "root") == 0;
	root = getpid();
	if (!mode_root && argc < 4)
		tgt_fail("usage: outsidegroup RESULT_PATH other PGID");
	pid_t join = mode_root ? getpgid(0) : (pid_t)atoi(argv[3]);
	if (pipe2(p, O_CLOEXEC) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	pid_t leader = fork();
	if (leader < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (leader == 0) {
		if (setpgid(0, 0) < 0)
			_exit(1);
		pid_t member = fork();
		if (member < 0)
			_exit(1);
		if (member == 0) {
			if (setpgid(0, join) < 0)
				_exit(1);
			close(p[0]);
			write(p[1], &c, 1);
			close(p[1]);
			int bad = pass_down(0);
			/* The root's group after a restore is the one the
			 * restore gave it. */
			_exit(bad | check("member", mode_root ? getpgid(root) : join));
		}
		close(p[0]);
		close(p[1]);
		int bad = pass_down(member);
		_exit(bad | check("leader", getpid()));
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		tgt_fail("member did not join group %d", join);
	close(p[0]);
	tgt_ready();
	if (pass_down(leader))
		tgt_fail("a process was not in its group or session (see the log)");
	tgt_pass();
}
