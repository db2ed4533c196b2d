/*
 * sharedtables: a child made with clone(2) sharing one of its parent's
 * tables without being a thread.
 *
 * Restored, the sharing made again: "shared", three children, cloned
 * with CLONE_FILES, CLONE_FS and both. After the restore the parent checks
 * with kcmp(2) that each shares what it shared (and nothing more), and
 * that what each does to the shared table shows in the other: an fd the
 * parent opens is the child's, one the child opens is the parent's
 * (files); a chdir and umask by the parent is the child's, and the
 * child's the parent's (fs). Each child does its part when the parent
 * asks through a pipe. The shared table also holds an epoll watch (on
 * the first child's answers) and a file the first child holds a flock
 * lock on; the first child has a second thread.
 *
 * Refused at dump: "files" and "fs" (one child, CLONE_FILES or CLONE_FS)
 * when dumped without its parent, "vm" (CLONE_VM), "sighand" (CLONE_VM|CLONE_SIGHAND),
 * "siblings": a child whose own child, made with CLONE_PARENT|CLONE_FILES,
 * is its sibling sharing its fd table, which their parent does not share,
 * and "posixlock": a child sharing the fd table of its parent, which
 * holds a POSIX lock (the table's).
 *
 * usage: sharedtables RESULT_PATH MODE
 */
#include "target.h"

#include <limits.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* include/uapi/linux/kcmp.h */
#define KCMP_FILES 2
#define KCMP_FS 3

static char sibling_stack[64 * 1024] __attribute__((aligned(16)));
static char thread_stack[64 * 1024] __attribute__((aligned(16)));

/* A child and the pipes through which the parent asks it. */
struct kid {
	int files, fs; /* CLONE_FILES, CLONE_FS */
	int cmd[2], reply[2];
	pid_t pid;
	char stack[64 * 1024] __attribute__((aligned(16)));
};
static struct kid kids[3];
/* An epoll instance watching kids[0].reply[0], and a file kids[0] holds
 * a flock lock on, both in the shared table (files modes). */
static int epfd = -1, lockfd = -1;
static char lock_path[4200];
static const char *mode;

/* A thread of the first child (which shares the parent's fd table): its
 * process comes back with it, in the same table. */
static int idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		syscall(SYS_pause);
	return 0;
}

static int sibling(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

/* Does what the parent asks: 'o' opens /dev/zero and answers its fd, 'c'
 * changes directory to / and the umask to 027. */
static int child(void *arg)
{
	struct kid *k = arg;
	if (strcmp(mode, "siblings") == 0) {
		if (clone(sibling, sibling_stack + sizeof(sibling_stack), CLONE_PARENT | CLONE_FILES | SIGCHLD, NULL) < 0)
			_exit(3);
		for (;;)
			pause();
	}
	if (k == &kids[0] && lockfd >= 0) {
		int answer = flock(lockfd, LOCK_EX | LOCK_NB);
		if (answer == 0 && strcmp(mode, "shared") == 0 &&
		    clone(idle_thread, thread_stack + sizeof(thread_stack),
			  CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, NULL) < 0)
			answer = -1;
		if (write(k->reply[1], &answer, sizeof(answer)) != sizeof(answer))
			_exit(5);
	}
	for (;;) {
		char c;
		ssize_t n = read(k->cmd[0], &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1)
			_exit(4);
		int answer = 0;
		if (c == 'o')
			answer = open("/dev/zero", O_RDONLY);
		else if (c == 'c')
			answer = chdir("/") == 0 ? (umask(027), 0) : -1;
		if (write(k->reply[1], &answer, sizeof(answer)) != sizeof(answer))
			_exit(5);
	}
	return 0;
}

static int answer_of(struct kid *k)
{
	int answer;
	/* kids[0] answers through the epoll watch, when there is one: it
	 * must be there (once) after the restore. */
	if (k == &kids[0] && epfd >= 0) {
		struct epoll_event ev;
		int n;
		while ((n = epoll_wait(epfd, &ev, 1, 10000)) < 0 && errno == EINTR)
			;
		if (n != 1)
			tgt_fail("epoll_wait for the child's answer: %d %s", n, n < 0 ? strerror(errno) : "no event in 10 s");
	}
	for (;;) {
		ssize_t n = read(k->reply[0], &answer, sizeof(answer));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(answer))
			tgt_fail("read child %d's answer: %zd %s", (int)k->pid, n, strerror(errno));
		return answer;
	}
}

static int ask(struct kid *k, char c)
{
	if (write(k->cmd[1], &c, 1) != 1)
		tgt_fail("write to child %d: %s", (int)k->pid, strerror(errno));
	return answer_of(k);
}

static long kcmp(pid_t a, pid_t b, int type)
{
	return syscall(SYS_kcmp, a, b, type, 0, 0);
}

static void readlink_of(char *buf, size_t size, const char *path)
{
	ssize_t n = readlink(path, buf, size - 1);
	if (n < 0)
		tgt_fail("readlink %s: %s", path, strerror(errno));
	buf[n] = 0;
}

/* The umask of pid, from /proc/PID/status (man 5 proc). */
static unsigned umask_of(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		tgt_fail("read %s", path);
	buf[n] = 0;
	char *u = strstr(buf, "Umask:");
	if (!u)
		tgt_fail("no Umask in %s", path);
	return (unsigned)strtoul(u + 6, NULL, 8);
}

/* Expects kcmp type between us and the child: shared or not. */
static void expect_shared(pid_t pid, int type, int shared, const char *what)
{
	long r = kcmp(getpid(), pid, type);
	if (r < 0)
		tgt_fail("kcmp %s: %s", what, strerror(errno));
	if ((r == 0) != shared)
		tgt_fail("child %d %s its parent's %s (kcmp %ld)", (int)pid, shared ? "does not share" : "shares", what, r);
}

