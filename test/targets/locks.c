/*
 * locks: file locks of every kind a process can hold come back after a
 * restore, held by the same open file description or process, over the
 * same bytes, and still keep other processes out.
 *
 * usage: locks RESULT_PATH DIR
 *   a: flock, exclusive           d: flock, shared
 *   b: OFD write lock, bytes 10-19, also through a dup of its fd
 *   c: POSIX read lock over the whole file, a POSIX write lock on bytes
 *      100-104 over it (the kernel splits the read lock around it), and a
 *      second fd of c with no lock of its own; c is also mapped shared,
 *      as SQLite maps the -shm file it locks (the restore opens a mapped
 *      file to map it, and closing that fd would release the process's
 *      POSIX locks on the file)
 *
 * Checked before the dump and after the restore: the fdinfo "lock:" lines
 * of each fd (fs/locks.c lock_get_status) name this process for its POSIX
 * and flock locks, and a child that opens the files afresh is kept out
 * exactly where it should be (flock LOCK_NB, F_OFD_GETLK, F_GETLK).
 */
#include "target.h" /* first: it defines _GNU_SOURCE (F_OFD_SETLK, pipe2) */

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>

enum { A, B, C, D, NFILES };
static int fds[NFILES], bdup, c2;
static char paths[NFILES][4096];

/* expect_lock fails unless fdinfo of fd holds a "lock:" line of that kind,
 * type and holder over that range ("0 99", "105 EOF"). */
static void expect_lock(int fd, const char *kind, const char *type, int pid, const char *range)
{
	char info[4096], want[256];
	tgt_read_fdinfo(fd, info, sizeof(info));
	/* lock_get_status pads the class to 6 characters and the mode to 9. */
	snprintf(want, sizeof(want), "%-6s ADVISORY  %s %d ", kind, type, pid);
	for (char *line = strstr(info, "lock:\t"); line; line = strstr(line + 1, "lock:\t")) {
		char *colon = strchr(line + 6, ':');
		if (!colon)
			break;
		char *p = colon + 2;
		if (strncmp(p, want, strlen(want)) != 0)
			continue;
		/* Skip the dev:ino field, compare the range. */
		char *sp = strchr(p + strlen(want), ' ');
		char *nl = strchr(p, '\n');
		if (sp && nl && (size_t)(nl - sp - 1) == strlen(range) && strncmp(sp + 1, range, strlen(range)) == 0)
			return;
	}
	tgt_fail("fd %d has no %s %s lock by %d over %s; fdinfo:\n%s", fd, kind, type, pid, range, info);
}

static void expect_no_lock(int fd)
{
	char info[4096];
	tgt_read_fdinfo(fd, info, sizeof(info));
	if (strstr(info, "lock:"))
		tgt_fail("fd %d holds a lock it never took:\n%s", fd, info);
}

static void check_own(void)
{
	int pid = getpid();
	expect_lock(fds[A], "FLOCK", "WRITE", pid, "0 EOF");
	expect_lock(fds[D], "FLOCK", "READ", pid, "0 EOF");
	expect_lock(fds[B], "OFDLCK", "WRITE", -1, "10 19");
	expect_lock(bdup, "OFDLCK", "WRITE", -1, "10 19");
	expect_lock(fds[C], "POSIX", "READ", pid, "0 99");
	expect_lock(fds[C], "POSIX", "WRITE", pid, "100 104");
	expect_lock(fds[C], "POSIX", "READ", pid, "105 EOF");
	expect_no_lock(c2);
}

/* getlk asks, as another process, who keeps a lock of type over
 * [start, start+len) out: F_UNLCK if nobody. */
static struct flock getlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl) < 0) {
		dprintf(3, "fcntl GETLK: %s", strerror(errno));
		_exit(1);
	}
	return fl;
}

#define CHILD_FAIL(...) do { dprintf(3, __VA_ARGS__); _exit(1); } while (0)

/* The child's view: it opens every file anew, so nothing of the parent's
 * open file descriptions is its own. */
