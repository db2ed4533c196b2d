/*
 * epollshared: one epoll instance reached through two fds of this process
 * (dup) and one of its child (fork), watching a readable eventfd. After
 * the restore the instance has its watch once, and every fd of it reports
 * the event.
 */
#include "target.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

static int ready_on(int ep)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, 1000);
	return n == 1 && ev.data.u64 == 77;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	int efd = eventfd(1, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
	if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
		tgt_fail("setup: %s", strerror(errno));
	int ep2 = dup(ep);
	int p[2];
	if (ep2 < 0 || pipe(p) < 0)
		tgt_fail("dup/pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child == 0) {
		/* The child answers on the pipe once the parent asks. */
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) != 1)
			;
		_exit(ready_on(ep) ? 0 : 1);
	}
	close(p[0]);
	if (!ready_on(ep) || !ready_on(ep2))
		tgt_fail("no event before the dump");
	tgt_ready();
	tgt_wait();
	if (!ready_on(ep))
		tgt_fail("epoll fd %d reports no event after restore", ep);
	if (!ready_on(ep2))
		tgt_fail("its dup %d reports no event after restore", ep2);
	if (write(p[1], "x", 1) != 1)
		tgt_fail("write: %s", strerror(errno));
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the child's fd of the instance reports no event after restore");
	tgt_pass();
}
