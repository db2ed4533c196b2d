/*
 * unixnamed: unix sockets with names, listening, connected through a
 * listener, waiting to be accepted, connected outside the job, or whose
 * peer is gone. DIR is a directory for the socket files; DIR/log.sock is
 * a datagram socket the test holds, outside the job.
 *
 *   fd 80  stream listener bound to DIR/listen.sock, backlog 5,
 *          SO_REUSEADDR; its file mode 0640, owner uid 1 gid 2;
 *   fd 81  accepted from 80 (so named DIR/listen.sock too), fd 82 its
 *          client, in a child: bytes queued both ways; 81 SO_RCVTIMEO;
 *   fd 83  a client of 80 not accepted yet, in the child, O_NONBLOCK;
 *          fd 84 another, behind it, here, shut for writing;
 *   fd 85  seqpacket listener on the abstract name @gocr-unixnamed-PID;
 *   fd 86  accepted from 85, fd 87 its client, bound itself to
 *          @gocr-unixnamed-PID-client: records both ways, an empty one
 *          among them; 87 shut for writing;
 *   fd 88  datagram socket bound to DIR/dgram.sock, O_NONBLOCK: datagrams
 *          queued from an unnamed socket (closed since) and from 89, an
 *          empty one and a long one among them;
 *   fd 89  datagram socket bound to @gocr-unixnamed-PID-d, connected to
 *          88: a datagram from an unnamed socket, sent before it
 *          connected, then one from 88;
 *   fd 90  datagram socket connected to DIR/log.sock, outside the job
 *          (if there is none, fd 90 is left out: the test that needs it
 *          makes it and checks what it receives);
 *   fd 91  stream socket whose peer is closed, with its last words queued;
 *   fd 92  stream socket never bound nor connected; fd 93 datagram socket
 *          bound to @gocr-unixnamed-PID-lone.
 *
 * Checked: every name (getsockname, getpeername, and each datagram's
 * sender), SO_ACCEPTCONN, SO_REUSEADDR, the socket file's mode and owner,
 * status flags, every queued message with its boundaries and then
 * EAGAIN or the end of file; accept(2) on 80 gives 83's connection, then
 * 84's, then nothing, and each works both ways; probes both ways on each
 * connection; 90 sends "probe-N" (N: 1 before the dump, 2 after) to the
 * test's socket; 91 reads its last words, then the end of file, and
 * sending fails with EPIPE. The child checks its fds 82 and 83 once the
 * parent has sent to them, then sends back. Made and checked once, then
 * made again for the dump.
 *
 * Mode "external" (argv[3]): fd 80 connects to DIR/ext.sock, a listener
 * of the test's, which sends "from-outside" and is then gone: 80 reads
 * it, then the end of file.
 *
 * Usage: unixnamed RESULT_PATH DIR [external]
 */
#include "target.h"

#include <poll.h>
#include <stddef.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define LONG_LEN 3000

static const char *dir;
static int pass, have_log;
static pid_t child;
static char longmsg[LONG_LEN];

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

/* A name: a path under DIR ("/x"), or an abstract one ("@x"). */
static socklen_t mkaddr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (name[0] == '@') {
		int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "gocr-unixnamed-%d%s", getpid(), name + 1);
		return offsetof(struct sockaddr_un, sun_path) + 1 + n;
	}
	snprintf(a->sun_path, sizeof(a->sun_path), "%s%s", dir, name);
	return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static void bind_to(int fd, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, name);

	if (bind(fd, (struct sockaddr *)&a, l) < 0)
		tgt_fail("bind fd %d to %s: %s", fd, name, strerror(errno));
}

static void connect_to(int fd, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, name);

	if (connect(fd, (struct sockaddr *)&a, l) < 0)
		tgt_fail("connect fd %d to %s: %s", fd, name, strerror(errno));
}

static void sendto_name(int fd, const char *name, const void *b, size_t len)
{
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, name);

	if (sendto(fd, b, len, MSG_DONTWAIT, (struct sockaddr *)&a, l) != (ssize_t)len)
		tgt_fail("sendto %s from fd %d: %s", name, fd, strerror(errno));
}

