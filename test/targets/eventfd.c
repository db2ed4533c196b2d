/*
 * eventfd: eventfds with counters and flags a restore must keep:
 *
 *   sem      semaphore mode, O_NONBLOCK, count 5 (fd 40): reads return 1
 *            five times, then EAGAIN;
 *   big      counting mode, blocking, count 2^40 (set by a write, beyond
 *            eventfd(2)'s 32-bit initval) (fd 41): one read returns 2^40;
 *   full     counting mode, O_NONBLOCK, count 0xfffffffffffffffe, the
 *            largest (fd 42): not writable, a write of 1 fails with EAGAIN;
 *   empty    counting mode, O_NONBLOCK|FD_CLOEXEC, count 0 (fd 43): EAGAIN;
 *   semblk   semaphore mode, blocking, count 3 (fd 44), with a dup at fd 45
 *            that must share it (kcmp KCMP_FILE): what is written through
 *            one is read through the other.
 *
 * After restore it checks every fd's flags (F_GETFL, F_GETFD), its
 * /proc/self/fdinfo counter and semaphore lines against what they were at
 * setup, poll readiness, and then the counts by reading.
 *
 * Usage: eventfd RESULT_PATH
 */
#include "target.h"

#include <poll.h>
#include <stdint.h>
#include <linux/kcmp.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#define FL_MASK (O_ACCMODE | O_NONBLOCK)

struct efd {
	const char *name;
	int fd;
	uint64_t initval; /* for eventfd() */
	uint64_t add;     /* written after creation */
	int flags;        /* eventfd() flags */
	/* recorded at setup */
	int fl, fdfl;
	char fdinfo[512];
};

static struct efd efds[] = {
	{ .name = "sem", .fd = 40, .initval = 5, .flags = EFD_SEMAPHORE | EFD_NONBLOCK },
	{ .name = "big", .fd = 41, .add = 1ULL << 40 },
	{ .name = "full", .fd = 42, .add = 0xfffffffffffffffeULL, .flags = EFD_NONBLOCK },
	{ .name = "empty", .fd = 43, .flags = EFD_NONBLOCK | EFD_CLOEXEC },
	{ .name = "semblk", .fd = 44, .initval = 3, .flags = EFD_SEMAPHORE },
};
#define NEFDS (int)(sizeof(efds) / sizeof(efds[0]))
#define DUP_FD 45

/* The eventfd lines of fd's fdinfo ("eventfd-count", "eventfd-semaphore"):
 * the other lines (pos, mnt_id, ino, eventfd-id) may change legitimately. */
static void efd_fdinfo(int fd, char *out, size_t cap)
{
	char buf[1024], *line, *save;

	tgt_read_fdinfo(fd, buf, sizeof(buf));
	out[0] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "eventfd-count:", 14) == 0 || strncmp(line, "eventfd-semaphore:", 18) == 0) {
			strncat(out, line, cap - strlen(out) - 2);
			strcat(out, ";");
		}
	}
	if (!strstr(out, "eventfd-count:"))
		tgt_fail("/proc/self/fdinfo/%d has no eventfd-count line", fd);
}

static short revents(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, 0);

	if (r < 0)
		tgt_fail("poll fd %d: %s", fd, strerror(errno));
	return r ? p.revents : 0;
}

static uint64_t read_one(struct efd *e, int fd, const char *what)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));

	if (n != sizeof(v))
		tgt_fail("%s (fd %d): %s read returned %zd (%s)", e->name, fd, what, n, n < 0 ? strerror(errno) : "short");
	return v;
}

static void expect_eagain(struct efd *e, const char *what)
{
	uint64_t v;
	ssize_t n = read(e->fd, &v, sizeof(v));

	if (n >= 0)
		tgt_fail("%s (fd %d): %s read returned %zd bytes, value %llu, want EAGAIN", e->name, e->fd, what, n,
			 (unsigned long long)v);
	if (errno != EAGAIN)
		tgt_fail("%s (fd %d): %s read failed with %s, want EAGAIN", e->name, e->fd, what, strerror(errno));
}

static void write_one(struct efd *e, int fd, uint64_t v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		tgt_fail("%s (fd %d): write %llu: %s", e->name, fd, (unsigned long long)v, strerror(errno));
}

