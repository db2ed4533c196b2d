/*
 * pathfds: fds that name a file without reading it, and files of the
 * process's own /proc, come back.
 *
 *   O_PATH fds of a regular file, a directory, /dev/null, a FIFO and (with
 *   O_NOFOLLOW) a symlink: same file, O_PATH kept, nothing opened;
 *   /proc/PID/stat of itself read part way, /proc/PID/ as a directory, and
 *   /proc/CHILD/status of its child: the same /proc files, of the same
 *   processes, at the same offsets; a dup of the /proc/PID/stat fd shares
 *   its open file description again (a seek through one moves the other).
 *   With OUTSIDE, a PID outside the dump, also /proc/OUTSIDE/status: still
 *   that process's after the restore.
 *
 * usage: pathfds RESULT_PATH DIR [OUTSIDE]
 */
#include "target.h"

#include <sys/stat.h>
#include <sys/wait.h>

enum { REG, DIR_, DEVNULL, FIFO, LINK, PSTAT, PDIR, PCHILD, N };
static const char *names[N] = { "regular", "directory", "/dev/null", "fifo", "symlink",
				"own stat", "own /proc dir", "child status" };
static int fds[N];
static char paths[N][4096];
static struct stat st[N];
static off_t pos[N];
static int flags[N];
static pid_t child;

static void check(int i)
{
	struct stat now;
	if (fstat(fds[i], &now) < 0)
		tgt_fail("%s: fstat: %s", names[i], strerror(errno));
	/* A /proc file of a process gets new inode numbers with the new
	 * process (fs/proc/base.c proc_pid_make_inode): only its type and
	 * name (below) can be the same. */
	int proc = i >= PSTAT;
	if ((!proc && (now.st_dev != st[i].st_dev || now.st_ino != st[i].st_ino)) ||
	    (now.st_mode & S_IFMT) != (st[i].st_mode & S_IFMT))
		tgt_fail("%s: another file (ino %lu, was %lu)", names[i], (unsigned long)now.st_ino, (unsigned long)st[i].st_ino);
	int fl = fcntl(fds[i], F_GETFL);
	if (fl != flags[i])
		tgt_fail("%s: F_GETFL %#o, was %#o", names[i], fl, flags[i]);
	char link[64], target[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fds[i]);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		tgt_fail("%s: readlink: %s", names[i], strerror(errno));
	target[n] = 0;
	if (strcmp(target, paths[i]) != 0)
		tgt_fail("%s: names %s, was %s", names[i], target, paths[i]);
	if (!(flags[i] & O_PATH)) {
		off_t p = lseek(fds[i], 0, SEEK_CUR);
		if (p != pos[i])
			tgt_fail("%s: offset %lld, was %lld", names[i], (long long)p, (long long)pos[i]);
	}
}

static void record(int i)
{
	if (fds[i] < 0)
		tgt_fail("%s: open: %s", names[i], strerror(errno));
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fds[i]);
	ssize_t n = readlink(link, paths[i], sizeof(paths[i]) - 1);
	if (n < 0)
		tgt_fail("%s: readlink: %s", names[i], strerror(errno));
	paths[i][n] = 0;
	fstat(fds[i], &st[i]);
	flags[i] = fcntl(fds[i], F_GETFL);
	pos[i] = (flags[i] & O_PATH) ? 0 : lseek(fds[i], 0, SEEK_CUR);
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: pathfds RESULT_PATH DIR");
	child = fork();
	if (child == 0) {
		for (;;)
			pause();
	}
	char p[4200];
	snprintf(p, sizeof(p), "%s/file", argv[2]);
	int f = open(p, O_CREAT | O_WRONLY, 0644);
	close(f);
	fds[REG] = open(p, O_PATH);
	fds[DIR_] = open(argv[2], O_PATH | O_DIRECTORY);
	fds[DEVNULL] = open("/dev/null", O_PATH);
	snprintf(p, sizeof(p), "%s/fifo", argv[2]);
	if (mkfifo(p, 0600) < 0)
		tgt_fail("mkfifo: %s", strerror(errno));
	fds[FIFO] = open(p, O_PATH);
	snprintf(p, sizeof(p), "%s/link", argv[2]);
	if (symlink("file", p) < 0)
		tgt_fail("symlink: %s", strerror(errno));
	fds[LINK] = open(p, O_PATH | O_NOFOLLOW);
	fds[PSTAT] = open("/proc/self/stat", O_RDONLY);
	char buf[16];
	if (read(fds[PSTAT], buf, sizeof(buf)) != sizeof(buf))
		tgt_fail("read own stat: %s", strerror(errno));
	int statdup = fcntl(fds[PSTAT], F_DUPFD_CLOEXEC, 60);
	if (statdup < 0)
		tgt_fail("dup own stat: %s", strerror(errno));
	fds[PDIR] = open("/proc/self", O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "/proc/%d/status", (int)child);
	fds[PCHILD] = open(p, O_RDONLY);
	int outside = argc > 3 ? atoi(argv[3]) : 0, outfd = -1;
	if (outside > 0) {
		snprintf(p, sizeof(p), "/proc/%d/status", outside);
		outfd = open(p, O_RDONLY);
		if (outfd < 0)
			tgt_fail("open %s: %s", p, strerror(errno));
	}
	for (int i = 0; i < N; i++)
		record(i);
	for (int i = 0; i < N; i++)
		check(i);
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < N; i++)
		check(i);
	/* The dup: the same description, with its own close-on-exec flag. */
	if (lseek(statdup, 0, SEEK_CUR) != pos[PSTAT])
		tgt_fail("the dup of own stat is at %ld, want %ld", (long)lseek(statdup, 0, SEEK_CUR), (long)pos[PSTAT]);
	if (lseek(statdup, 3, SEEK_SET) != 3 || lseek(fds[PSTAT], 0, SEEK_CUR) != 3)
		tgt_fail("a seek through the dup of own stat does not move the fd: another open file description");
	if (fcntl(statdup, F_GETFD) != FD_CLOEXEC || fcntl(fds[PSTAT], F_GETFD) != 0)
		tgt_fail("close-on-exec flags %d and %d, want 1 on the dup only", fcntl(statdup, F_GETFD), fcntl(fds[PSTAT], F_GETFD));
	/* The /proc files show the processes themselves. */
	char stat[256];
	ssize_t n = pread(fds[PSTAT], stat, sizeof(stat) - 1, 0);
	if (n <= 0)
		tgt_fail("own stat: pread: %s", strerror(errno));
	stat[n] = 0;
	if (atoi(stat) != getpid())
		tgt_fail("own stat names pid %d, not %d", atoi(stat), (int)getpid());
	char status[4096];
	n = pread(fds[PCHILD], status, sizeof(status) - 1, 0);
	if (n <= 0)
		tgt_fail("child status: pread: %s", strerror(errno));
	status[n] = 0;
	char want[64];
	snprintf(want, sizeof(want), "\nPid:\t%d\n", (int)child);
	if (!strstr(status, want))
		tgt_fail("child status is not of pid %d:\n%s", (int)child, status);
	if (outfd >= 0) {
		n = pread(outfd, status, sizeof(status) - 1, 0);
		if (n <= 0)
			tgt_fail("outside status: pread: %s", strerror(errno));
		status[n] = 0;
		snprintf(want, sizeof(want), "\nPid:\t%d\n", outside);
		if (!strstr(status, want))
			tgt_fail("outside status is not of pid %d:\n%s", outside, status);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	tgt_pass();
}
