/*
 * unixpeercred: unix sockets whose peer credentials (SO_PEERCRED,
 * SO_PEERGROUPS) name different processes, each read before the dump and
 * compared after the restore. The socket file is in the result file's
 * directory.
 *
 *   fd 80, 81  a stream socketpair the parent made; 81 in the child: both
 *              name the parent;
 *   fd 82      a stream listener bound to DIR/peercred.sock (mode 0777):
 *              names the parent, which listened;
 *   fd 83      in the child, a client of 82 (names the parent, copied from
 *              the listener); fd 84 its accepted end, in the parent
 *              (names the child, which connected);
 *   fd 87      in the child, a client of 82 not accepted yet: accepted
 *              after the restore, the new socket must name the child;
 *   fd 85, 86  a seqpacket socketpair made by a process that then exited
 *              (its pid is free at the dump), in the parent: both name it;
 *   fd 88, 89  datagram sockets bound to abstract names and connected to
 *              each other, and fd 90 one bound to an abstract name,
 *              connected to a socket since closed, with a datagram
 *              "early" from an unnamed socket queued: no credentials
 *              (pid 0, uid and gid -1); 90 reads "early", from no name.
 *
 * Mode "setuid" (argv[2], run as root): the child takes uid 5432 and gid
 * 2345 with groups 7 and 8 before it connects, so that the credentials
 * differ from the parent's.
 *
 * Restored in a new PID namespace too, every pid reads as before (the
 * processes that made the calls had the dumped pids there), and so do the
 * ids and groups.
 *
 * Mode "outside": none of the above; the parent makes a stream socketpair
 * and forks a child holding both ends (fds 91, 92) and nothing else: a
 * dump of the child alone must refuse it, as its credentials name the
 * parent, alive outside the dump.
 *
 * Usage: unixpeercred RESULT_PATH [setuid|outside]
 */
#include "target.h"

#include <grp.h>
#include <libgen.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define MAXG 16

struct cred {
	struct ucred u;
	int ngroups;
	gid_t groups[MAXG];
};

static struct cred was[100];
static pid_t child, parent, gone_pid;
static int report[2];
static char sockpath[108];

static int same_cred(const struct cred *now, const struct cred *was)
{
	return now->u.pid == was->u.pid && now->u.uid == was->u.uid && now->u.gid == was->u.gid &&
	       now->ngroups == was->ngroups && memcmp(now->groups, was->groups, sizeof(gid_t) * now->ngroups) == 0;
}

static void must(int ok, const char *what)
{
	if (!ok)
		tgt_fail("%s: %s", what, strerror(errno));
}

static void move_to(int fd, int to)
{
	must(fd >= 0, "socket");
	must(dup2(fd, to) == to, "dup2");
	close(fd);
}

static void read_cred(int fd, struct cred *c)
{
	socklen_t l = sizeof(c->u);

	memset(c, 0, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->u, &l) < 0)
		tgt_fail("fd %d SO_PEERCRED: %s", fd, strerror(errno));
	l = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &l) < 0) {
		if (errno != ENODATA)
			tgt_fail("fd %d SO_PEERGROUPS: %s", fd, strerror(errno));
		l = 0;
	}
	c->ngroups = (int)(l / sizeof(gid_t));
}

static void expect_pid(int fd, pid_t pid, const char *who)
{
	if (was[fd].u.pid != pid)
		tgt_fail("before the dump, fd %d SO_PEERCRED pid %d, want %d (%s)", fd, was[fd].u.pid, pid, who);
}

/* Each fd's credentials now, against those read before the dump. */
static void check(const int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		struct cred now;
		int fd = fds[i];

		read_cred(fd, &now);
		if (!same_cred(&now, &was[fd]))
			tgt_fail("fd %d SO_PEERCRED pid %d uid %d gid %d (%d groups), was pid %d uid %d gid %d (%d groups)", fd,
				 now.u.pid, (int)now.u.uid, (int)now.u.gid, now.ngroups, was[fd].u.pid, (int)was[fd].u.uid,
				 (int)was[fd].u.gid, was[fd].ngroups);
	}
}

static socklen_t abstract(struct sockaddr_un *a, const char *what)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "gocr-peercred-%d-%s", (int)getpid(), what);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a->sun_path + 1));
}