int main(int argc, char **argv)
{
	char now[512];

	tgt_init(argc, argv);
	for (int i = 0; i < NEFDS; i++) {
		struct efd *e = &efds[i];
		int fd = eventfd((unsigned int)e->initval, e->flags);

		if (fd < 0)
			tgt_fail("eventfd %s: %s", e->name, strerror(errno));
		if (dup3(fd, e->fd, e->flags & EFD_CLOEXEC ? O_CLOEXEC : 0) < 0)
			tgt_fail("dup3 %s to %d: %s", e->name, e->fd, strerror(errno));
		close(fd);
		if (e->add)
			write_one(e, e->fd, e->add);
	}
	if (dup2(44, DUP_FD) < 0)
		tgt_fail("dup2 44 to %d: %s", DUP_FD, strerror(errno));
	if (syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 44, DUP_FD) != 0)
		tgt_fail("kcmp(KCMP_FILE) does not show fd %d as fd 44's dup: %s", DUP_FD, strerror(errno));
	for (int i = 0; i < NEFDS; i++) {
		struct efd *e = &efds[i];

		e->fl = fcntl(e->fd, F_GETFL);
		e->fdfl = fcntl(e->fd, F_GETFD);
		efd_fdinfo(e->fd, e->fdinfo, sizeof(e->fdinfo));
		tgt_log("%s fd %d: flags %#o fd flags %d fdinfo %s\n", e->name, e->fd, e->fl, e->fdfl, e->fdinfo);
	}
	/* The setup must have made what the checks below expect. */
	if (!strstr(efds[0].fdinfo, "eventfd-semaphore: 1"))
		tgt_fail("sem fdinfo %s does not say semaphore mode", efds[0].fdinfo);
	if (!strstr(efds[1].fdinfo, "10000000000"))
		tgt_fail("big fdinfo %s does not show 2^40", efds[1].fdinfo);
	tgt_ready();
	tgt_wait();

	/* Flags and fdinfo, before anything is read. */
	for (int i = 0; i < NEFDS; i++) {
		struct efd *e = &efds[i];
		int fl = fcntl(e->fd, F_GETFL), fdfl = fcntl(e->fd, F_GETFD);

		if (fl < 0)
			tgt_fail("%s: fd %d is not open: %s", e->name, e->fd, strerror(errno));
		if ((fl & FL_MASK) != (e->fl & FL_MASK))
			tgt_fail("%s (fd %d) F_GETFL %#o, want %#o", e->name, e->fd, fl & FL_MASK, e->fl & FL_MASK);
		if (fdfl != e->fdfl)
			tgt_fail("%s (fd %d) F_GETFD %d, want %d", e->name, e->fd, fdfl, e->fdfl);
		efd_fdinfo(e->fd, now, sizeof(now));
		if (strcmp(now, e->fdinfo) != 0)
			tgt_fail("%s (fd %d) fdinfo %s, want %s", e->name, e->fd, now, e->fdinfo);
	}
	if (fcntl(DUP_FD, F_GETFD) != 0)
		tgt_fail("dup fd %d: F_GETFD %d, want 0", DUP_FD, fcntl(DUP_FD, F_GETFD));
	{
		long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 44, DUP_FD);

		if (r < 0)
			tgt_fail("kcmp(KCMP_FILE, 44, %d): %s", DUP_FD, strerror(errno));
		if (r != 0)
			tgt_fail("fd %d is not the same open file as fd 44 (kcmp), though it was a dup of it", DUP_FD);
	}

	/* Readiness. */
	if (!(revents(40, POLLIN) & POLLIN))
		tgt_fail("sem (fd 40) is not readable");
	if (!(revents(41, POLLIN) & POLLIN))
		tgt_fail("big (fd 41) is not readable");
	if (revents(42, POLLOUT) & POLLOUT)
		tgt_fail("full (fd 42) is writable: its count is below the maximum");
	if (revents(43, POLLIN) & POLLIN)
		tgt_fail("empty (fd 43) is readable");

	/* sem: 1 five times, then EAGAIN. */
	for (int k = 1; k <= 5; k++) {
		uint64_t v = read_one(&efds[0], 40, "semaphore");

		if (v != 1)
			tgt_fail("sem (fd 40): read %d returned %llu, want 1", k, (unsigned long long)v);
	}
	expect_eagain(&efds[0], "sixth");

	/* big: the whole 64-bit count at once, then not readable. */
	{
		uint64_t v = read_one(&efds[1], 41, "first");

		if (v != 1ULL << 40)
			tgt_fail("big (fd 41): read %llu, want 2^40 = %llu", (unsigned long long)v, 1ULL << 40);
		if (revents(41, POLLIN) & POLLIN)
			tgt_fail("big (fd 41) still readable after reading its count");
	}

	/* full: a write of 1 would overflow. */
	{
		uint64_t one = 1, v;

		if (write(42, &one, sizeof(one)) >= 0)
			tgt_fail("full (fd 42): write of 1 succeeded: the count was below the maximum");
		if (errno != EAGAIN)
			tgt_fail("full (fd 42): write of 1 failed with %s, want EAGAIN", strerror(errno));
		v = read_one(&efds[2], 42, "first");
		if (v != 0xfffffffffffffffeULL)
			tgt_fail("full (fd 42): read %#llx, want 0xfffffffffffffffe", (unsigned long long)v);
		expect_eagain(&efds[2], "second");
	}

	/* empty: nothing, and it is live: a write shows up in a read. */
	expect_eagain(&efds[3], "first");
	write_one(&efds[3], 43, 7);
	if (read_one(&efds[3], 43, "after write") != 7)
		tgt_fail("empty (fd 43): a write of 7 did not read back as 7");

	/* semblk: 1 three times, via both fds alternately, then empty; the
	 * dup shares it. */
	for (int k = 1; k <= 3; k++) {
		int fd = k % 2 ? 44 : DUP_FD;
		uint64_t v = read_one(&efds[4], fd, "semaphore");

		if (v != 1)
			tgt_fail("semblk (fd %d): read %d returned %llu, want 1", fd, k, (unsigned long long)v);
	}
	if (revents(44, POLLIN) & POLLIN)
		tgt_fail("semblk (fd 44) still readable after three semaphore reads from it and its dup: its count was above 3");
	write_one(&efds[4], DUP_FD, 2);
	if (!(revents(44, POLLIN) & POLLIN))
		tgt_fail("semblk: a write to fd %d is not seen on fd 44: the dup is a different eventfd", DUP_FD);
	tgt_pass();
}
