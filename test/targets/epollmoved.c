/*
 * epollmoved: epoll watches whose fd number no longer names the watched
 * file (epoll keys a watch by file and number: man 7 epoll, Q6) come back
 * keyed by the same file and number.
 *
 *   EP (fd 40) watches
 *     A  pipe a under fd 41, since closed; a is still open as fd 42;
 *     B  pipe b under fd 43, since closed and reused by pipe c (fd 43,
 *        close-on-exec); b is still open as fd 44;
 *     C  pipe c under fd 43 too: two watches of one number;
 *     D  pipe d under fd 45, closed here; d is open only in the child.
 *   EP2 (fd 47) watches
 *     E  an eventfd under fd 47, which now is EP2 itself; the eventfd is
 *        open as fd 48.
 *
 * After the restore each watch reports its own file's event with its data
 * and nothing else does; the fds keep their close-on-exec flags; then
 * EPOLL_CTL_DEL finds what it found before: fd 41 (closed) fails with
 * EBADF, fd 42 (file a under another number) with ENOENT (fs/eventpoll.c
 * do_epoll_ctl: the fd is looked up first, then the (file, number) item,
 * ep_find), fd 43 removes C, and B only once fd 43 names b again; A goes
 * once fd 41 names a again.
 *
 * Usage: epollmoved RESULT_PATH
 */
#include "target.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#define EP 40
#define NA 41
#define KA 42
#define NB 43
#define KB 44
#define ND 45
#define EP2 47
#define KE 48

enum { A, B, C, D, E, NW };
static const char *names[NW] = { "A", "B", "C", "D", "E" };
static const uint64_t data[NW] = { 0xa1, 0xb2, 0xc3, 0xd4, 0xe5 };
static int wr[NW]; /* the write end of each watched file (E: the eventfd) */

static void move_to(int fd, int want, int flags)
{
	if (fd != want && (dup3(fd, want, flags) < 0 || close(fd) < 0))
		tgt_fail("dup3 %d to %d: %s", fd, want, strerror(errno));
}

static void add(int ep, int fd, int w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data[w] };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		tgt_fail("epoll_ctl ADD %s (fd %d): %s", names[w], fd, strerror(errno));
}

/* Exactly watch w (or none, w < 0) is reported by ep. */
static void expect(int ep, int w, const char *when)
{
	struct epoll_event ev[8];
	int n = epoll_wait(ep, ev, 8, 0);
	if (n < 0)
		tgt_fail("%s: epoll_wait: %s", when, strerror(errno));
	for (int k = 0; k < n; k++)
		if (w < 0 || ev[k].data.u64 != data[w] || ev[k].events != EPOLLIN)
			tgt_fail("%s: epoll fd %d reported data %#llx events %#x", when, ep,
				 (unsigned long long)ev[k].data.u64, ev[k].events);
	if (w >= 0 && n != 1)
		tgt_fail("%s: epoll fd %d reported %d events, want %s's", when, ep, n, names[w]);
}

/* Each file's event is reported through its own watch only. */
static void check_events(const char *when)
{
	static const int rd[] = { KA, KB, NB };
	char c;
	expect(EP, -1, when);
	for (int w = A; w <= C; w++) {
		if (write(wr[w], "x", 1) != 1)
			tgt_fail("write %s: %s", names[w], strerror(errno));
		expect(EP, w, when);
		if (read(rd[w], &c, 1) != 1)
			tgt_fail("read %s: %s", names[w], strerror(errno));
	}
	uint64_t one = 1;
	expect(EP2, -1, when);
	if (write(KE, &one, sizeof(one)) != sizeof(one))
		tgt_fail("write E: %s", strerror(errno));
	expect(EP2, E, when);
	if (read(KE, &one, sizeof(one)) != sizeof(one))
		tgt_fail("read E: %s", strerror(errno));
}

