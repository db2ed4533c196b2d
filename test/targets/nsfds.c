/*
 * nsfds: fds open on namespace files (/proc/self/ns/TYPE) come back
 * naming the namespace the process is in, with their flags.
 *
 *   own      an fd on each of its own namespaces (those this kernel has:
 *            net, uts, ipc, mnt, user, cgroup, pid, pid_for_children,
 *            time, time_for_children), some close-on-exec, one O_PATH,
 *            one O_NONBLOCK, and a dup of the net one: after the restore
 *            each has the st_ino of /proc/self/ns/TYPE, its flags and
 *            close-on-exec, and the dup is still the same open file
 *            description (O_NONBLOCK set on one shows on the other).
 *   owntime  own, in a time namespace of its own (offsets of 100 s), not
 *            gocr's: it unshares one and executes itself again, which
 *            moves it in (kernel/nsproxy.c exec_task_namespaces); the
 *            restored process opens its time fds itself.
 *   foreign  an fd on a uts namespace it is not in (a child's, which
 *            unshared it and was reaped): refused at dump; it still
 *            names that namespace.
 *
 * usage: nsfds RESULT_PATH MODE
 */
#include "target.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *types[] = { "net", "uts", "ipc", "mnt", "user", "cgroup",
			       "pid", "pid_for_children", "time", "time_for_children" };
#define NTYPES (int)(sizeof(types) / sizeof(types[0]))

static int fds[NTYPES];
static int flags[NTYPES];
static int fdflags[NTYPES];
static int dupfd = -1;

static void check(int i)
{
	char path[64];
	struct stat now, ns;
	snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i]);
	if (fstat(fds[i], &now) < 0 || stat(path, &ns) < 0)
		tgt_fail("%s: stat: %s", types[i], strerror(errno));
	if (now.st_ino != ns.st_ino || now.st_dev != ns.st_dev)
		tgt_fail("%s: fd %d names namespace %lu, the process is in %lu", types[i], fds[i],
			 (unsigned long)now.st_ino, (unsigned long)ns.st_ino);
	int fl = fcntl(fds[i], F_GETFL), fdf = fcntl(fds[i], F_GETFD);
	if (fl != flags[i] || fdf != fdflags[i])
		tgt_fail("%s: fd %d has F_GETFL %#o F_GETFD %d, was %#o %d", types[i], fds[i], fl, fdf,
			 flags[i], fdflags[i]);
}

static void run_own(void)
{
	int n = 0;
	for (int i = 0; i < NTYPES; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i]);
		if (access(path, F_OK) < 0) {
			fds[i] = -1;
			continue;
		}
		int fl = O_RDONLY;
		if (i % 2)
			fl |= O_CLOEXEC;
		if (strcmp(types[i], "ipc") == 0)
			fl = O_PATH;
		if (strcmp(types[i], "user") == 0)
			fl |= O_NONBLOCK;
		fds[i] = open(path, fl);
		if (fds[i] < 0)
			tgt_fail("open %s: %s", path, strerror(errno));
		flags[i] = fcntl(fds[i], F_GETFL);
		fdflags[i] = fcntl(fds[i], F_GETFD);
		n++;
	}
	dupfd = dup(fds[0]);
	if (dupfd < 0)
		tgt_fail("dup: %s", strerror(errno));
	for (int i = 0; i < NTYPES; i++)
		if (fds[i] >= 0)
			check(i);
	tgt_log("%d namespace fds\n", n);
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < NTYPES; i++)
		if (fds[i] >= 0)
			check(i);
	/* One open file description: its status flags are one. */
	if (fcntl(dupfd, F_SETFL, O_NONBLOCK) < 0)
		tgt_fail("F_SETFL on the dup: %s", strerror(errno));
	if (!(fcntl(fds[0], F_GETFL) & O_NONBLOCK))
		tgt_fail("the dup of the net fd is no longer its open file description");
	tgt_pass();
}

static void run_foreign(void)
{
	int go[2], done[2];
	if (pipe(go) < 0 || pipe(done) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		char c;
		if (unshare(CLONE_NEWUTS) < 0)
			_exit(1);
		if (write(go[1], "x", 1) != 1)
			_exit(1);
		read(done[0], &c, 1);
		_exit(0);
	}
	char c, path[64];
	if (read(go[0], &c, 1) != 1)
		tgt_fail("the child could not unshare its uts namespace");
	snprintf(path, sizeof(path), "/proc/%d/ns/uts", (int)child);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	if (write(done[1], "x", 1) != 1 || waitpid(child, NULL, 0) != child)
		tgt_fail("end the child: %s", strerror(errno));
	struct stat before, own;
	if (fstat(fd, &before) < 0 || stat("/proc/self/ns/uts", &own) < 0)
		tgt_fail("stat: %s", strerror(errno));
	if (before.st_ino == own.st_ino)
		tgt_fail("the child's uts namespace is the target's");
	tgt_ready();
	tgt_wait();
	struct stat now;
	if (fstat(fd, &now) < 0 || now.st_ino != before.st_ino)
		tgt_fail("fd %d no longer names the child's uts namespace", fd);
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: nsfds RESULT_PATH MODE");
	if (strcmp(argv[2], "owntime") == 0) {
		static const char offsets[] = "monotonic 100 0\nboottime 100 0\n";
		int fd;
		if (unshare(CLONE_NEWTIME) < 0 || (fd = open("/proc/self/timens_offsets", O_WRONLY)) < 0 ||
		    write(fd, offsets, sizeof(offsets) - 1) != (ssize_t)sizeof(offsets) - 1)
			tgt_fail("a time namespace of its own: %s", strerror(errno));
		close(fd);
		argv[2] = "own";
		execv("/proc/self/exe", argv);
		tgt_fail("execute itself again: %s", strerror(errno));
	}
	if (strcmp(argv[2], "own") == 0)
		run_own();
	else if (strcmp(argv[2], "foreign") == 0)
		run_foreign();
	tgt_fail("unknown mode %s", argv[2]);
}