static void expect_sharing(struct kid *k)
{
	expect_shared(k->pid, KCMP_FILES, k->files, "fd table");
	expect_shared(k->pid, KCMP_FS, k->fs, "cwd, root and umask");
}

static void check_files(struct kid *k)
{
	pid_t pid = k->pid;
	char buf[PATH_MAX];
	/* The child's flock lock, the description's, is held again. */
	if (k == &kids[0]) {
		int other = open(lock_path, O_RDONLY | O_CLOEXEC);
		if (other < 0)
			tgt_fail("open %s: %s", lock_path, strerror(errno));
		if (flock(other, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			tgt_fail("the child's flock lock on %s is not held", lock_path);
		close(other);
	}
	int mine = open("/dev/null", O_RDONLY);
	if (mine < 0)
		tgt_fail("open /dev/null: %s", strerror(errno));
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, mine);
	readlink_of(buf, sizeof(buf), path);
	if (strcmp(buf, "/dev/null") != 0)
		tgt_fail("the child's fd %d is %s, not the parent's /dev/null", mine, buf);
	int theirs = ask(k, 'o');
	if (theirs < 0)
		tgt_fail("the child could not open /dev/zero");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", theirs);
	readlink_of(buf, sizeof(buf), path);
	if (strcmp(buf, "/dev/zero") != 0)
		tgt_fail("the parent's fd %d is %s, not the child's /dev/zero", theirs, buf);
	close(mine);
	close(theirs);
}

static void check_fs(struct kid *k)
{
	pid_t pid = k->pid;
	char buf[PATH_MAX];
	if (chdir("/dev") != 0)
		tgt_fail("chdir /dev: %s", strerror(errno));
	umask(077);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	readlink_of(buf, sizeof(buf), path);
	if (strcmp(buf, "/dev") != 0)
		tgt_fail("the child's cwd is %s, not the parent's /dev", buf);
	if (umask_of(pid) != 077)
		tgt_fail("the child's umask is %o, not the parent's 077", umask_of(pid));
	if (ask(k, 'c') != 0)
		tgt_fail("the child could not chdir /");
	if (!getcwd(buf, sizeof(buf)) || strcmp(buf, "/") != 0)
		tgt_fail("the parent's cwd is %s, not the child's /", buf);
	if (umask_of(getpid()) != 027)
		tgt_fail("the parent's umask is %o, not the child's 027", umask_of(getpid()));
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: sharedtables RESULT_PATH shared|vm|sighand|siblings|posixlock");
	mode = argv[2];
	int n = 1, flags = 0;
	if (strcmp(mode, "shared") == 0) {
		n = 3;
		kids[0].files = 1;
		kids[1].fs = 1;
		kids[2].files = kids[2].fs = 1;
	} else if (strcmp(mode, "posixlock") == 0)
		kids[0].files = 1;
	else if (strcmp(mode, "files") == 0)
		kids[0].files = 1;
	else if (strcmp(mode, "fs") == 0)
		kids[0].fs = 1;
	else if (strcmp(mode, "vm") == 0)
		flags = CLONE_VM;
	else if (strcmp(mode, "sighand") == 0)
		flags = CLONE_VM | CLONE_SIGHAND;
	else if (strcmp(mode, "siblings") != 0)
		tgt_fail("unknown mode %s", mode);
	if (kids[0].files) {
		if (pipe(kids[0].cmd) != 0 || pipe(kids[0].reply) != 0)
			tgt_fail("pipe: %s", strerror(errno));
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
		epfd = epoll_create1(0);
		if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, kids[0].reply[0], &ev) != 0)
			tgt_fail("epoll: %s", strerror(errno));
		snprintf(lock_path, sizeof(lock_path), "%s.lock", argv[1]);
		lockfd = open(lock_path, O_RDWR | O_CREAT, 0644);
		if (lockfd < 0)
			tgt_fail("open %s: %s", lock_path, strerror(errno));
	}
	for (int i = 0; i < n; i++) {
		struct kid *k = &kids[i];
		if (!k->cmd[1] && (pipe(k->cmd) != 0 || pipe(k->reply) != 0))
			tgt_fail("pipe: %s", strerror(errno));
		int f = flags | (k->files ? CLONE_FILES : 0) | (k->fs ? CLONE_FS : 0);
		k->pid = clone(child, k->stack + sizeof(k->stack), f | SIGCHLD, k);
		if (k->pid < 0)
			tgt_fail("clone: %s", strerror(errno));
		if (k->files || k->fs)
			expect_sharing(k);
	}
	if (lockfd >= 0 && answer_of(&kids[0]) != 0)
		tgt_fail("the child's flock: %s", strerror(errno));
	if (strcmp(mode, "posixlock") == 0) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
		if (fcntl(lockfd, F_SETLK, &fl) != 0)
			tgt_fail("POSIX lock on %s: %s", lock_path, strerror(errno));
	}
	tgt_ready();
	tgt_wait();
	for (int i = 0; i < n; i++) {
		struct kid *k = &kids[i];
		if (k->files || k->fs)
			expect_sharing(k);
		if (k->files)
			check_files(k);
		if (k->fs)
			check_fs(k);
	}
	for (int i = 0; i < n; i++) {
		int st;
		kill(kids[i].pid, SIGKILL);
		if (waitpid(kids[i].pid, &st, 0) != kids[i].pid)
			tgt_fail("waitpid: %s", strerror(errno));
	}
	tgt_pass();
}