static void del(int fd, int want_errno, const char *what)
{
	struct epoll_event ev;
	int r = epoll_ctl(EP, EPOLL_CTL_DEL, fd, &ev);
	if (want_errno == 0 && r < 0)
		tgt_fail("DEL fd %d (%s): %s", fd, what, strerror(errno));
	if (want_errno != 0 && (r == 0 || errno != want_errno))
		tgt_fail("DEL fd %d (%s): %s, want %s", fd, what, r == 0 ? "success" : strerror(errno),
			 strerror(want_errno));
}

int main(int argc, char **argv)
{
	int p[2], quit[2];
	tgt_init(argc, argv);
	move_to(epoll_create1(0), EP, 0);
	if (pipe(p) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	move_to(p[0], NA, 0);
	wr[A] = p[1];
	add(EP, NA, A);
	if (dup2(NA, KA) < 0 || close(NA) < 0)
		tgt_fail("keep a: %s", strerror(errno));
	if (pipe(p) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	move_to(p[0], NB, 0);
	wr[B] = p[1];
	add(EP, NB, B);
	if (dup2(NB, KB) < 0 || close(NB) < 0)
		tgt_fail("keep b: %s", strerror(errno));
	if (pipe(p) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	move_to(p[0], NB, O_CLOEXEC);
	wr[C] = p[1];
	add(EP, NB, C);
	if (pipe(p) < 0 || pipe(quit) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	move_to(p[0], ND, 0);
	wr[D] = p[1];
	add(EP, ND, D);
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		/* The only holder of pipe d's read end. */
		char c;
		for (int fd = 3; fd < 64; fd++)
			if (fd != ND && fd != quit[0])
				close(fd);
		while (read(quit[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(quit[0]);
	close(ND);
	int ep2 = epoll_create1(0);
	int e = eventfd(0, EFD_NONBLOCK);
	if (ep2 < 0 || e < 0)
		tgt_fail("epoll, eventfd: %s", strerror(errno));
	move_to(e, EP2, 0);
	add(ep2, EP2, E);
	if (dup2(EP2, KE) < 0)
		tgt_fail("keep e: %s", strerror(errno));
	move_to(ep2, EP2, 0);
	wr[E] = KE;
	check_events("before the dump");
	tgt_ready();
	tgt_wait();

	check_events("after the restore");
	if (fcntl(NB, F_GETFD) != FD_CLOEXEC || fcntl(KA, F_GETFD) != 0 || fcntl(KB, F_GETFD) != 0 ||
	    fcntl(EP2, F_GETFD) != 0)
		tgt_fail("close-on-exec: fd %d %d, fd %d %d, fd %d %d, fd %d %d", NB, fcntl(NB, F_GETFD), KA,
			 fcntl(KA, F_GETFD), KB, fcntl(KB, F_GETFD), EP2, fcntl(EP2, F_GETFD));
	/* D: its file is only the child's, and still reported. */
	if (write(wr[D], "x", 1) != 1)
		tgt_fail("write D: %s", strerror(errno));
	expect(EP, D, "after the restore");
	del(NA, EBADF, "closed");
	del(KA, ENOENT, "a, watched under fd 41");
	del(NB, 0, "c");
	del(NB, ENOENT, "c again; b is watched under this number but fd 43 is c");
	if (dup2(KA, NA) < 0 || dup2(KB, NB) < 0)
		tgt_fail("dup2: %s", strerror(errno));
	del(NA, 0, "a, under fd 41 again");
	del(NB, 0, "b, under fd 43 again");
	del(ND, EBADF, "closed");
	/* Only D is left. */
	if (write(wr[A], "x", 1) != 1 || write(wr[B], "x", 1) != 1)
		tgt_fail("write: %s", strerror(errno));
	expect(EP, D, "after the DELs");
	if (write(quit[1], "q", 1) != 1)
		tgt_fail("quit: %s", strerror(errno));
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the child did not end well");
	tgt_pass();
}