static void connect_to_listener(int to)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(a.sun_path, sockpath);
	must(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to the listener");
	move_to(fd, to);
}

/* A socketpair made by a process that exits at once: it hands both ends
 * over, then is reaped. */
static void pair_of_gone_process(void)
{
	int sv[2], h[2];
	char b = 0;
	struct iovec iov = { &b, 1 };
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, h) == 0, "socketpair");
	gone_pid = fork();
	must(gone_pid >= 0, "fork");
	if (gone_pid == 0) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
			_exit(1);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(c), sv, sizeof(sv));
		_exit(sendmsg(h[1], &m, 0) == 1 ? 0 : 1);
	}
	must(recvmsg(h[0], &m, 0) == 1, "receive the gone process's pair");
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		tgt_fail("no fds from the gone process");
	memcpy(sv, CMSG_DATA(c), sizeof(sv));
	must(waitpid(gone_pid, NULL, 0) == gone_pid, "waitpid");
	close(h[0]);
	close(h[1]);
	move_to(sv[0], 85);
	move_to(sv[1], 86);
}

static void datagrams(void)
{
	struct sockaddr_un a, b, g, zn;
	socklen_t la = abstract(&a, "a"), lb = abstract(&b, "b"), lg = abstract(&g, "gone"), lz = abstract(&zn, "z");
	int x = socket(AF_UNIX, SOCK_DGRAM, 0), y = socket(AF_UNIX, SOCK_DGRAM, 0);
	int z = socket(AF_UNIX, SOCK_DGRAM, 0), t = socket(AF_UNIX, SOCK_DGRAM, 0), u = socket(AF_UNIX, SOCK_DGRAM, 0);

	must(bind(x, (struct sockaddr *)&a, la) == 0 && bind(y, (struct sockaddr *)&b, lb) == 0, "bind");
	must(connect(x, (struct sockaddr *)&b, lb) == 0 && connect(y, (struct sockaddr *)&a, la) == 0, "connect");
	must(bind(z, (struct sockaddr *)&zn, lz) == 0, "bind");
	must(sendto(u, "early", 5, 0, (struct sockaddr *)&zn, lz) == 5, "send to the socket connected later");
	must(bind(t, (struct sockaddr *)&g, lg) == 0 && connect(z, (struct sockaddr *)&g, lg) == 0, "connect");
	close(t);
	close(u);
	move_to(x, 88);
	move_to(y, 89);
	move_to(z, 90);
}

static const int child_fds[] = { 81, 83, 87 };
static const int parent_fds[] = { 80, 82, 84, 85, 86, 88, 89, 90 };

static void child_main(int setuid_mode)
{
	char ok = 'r';

	close(80);
	close(82);
	close(report[0]);
	if (setuid_mode) {
		gid_t g[2] = { 7, 8 };
		must(setgroups(2, g) == 0 && setresgid(2345, 2345, 2345) == 0 && setresuid(5432, 5432, 5432) == 0,
		     "take other ids");
	}
	connect_to_listener(83);
	connect_to_listener(87);
	for (size_t i = 0; i < sizeof(child_fds) / sizeof(child_fds[0]); i++)
		read_cred(child_fds[i], &was[child_fds[i]]);
	must(write(report[1], &ok, 1) == 1, "report ready");
	tgt_wait();
	for (size_t i = 0; i < sizeof(child_fds) / sizeof(child_fds[0]); i++) {
		struct cred now;
		int fd = child_fds[i];

		read_cred(fd, &now);
		if (!same_cred(&now, &was[fd])) {
			dprintf(report[1], "child fd %d SO_PEERCRED pid %d uid %d gid %d, was pid %d uid %d gid %d", fd, now.u.pid,
				(int)now.u.uid, (int)now.u.gid, was[fd].u.pid, (int)was[fd].u.uid, (int)was[fd].u.gid);
			_exit(1);
		}
	}
	if (was[81].u.pid != parent || was[83].u.pid != parent || was[87].u.pid != parent) {
		dprintf(report[1], "child: before the dump, fds 81 83 87 named pids %d %d %d, want the parent %d", was[81].u.pid,
			was[83].u.pid, was[87].u.pid, parent);
		_exit(1);
	}
	_exit(write(report[1], "ok", 2) == 2 ? 0 : 1);
}