static void send_str(int fd, const char *s)
{
	size_t len = strlen(s);

	if (send(fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		tgt_fail("send %s on fd %d: %s", s, fd, strerror(errno));
}

static void child_main(void);

static void setup(void)
{
	int sv[2], one = 1, tmp;
	struct timeval tv = { 1, 500000 };

	/* Path listener, an accepted connection, two waiting. */
	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 80);
	bind_to(80, "/listen.sock");
	must(setsockopt(80, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0, "SO_REUSEADDR");
	must(listen(80, 5) == 0, "listen 80");
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/listen.sock", dir);
		must(chmod(path, 0640) == 0, "chmod listen.sock");
		must(chown(path, 1, 2) == 0, "chown listen.sock");
	}
	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 82);
	connect_to(82, "/listen.sock");
	move_to(accept(80, NULL, NULL), 81);
	send_str(82, "to-server-1");
	send_str(82, "to-server-2");
	send_str(81, "to-client");
	must(setsockopt(81, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "SO_RCVTIMEO");
	move_to(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0), 83);
	connect_to(83, "/listen.sock");
	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 84);
	connect_to(84, "/listen.sock");
	must(shutdown(84, SHUT_WR) == 0, "shutdown 84");

	/* Abstract seqpacket listener, a client with a name of its own. */
	move_to(socket(AF_UNIX, SOCK_SEQPACKET, 0), 85);
	bind_to(85, "@");
	must(listen(85, 2) == 0, "listen 85");
	move_to(socket(AF_UNIX, SOCK_SEQPACKET, 0), 87);
	bind_to(87, "@-client");
	connect_to(87, "@");
	move_to(accept(85, NULL, NULL), 86);
	send_str(87, "r1");
	must(send(87, "", 0, 0) == 0, "send empty record");
	send_str(87, "r3");
	send_str(86, "back");
	must(shutdown(87, SHUT_WR) == 0, "shutdown 87");

	/* Datagrams, from several senders. */
	move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 88);
	bind_to(88, "/dgram.sock");
	move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 89);
	bind_to(89, "@-d");
	tmp = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(tmp >= 0, "socket");
	sendto_name(tmp, "/dgram.sock", "anon", 4);
	sendto_name(89, "/dgram.sock", "from-89", 7);
	sendto_name(89, "/dgram.sock", "", 0);
	sendto_name(tmp, "/dgram.sock", longmsg, LONG_LEN);
	sendto_name(tmp, "@-d", "early", 5);
	close(tmp);
	connect_to(89, "/dgram.sock");
	sendto_name(88, "@-d", "reply", 5);
	must(fcntl(88, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK 88");

	/* Outside the job, by path. */
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/log.sock", dir);
		have_log = access(path, F_OK) == 0;
	}
	if (have_log) {
		move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 90);
		connect_to(90, "/log.sock");
	}

	/* A peer gone. */
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	move_to(sv[0], 91);
	send_str(sv[1], "last words");
	close(sv[1]);

	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 92);
	move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 93);
	bind_to(93, "@-lone");

	/* The child takes 82 and 83; each process closes the other's. */
	{
		int ready[2];
		char c;

		must(pipe(ready) == 0, "pipe");
		child = fork();
		must(child >= 0, "fork");
		for (int fd = 80; fd <= 93; fd++)
			if ((fd == 82 || fd == 83) != (child == 0))
				close(fd);
		if (child == 0) {
			close(ready[0]);
			if (write(ready[1], "r", 1) != 1)
				_exit(20);
			close(ready[1]);
			child_main();
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1)
			tgt_fail("the child did not get ready");
		close(ready[0]);
	}
}

/* The socket's own name (peer 0) or its peer's is name; "" for none. */
static void check_name(int fd, int peer, const char *name)
{
	struct sockaddr_un a, want = { .sun_family = AF_UNIX };
	socklen_t l = sizeof(a), wl = name[0] ? mkaddr(&want, name) : offsetof(struct sockaddr_un, sun_path);
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &l) : getsockname(fd, (struct sockaddr *)&a, &l);

	if (r < 0)
		tgt_fail("fd %d %s: %s", fd, peer ? "getpeername" : "getsockname", strerror(errno));
	if (l != wl || memcmp(&a, &want, wl))
		tgt_fail("fd %d %s is %.*s (%u bytes), want %s", fd, peer ? "peer's name" : "name",
			 (int)(l > 3 ? l - 3 : 0), a.sun_path + 1, l, name);
}

static int intopt(int fd, int opt)
{
	int v;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0)
		tgt_fail("getsockopt fd %d option %d: %s", fd, opt, strerror(errno));
	return v;
}

static char rbuf[2 * LONG_LEN];

/* Reads one message of fd without waiting, and who sent it. */
static ssize_t recv_from(int fd, struct sockaddr_un *from, socklen_t *fl)
{
	*fl = sizeof(*from);
	return recvfrom(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT, (struct sockaddr *)from, fl);
}

/* The next message at fd is want (len bytes), from the socket named
 * sender ("" unnamed, NULL not checked). */
