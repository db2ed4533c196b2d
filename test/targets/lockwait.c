/*
 * lockwait: processes and a thread blocked waiting for a file lock wait
 * again after a restore, and get the lock once its holder lets it go.
 *
 * usage: lockwait RESULT_PATH DIR
 *   DIR/p  the target holds a POSIX write lock on bytes 0-9; a child
 *          waits for the same bytes (F_SETLKW)
 *   DIR/f  the target holds an exclusive flock; a second child waits for
 *          one on its own open of the file (flock LOCK_EX)
 *   DIR/o  the target holds an OFD write lock on bytes 0-9 through one
 *          open file description; a thread of the target waits for the
 *          same bytes through another (F_OFD_SETLKW: OFD locks of two
 *          descriptions conflict, whatever process holds them)
 *
 * Ready once /proc/locks shows the three waiters: a blocked request is
 * listed after the lock it waits for, marked "->" (fs/locks.c
 * locks_show). After the restore the target requires the same three
 * waiters again and no waiter to have returned, then lets each lock go in
 * turn: its waiter must then report that it got it, and the lock must be
 * the waiter's.
 */
#include "target.h"

#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

enum { P, F, O, NFILES };
static const char letters[NFILES] = { 'p', 'f', 'o' };
static char paths[NFILES][4096];
static char keys[NFILES][64]; /* "MAJ:MIN:INO " as /proc/locks shows the file */
static int held[NFILES];      /* the target's fds holding the locks */
static int ofd_wait_fd;       /* the thread's description of o */
static int report[2];         /* waiters write {letter, errno} here */
static pid_t children[2];

struct got {
	char which;
	int err;
};

static void say_got(char which, int err)
{
	struct got g = { which, err };
	if (write(report[1], &g, sizeof(g)) != sizeof(g))
		_exit(3);
}

static struct flock range(short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	return fl;
}

static void *ofd_waiter(void *arg)
{
	(void)arg;
	struct flock fl = range(F_WRLCK);
	say_got('o', fcntl(ofd_wait_fd, F_OFD_SETLKW, &fl) < 0 ? errno : 0);
	return NULL;
}

/* waiters counts the lines of /proc/locks that are requests blocked on
 * file i. */
static int waiters(int i)
{
	static char buf[1 << 16];
	tgt_read_file("/proc/locks", buf, sizeof(buf));
	int count = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, "-> ") && strstr(line, keys[i]))
			count++;
	return count;
}

/* await_waiters waits up to 5 s for one waiter on each file. */
static void await_waiters(const char *when)
{
	for (int tries = 0;; tries++) {
		int all = 1;
		for (int i = 0; i < NFILES; i++)
			if (waiters(i) != 1)
				all = 0;
		if (all)
			return;
		if (tries == 500)
			tgt_fail("%s: /proc/locks shows %d, %d and %d waiters on p, f and o, want one on each", when,
				 waiters(P), waiters(F), waiters(O));
		usleep(10000);
	}
}

/* nothing_reported fails if a waiter has returned. */
static void nothing_reported(const char *when)
{
	struct pollfd pfd = { .fd = report[0], .events = POLLIN };
	struct got g;
	if (poll(&pfd, 1, 0) > 0 && read(report[0], &g, sizeof(g)) == sizeof(g))
		tgt_fail("%s: the waiter on %c returned (%s) while the lock was still held", when, g.which,
			 g.err ? strerror(g.err) : "got the lock");
}

/* let_go releases the target's lock on file i and waits for its waiter
 * to say it got it. */