/* Mode "outside": the child waits, holding the parent's pair. */
static void outside_mode(void)
{
	int sv[2];

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	move_to(sv[0], 91);
	move_to(sv[1], 92);
	child = fork();
	must(child >= 0, "fork");
	if (child == 0) {
		for (;;)
			pause();
	}
	close(91);
	close(92);
	tgt_ready();
	tgt_wait();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	tgt_pass();
}

int main(int argc, char **argv)
{
	int setuid_mode = argc > 2 && strcmp(argv[2], "setuid") == 0;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dirbuf[4096], c;
	int sv[2], fd;

	tgt_init(argc, argv);
	parent = getpid();
	if (argc > 2 && strcmp(argv[2], "outside") == 0)
		outside_mode();
	strncpy(dirbuf, argv[1], sizeof(dirbuf) - 1);
	snprintf(sockpath, sizeof(sockpath), "%s/peercred.sock", dirname(dirbuf));
	if (setuid_mode) {
		/* The child, with other ids, must reach the socket file:
		 * the test's directory and its parent are the test's own. */
		must(chmod(dirbuf, 0755) == 0 && chmod(dirname(dirbuf), 0755) == 0, "open the directory");
	}

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	move_to(sv[0], 80);
	move_to(sv[1], 81);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(a.sun_path, sockpath);
	unlink(sockpath);
	must(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind the listener");
	must(chmod(sockpath, 0777) == 0 && listen(fd, 4) == 0, "listen");
	move_to(fd, 82);
	pair_of_gone_process();
	datagrams();
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, report) == 0, "socketpair");
	child = fork();
	must(child >= 0, "fork");
	if (child == 0)
		child_main(setuid_mode);
	close(81);
	close(report[1]);
	if (read(report[0], &c, 1) != 1)
		tgt_fail("the child did not get ready");
	fd = accept(82, NULL, NULL);
	move_to(fd, 84);
	for (size_t i = 0; i < sizeof(parent_fds) / sizeof(parent_fds[0]); i++)
		read_cred(parent_fds[i], &was[parent_fds[i]]);
	expect_pid(80, parent, "made the pair");
	expect_pid(82, parent, "listened");
	expect_pid(84, child, "connected");
	expect_pid(85, gone_pid, "made the pair, then exited");
	expect_pid(86, gone_pid, "made the pair, then exited");
	expect_pid(88, 0, "connected by name");
	expect_pid(89, 0, "connected by name");
	expect_pid(90, 0, "connected by name");
	if (setuid_mode && (was[84].u.uid != 5432 || was[84].u.gid != 2345 || was[84].ngroups != 2))
		tgt_fail("before the dump, fd 84 names uid %d gid %d with %d groups, want the child's 5432 2345 and 2",
			 (int)was[84].u.uid, (int)was[84].u.gid, was[84].ngroups);
	tgt_ready();
	tgt_wait();

	check(parent_fds, sizeof(parent_fds) / sizeof(parent_fds[0]));
	{
		char buf[16];
		struct sockaddr_un from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(90, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);

		if (n != 5 || memcmp(buf, "early", 5) != 0 || fl != 0)
			tgt_fail("fd 90 reads %zd bytes (%s) from a name of %u bytes, want \"early\" from none", n,
				 n < 0 ? strerror(errno) : "data", (unsigned)fl);
	}
	/* The connection not yet accepted: its socket names the child. */
	fd = accept(82, NULL, NULL);
	must(fd >= 0, "accept the waiting connection");
	{
		struct cred now;

		read_cred(fd, &now);
		if (now.u.pid != child || now.u.uid != was[84].u.uid || now.u.gid != was[84].u.gid || now.ngroups != was[84].ngroups)
			tgt_fail("the connection accepted after the restore names pid %d uid %d gid %d, want the child's %d %d %d",
				 now.u.pid, (int)now.u.uid, (int)now.u.gid, child, (int)was[84].u.uid, (int)was[84].u.gid);
	}
	must(kill(child, SIGTERM) == 0, "signal the child");
	{
		char msg[512] = "";
		ssize_t n = read(report[0], msg, sizeof(msg) - 1);
		int status;

		must(waitpid(child, &status, 0) == child, "waitpid");
		if (n != 2 || memcmp(msg, "ok", 2) != 0)
			tgt_fail("%s", n > 0 ? msg : "the child said nothing");
	}
	tgt_pass();
}