static void expect(int fd, const char *want, size_t len, const char *sender)
{
	struct sockaddr_un from, w;
	socklen_t fl, wl;
	ssize_t n = recv_from(fd, &from, &fl);

	if (n < 0 || (size_t)n != len || memcmp(rbuf, want, len))
		tgt_fail("fd %d read %zd bytes %.*s (%s), want %zu bytes %.*s", fd, n, n > 0 ? (int)(n < 16 ? n : 16) : 0, rbuf,
			 n < 0 ? strerror(errno) : "", len, (int)(len < 16 ? len : 16), want);
	if (!sender)
		return;
	wl = sender[0] ? mkaddr(&w, sender) : 0;
	if (!sender[0] ? fl > offsetof(struct sockaddr_un, sun_path) : (fl != wl || memcmp(&from, &w, wl)))
		tgt_fail("fd %d: %.8s... came from %.*s (%u bytes), want %s", fd, want, (int)(fl > 3 ? fl - 3 : 0), from.sun_path + 1, fl,
			 sender[0] ? sender : "an unnamed socket");
}

static void expect_str(int fd, const char *want, const char *sender)
{
	expect(fd, want, strlen(want), sender);
}

/* Nothing more waits at fd: EAGAIN, or the end of file if eof. */
static void expect_end(int fd, int eof)
{
	struct sockaddr_un from;
	socklen_t fl;
	ssize_t n = recv_from(fd, &from, &fl);

	if (eof ? n != 0 : (n >= 0 || errno != EAGAIN))
		tgt_fail("fd %d read %zd (%s) after its messages, want %s", fd, n, n < 0 ? strerror(errno) : "data",
			 eof ? "the end of file" : "EAGAIN");
}

/* The failure the child reported, from the result file it wrote. */
static void child_failed(int status)
{
	char buf[2048] = "";
	int f = open(tgt_result_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);

	if (f >= 0)
		close(f);
	if (n > 6 && strncmp(buf, "FAIL: ", 6) == 0) {
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
		tgt_fail("child: %s", buf + 6);
	}
	tgt_fail("child exit status %#x", status);
}