static void let_go(int i)
{
	struct flock fl = range(F_UNLCK);
	if ((i == P && fcntl(held[P], F_SETLK, &fl) < 0) || (i == F && flock(held[F], LOCK_UN) < 0) ||
	    (i == O && fcntl(held[O], F_OFD_SETLK, &fl) < 0))
		tgt_fail("let go of %c: %s", letters[i], strerror(errno));
	struct pollfd pfd = { .fd = report[0], .events = POLLIN };
	struct got g;
	if (poll(&pfd, 1, 10000) != 1 || read(report[0], &g, sizeof(g)) != sizeof(g))
		tgt_fail("the waiter on %c did not get the lock within 10 s of its release", letters[i]);
	if (g.which != letters[i] || g.err != 0)
		tgt_fail("after %c was let go, the waiter on %c returned %s", letters[i], g.which,
			 g.err ? strerror(g.err) : "with the lock");
}

/* expect_taken fails unless file i's lock is now the waiter's: another
 * description of the target is kept out. */
static void expect_taken(int i)
{
	int fd = open(paths[i], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", paths[i], strerror(errno));
	struct flock fl = range(F_WRLCK);
	if (i == P) {
		if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type != F_WRLCK || fl.l_pid != children[0])
			tgt_fail("p: bytes 0-9 are not write-locked by the waiter %d (type %d, pid %d)", children[0],
				 fl.l_type, fl.l_pid);
	} else if (i == F) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			tgt_fail("f: an exclusive flock was granted past the waiter's");
	} else if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type != F_WRLCK) {
		tgt_fail("o: bytes 0-9 are not OFD write-locked by the thread (type %d)", fl.l_type);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: lockwait RESULT_PATH DIR");
	if (pipe2(report, O_CLOEXEC) < 0)
		tgt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < NFILES; i++) {
		struct stat st;
		snprintf(paths[i], sizeof(paths[i]), "%s/%c", argv[2], letters[i]);
		held[i] = open(paths[i], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (held[i] < 0 || write(held[i], "0123456789abcdef", 16) != 16 || fstat(held[i], &st) < 0)
			tgt_fail("make %s: %s", paths[i], strerror(errno));
		snprintf(keys[i], sizeof(keys[i]), "%02x:%02x:%lu ", major(st.st_dev), minor(st.st_dev),
			 (unsigned long)st.st_ino);
	}
	struct flock fl = range(F_WRLCK);
	if (fcntl(held[P], F_SETLK, &fl) < 0 || flock(held[F], LOCK_EX | LOCK_NB) < 0 ||
	    fcntl(held[O], F_OFD_SETLK, &fl) < 0)
		tgt_fail("take the locks: %s", strerror(errno));

	for (int c = 0; c < 2; c++) {
		children[c] = fork();
		if (children[c] < 0)
			tgt_fail("fork: %s", strerror(errno));
		if (children[c] == 0) {
			int fd = open(paths[c == 0 ? P : F], O_RDWR | O_CLOEXEC);
			if (fd < 0)
				_exit(4);
			if (c == 0) {
				struct flock w = range(F_WRLCK);
				say_got('p', fcntl(fd, F_SETLKW, &w) < 0 ? errno : 0);
			} else {
				say_got('f', flock(fd, LOCK_EX) < 0 ? errno : 0);
			}
			for (;;)
				pause(); /* holding the lock until killed */
		}
	}
	ofd_wait_fd = open(paths[O], O_RDWR | O_CLOEXEC);
	pthread_t th;
	if (ofd_wait_fd < 0 || pthread_create(&th, NULL, ofd_waiter, NULL) != 0)
		tgt_fail("start the OFD waiter: %s", strerror(errno));
	await_waiters("before the dump");
	nothing_reported("before the dump");
	tgt_ready();
	tgt_wait();

	await_waiters("after the restore");
	nothing_reported("after the restore");
	for (int i = 0; i < NFILES; i++) {
		let_go(i);
		expect_taken(i);
	}
	pthread_join(th, NULL);
	for (int c = 0; c < 2; c++) {
		int st;
		kill(children[c], SIGKILL);
		if (waitpid(children[c], &st, 0) != children[c] || !WIFSIGNALED(st))
			tgt_fail("child %d did not die of SIGKILL (status %#x)", children[c], st);
	}
	tgt_pass();
}