static void child_checks(int owner)
{
	int f[NFILES];
	for (int i = 0; i < NFILES; i++) {
		f[i] = open(paths[i], O_RDWR | O_CLOEXEC);
		if (f[i] < 0)
			CHILD_FAIL("open %s: %s", paths[i], strerror(errno));
	}
	if (flock(f[A], LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		CHILD_FAIL("a: a shared flock was granted past the exclusive one");
	if (flock(f[D], LOCK_SH | LOCK_NB) < 0)
		CHILD_FAIL("d: a shared flock was refused: %s", strerror(errno));
	flock(f[D], LOCK_UN);
	if (flock(f[D], LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		CHILD_FAIL("d: an exclusive flock was granted past the shared one");

	struct flock fl = getlk(f[B], F_OFD_GETLK, F_RDLCK, 12, 1);
	if (fl.l_type != F_WRLCK || fl.l_start != 10 || fl.l_len != 10 || fl.l_pid != -1)
		CHILD_FAIL("b: byte 12 is not kept by an OFD write lock on 10+10 (type %d, %lld+%lld, pid %d)",
			   fl.l_type, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
	fl = getlk(f[B], F_OFD_GETLK, F_WRLCK, 0, 10);
	if (fl.l_type != F_UNLCK)
		CHILD_FAIL("b: bytes 0-9 are locked (type %d)", fl.l_type);

	fl = getlk(f[C], F_GETLK, F_WRLCK, 0, 1);
	if (fl.l_type != F_RDLCK || fl.l_pid != owner)
		CHILD_FAIL("c: byte 0 is not read-locked by %d (type %d, pid %d)", owner, fl.l_type, fl.l_pid);
	fl = getlk(f[C], F_GETLK, F_RDLCK, 102, 1);
	if (fl.l_type != F_WRLCK || fl.l_start != 100 || fl.l_len != 5 || fl.l_pid != owner)
		CHILD_FAIL("c: byte 102 is not write-locked on 100+5 by %d (type %d, %lld+%lld, pid %d)", owner,
			   fl.l_type, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
	fl = getlk(f[C], F_GETLK, F_RDLCK, 0, 100);
	if (fl.l_type != F_UNLCK)
		CHILD_FAIL("c: a read lock on 0+100 would be refused (type %d)", fl.l_type);
	fl = getlk(f[C], F_GETLK, F_WRLCK, 1000000, 1);
	if (fl.l_type != F_RDLCK)
		CHILD_FAIL("c: the read lock does not reach past the end of the file (type %d)", fl.l_type);
	_exit(0);
}

static void check_others(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		tgt_fail("pipe2: %s", strerror(errno));
	pid_t owner = getpid();
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		dup2(p[1], 3);
		child_checks(owner);
	}
	close(p[1]);
	char why[1024] = "";
	ssize_t n = read(p[0], why, sizeof(why) - 1);
	close(p[0]);
	int st;
	if (waitpid(child, &st, 0) != child)
		tgt_fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("another process is not kept out: %s", n > 0 ? why : "(child died)");
}

static void take(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl) < 0)
		tgt_fail("fcntl lock on fd %d: %s", fd, strerror(errno));
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: locks RESULT_PATH DIR");
	for (int i = 0; i < NFILES; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/%c", argv[2], 'a' + i);
		fds[i] = open(paths[i], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fds[i] < 0)
			tgt_fail("open %s: %s", paths[i], strerror(errno));
		if (write(fds[i], "0123456789012345678901234567890123456789", 40) != 40)
			tgt_fail("write %s", paths[i]);
	}
	if (flock(fds[A], LOCK_EX | LOCK_NB) < 0 || flock(fds[D], LOCK_SH | LOCK_NB) < 0)
		tgt_fail("flock: %s", strerror(errno));
	take(fds[B], F_OFD_SETLK, F_WRLCK, 10, 10);
	bdup = dup(fds[B]);
	take(fds[C], F_SETLK, F_RDLCK, 0, 0);
	take(fds[C], F_SETLK, F_WRLCK, 100, 5);
	if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[C], 0) == MAP_FAILED)
		tgt_fail("mmap %s: %s", paths[C], strerror(errno));
	c2 = open(paths[C], O_RDONLY);
	if (bdup < 0 || c2 < 0)
		tgt_fail("dup/open: %s", strerror(errno));
	check_own();
	check_others();
	tgt_ready();
	tgt_wait();
	check_own();
	check_others();
	tgt_pass();
}
