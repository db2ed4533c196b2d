/*
 * mqueue: POSIX message queues (man 7 mq_overview) a restore must bring
 * back:
 *
 *   queue A  "/gocr-mq-PID-a", mode 0640, at most 8 messages of 64 bytes,
 *            open read-write and blocking at fd 50, and again write-only
 *            and O_NONBLOCK at fd 51 (its own open file description);
 *            six messages of priorities 1, 5, 1, 0, 5 and 3 (an empty one);
 *   queue B  "/gocr-mq-PID-b", unlinked while open at fd 52 (O_RDONLY), at
 *            most 2 messages of 16 bytes, holding one of priority 7.
 *
 * After the restore it checks each fd's attributes (mq_getattr), flags,
 * the queues' modes and owners, that fds 50 and 51 are one queue and B is
 * still unlinked, and receives every message in order (highest priority
 * first, oldest first within one) with its priority.
 *
 * Mode "notify" registers for A's notification (mq_notify), which a dump
 * must refuse.
 *
 * Usage: mqueue RESULT_PATH [notify]
 */
#include "target.h"

#include <mqueue.h>
#include <sys/stat.h>

struct msg {
	const char *text;
	unsigned prio;
};
static const struct msg sent[] = {
	{ "p1-a", 1 }, { "p5-a", 5 }, { "p1-b", 1 }, { "p0", 0 }, { "p5-b", 5 }, { "", 3 },
};
static const struct msg order[] = {
	{ "p5-a", 5 }, { "p5-b", 5 }, { "", 3 }, { "p1-a", 1 }, { "p1-b", 1 }, { "p0", 0 },
};
#define NMSGS 6

static void check_attr(int fd, long maxmsg, long msgsize, long cur, long flags, const char *what)
{
	struct mq_attr a;
	if (mq_getattr(fd, &a) < 0)
		tgt_fail("%s: mq_getattr: %s", what, strerror(errno));
	if (a.mq_maxmsg != maxmsg || a.mq_msgsize != msgsize || a.mq_curmsgs != cur || a.mq_flags != flags)
		tgt_fail("%s: maxmsg %ld msgsize %ld curmsgs %ld flags %#lx, want %ld %ld %ld %#lx", what, a.mq_maxmsg,
			 a.mq_msgsize, a.mq_curmsgs, a.mq_flags, maxmsg, msgsize, cur, flags);
}

static void check_link(int fd, const char *want)
{
	char path[64], link[256];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		tgt_fail("readlink %s: %s", path, strerror(errno));
	link[n] = 0;
	if (strcmp(link, want) != 0)
		tgt_fail("fd %d is %s, want %s", fd, link, want);
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	int notify = argc > 2 && strcmp(argv[2], "notify") == 0;
	char a_name[64], b_name[64], want[80];
	snprintf(a_name, sizeof(a_name), "/gocr-mq-%d-a", getpid());
	snprintf(b_name, sizeof(b_name), "/gocr-mq-%d-b", getpid());

	umask(0);
	struct mq_attr aa = { .mq_maxmsg = 8, .mq_msgsize = 64 };
	struct mq_attr ba = { .mq_maxmsg = 2, .mq_msgsize = 16 };
	mqd_t a = mq_open(a_name, O_RDWR | O_CREAT | O_EXCL, 0640, &aa);
	mqd_t b = mq_open(b_name, O_RDWR | O_CREAT | O_EXCL, 0600, &ba);
	if (a < 0 || b < 0)
		tgt_fail("setup: mq_open: %s", strerror(errno));
	mqd_t aw = mq_open(a_name, O_WRONLY | O_NONBLOCK);
	mqd_t br = mq_open(b_name, O_RDONLY);
	if (aw < 0 || br < 0)
		tgt_fail("setup: mq_open again: %s", strerror(errno));
	if (dup2(a, 50) < 0 || dup2(aw, 51) < 0 || dup2(br, 52) < 0)
		tgt_fail("setup: dup2: %s", strerror(errno));
	for (int i = 0; i < NMSGS; i++)
		if (mq_send(51, sent[i].text, strlen(sent[i].text), sent[i].prio) < 0)
			tgt_fail("setup: mq_send %d: %s", i, strerror(errno));
	if (mq_send(b, "gone", 4, 7) < 0)
		tgt_fail("setup: mq_send to B: %s", strerror(errno));
	close(a);
	close(aw);
	close(b);
	close(br);
	if (mq_unlink(b_name) < 0)
		tgt_fail("setup: mq_unlink: %s", strerror(errno));
	if (notify) {
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
		signal(SIGUSR1, SIG_IGN);
		if (mq_notify(50, &ev) < 0)
			tgt_fail("setup: mq_notify: %s", strerror(errno));
	}

	tgt_ready();
	tgt_wait();

	check_attr(50, 8, 64, NMSGS, 0, "fd 50");
	check_attr(51, 8, 64, NMSGS, O_NONBLOCK, "fd 51");
	check_attr(52, 2, 16, 1, 0, "fd 52");
	if ((fcntl(50, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(51, F_GETFL) & O_ACCMODE) != O_WRONLY ||
	    (fcntl(52, F_GETFL) & O_ACCMODE) != O_RDONLY)
		tgt_fail("access modes %#x %#x %#x", fcntl(50, F_GETFL), fcntl(51, F_GETFL), fcntl(52, F_GETFL));
	struct stat sa, sb;
	if (fstat(50, &sa) < 0 || fstat(52, &sb) < 0)
		tgt_fail("fstat: %s", strerror(errno));
	if ((sa.st_mode & 07777) != 0640 || (sb.st_mode & 07777) != 0600 || sa.st_uid != getuid() || sb.st_uid != getuid())
		tgt_fail("modes %#o %#o owners %d %d", sa.st_mode & 07777, sb.st_mode & 07777, sa.st_uid, sb.st_uid);
	check_link(50, a_name);
	check_link(51, a_name);
	snprintf(want, sizeof(want), "%s (deleted)", b_name);
	check_link(52, want);

	char buf[64];
	unsigned prio;
	for (int i = 0; i < NMSGS; i++) {
		ssize_t n = mq_receive(50, buf, sizeof(buf), &prio);
		if (n < 0)
			tgt_fail("mq_receive %d: %s", i, strerror(errno));
		if ((size_t)n != strlen(order[i].text) || memcmp(buf, order[i].text, n) != 0 || prio != order[i].prio)
			tgt_fail("message %d: %.*s prio %u, want %s prio %u", i, (int)n, buf, prio, order[i].text, order[i].prio);
	}
	ssize_t n = mq_receive(52, buf, sizeof(buf), &prio);
	if (n != 4 || memcmp(buf, "gone", 4) != 0 || prio != 7)
		tgt_fail("queue B: %zd bytes, prio %u", n, prio);
	/* fds 50 and 51 are one queue. */
	if (mq_send(51, "again", 5, 2) < 0 || mq_receive(50, buf, sizeof(buf), &prio) != 5 || prio != 2)
		tgt_fail("fd 51 does not reach fd 50's queue: %s", strerror(errno));
	mq_unlink(a_name);
	tgt_pass();
}