static void verify(void)
{
	struct stat st;
	char path[256], probe_msg[16];
	int c, c83, status;

	pass++;
	check_name(80, 0, "/listen.sock");
	check_name(81, 0, "/listen.sock");
	check_name(85, 0, "@");
	check_name(86, 0, "@");
	check_name(86, 1, "@-client");
	check_name(87, 0, "@-client");
	check_name(87, 1, "@");
	check_name(88, 0, "/dgram.sock");
	check_name(89, 0, "@-d");
	check_name(89, 1, "/dgram.sock");
	if (have_log)
		check_name(90, 1, "/log.sock");
	check_name(92, 0, "");
	check_name(93, 0, "@-lone");
	if (!intopt(80, SO_ACCEPTCONN) || !intopt(85, SO_ACCEPTCONN) || intopt(81, SO_ACCEPTCONN) || intopt(92, SO_ACCEPTCONN))
		tgt_fail("SO_ACCEPTCONN: 80 %d 85 %d 81 %d 92 %d, want 1 1 0 0", intopt(80, SO_ACCEPTCONN),
			 intopt(85, SO_ACCEPTCONN), intopt(81, SO_ACCEPTCONN), intopt(92, SO_ACCEPTCONN));
	if (!intopt(80, SO_REUSEADDR) || intopt(85, SO_REUSEADDR))
		tgt_fail("SO_REUSEADDR: 80 %d 85 %d, want 1 0", intopt(80, SO_REUSEADDR), intopt(85, SO_REUSEADDR));
	{
		struct timeval tv;
		socklen_t l = sizeof(tv);

		must(getsockopt(81, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) == 0, "SO_RCVTIMEO");
		if (tv.tv_sec != 1 || tv.tv_usec < 490000 || tv.tv_usec > 510000)
			tgt_fail("fd 81 SO_RCVTIMEO %ld.%06ld, want 1.5", tv.tv_sec, tv.tv_usec);
	}
	snprintf(path, sizeof(path), "%s/listen.sock", dir);
	must(lstat(path, &st) == 0, "stat listen.sock");
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640 || st.st_uid != 1 || st.st_gid != 2)
		tgt_fail("%s: mode %o uid %d gid %d, want a socket 0640 uid 1 gid 2", path, st.st_mode, st.st_uid, st.st_gid);
	if (!(fcntl(88, F_GETFL) & O_NONBLOCK) || (fcntl(81, F_GETFL) & O_NONBLOCK))
		tgt_fail("O_NONBLOCK: 88 %d 81 %d, want 1 0", !!(fcntl(88, F_GETFL) & O_NONBLOCK), !!(fcntl(81, F_GETFL) & O_NONBLOCK));

	/* Queues, boundaries, senders. */
	expect_str(81, "to-server-1to-server-2", NULL);
	expect_end(81, 0);
	expect_str(86, "r1", NULL);
	expect(86, "", 0, NULL);
	expect_str(86, "r3", NULL);
	expect_end(86, 1);
	expect_str(87, "back", NULL);
	expect_end(87, 0);
	send_str(86, "probe");
	expect_str(87, "probe", NULL);
	expect_str(88, "anon", "");
	expect_str(88, "from-89", "@-d");
	expect(88, "", 0, "@-d");
	expect(88, longmsg, LONG_LEN, "");
	expect_end(88, 0);
	expect_str(89, "early", "");
	expect_str(89, "reply", "/dgram.sock");
	expect_end(89, 0);
	send_str(89, "probe-d");
	expect_str(88, "probe-d", "@-d");
	snprintf(probe_msg, sizeof(probe_msg), "probe-%d", pass);
	if (have_log)
		send_str(90, probe_msg);
	expect_str(91, "last words", NULL);
	expect_end(91, 1);
	if (send(91, "x", 1, MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		tgt_fail("fd 91 send to a peer gone: %s, want EPIPE", strerror(errno));

	/* The connections waiting on 80, in order: 83's (the child's,
	 * which has sent nothing yet), then 84's (shut for writing). */
	c83 = accept(80, NULL, NULL);
	must(c83 >= 0, "accept 83's connection");
	if (recv(c83, rbuf, 1, MSG_DONTWAIT) >= 0 || errno != EAGAIN)
		tgt_fail("the first connection waiting on fd 80 is not 83's: it reads %s", errno == EAGAIN ? "data" : "the end of file");
	send_str(c83, "hi83");
	c = accept(80, NULL, NULL);
	must(c >= 0, "accept 84's connection");
	expect_end(c, 1);
	send_str(c, "hi84");
	expect_str(84, "hi84", NULL);
	close(c);
	{
		struct pollfd pf = { .fd = 80, .events = POLLIN };

		if (poll(&pf, 1, 0) != 0)
			tgt_fail("fd 80 has a third connection waiting");
	}

	/* The child's part, then what it sent back. */
	send_str(81, "probe-to-child");
	if (kill(child, SIGTERM) < 0 || waitpid(child, &status, 0) != child)
		tgt_fail("end child %d: %s", child, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		child_failed(status);
	expect_str(81, "from-child", NULL);
	expect_str(c83, "c83", NULL);
	close(c83);
}

/* The child's part: its fds 82 and 83 once the parent asks. */
static void child_main(void)
{
	tgt_wait();
	check_name(82, 1, "/listen.sock");
	check_name(82, 0, "");
	check_name(83, 1, "/listen.sock");
	if (!(fcntl(83, F_GETFL) & O_NONBLOCK) || (fcntl(82, F_GETFL) & O_NONBLOCK))
		tgt_fail("O_NONBLOCK: 83 %d 82 %d, want 1 0", !!(fcntl(83, F_GETFL) & O_NONBLOCK), !!(fcntl(82, F_GETFL) & O_NONBLOCK));
	expect_str(82, "to-clientprobe-to-child", NULL);
	expect_end(82, 0);
	expect_str(83, "hi83", NULL);
	send_str(82, "from-child");
	send_str(83, "c83");
	_exit(0);
}

static void teardown(void)
{
	char path[256];

	for (int fd = 80; fd <= 93; fd++)
		if (fd != 82 && fd != 83)
			close(fd);
	snprintf(path, sizeof(path), "%s/listen.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dgram.sock", dir);
	unlink(path);
}

static void external(void)
{
	int n = 0;

	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 80);
	connect_to(80, "/ext.sock");
	/* The test's hello is there once it has accepted. */
	for (int k = 0; k < 500 && n != 12; k++) {
		if (ioctl(80, SIOCINQ, &n) < 0)
			tgt_fail("SIOCINQ: %s", strerror(errno));
		usleep(10000);
	}
	if (n != 12)
		tgt_fail("fd 80 holds %d bytes, want the test's 12", n);
	tgt_ready();
	tgt_wait();
	expect_str(80, "from-outside", NULL);
	expect_end(80, 1);
	if (send(80, "x", 1, MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		tgt_fail("fd 80 send to a peer gone: %s, want EPIPE", strerror(errno));
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: unixnamed RESULT_PATH DIR [external]");
	dir = argv[2];
	if (argc > 3 && strcmp(argv[3], "external") == 0)
		external();
	for (int k = 0; k < LONG_LEN; k++)
		longmsg[k] = 'a' + k % 26;
	setup();
	verify();
	teardown();
	setup();
	tgt_log("unixnamed: parent %d, child %d\n", getpid(), child);
	tgt_ready();
	tgt_wait();
	verify();
	tgt_pass();
}
