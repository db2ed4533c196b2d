/*
 * TCP and UDP sockets mid-conversation (argv[2] picks the case):
 *   tcp4, tcp6, dual  a listener (backlog 7, SO_REUSEADDR) and a connection
 *                     to it, both ends in this process: the server's
 *                     receive queue full of unread bytes, the client's send
 *                     queue holding more it could not send yet (the
 *                     server's window is shut), a reply the client has not
 *                     read, and options on the client; "dual" listens on
 *                     :: with IPV6_V6ONLY off and connects over IPv4.
 *   pending           a listener with a connection it has not accepted.
 *   half              a connection the client shut for writing after
 *                     sending (FIN_WAIT2 / CLOSE_WAIT), unread data both
 *                     ways; its listener without SO_REUSEADDR, on an fd
 *                     above the connection's.
 *   udp4, udp6        bound and connected UDP sockets with datagrams queued
 *                     (an empty one too) from two senders.
 *   busy              a connection between this process and its child,
 *                     which waits in recv(2) on it and echoes what comes:
 *                     after SIGTERM the parent sends, and reads the echo.
 *   urgent            busy, and a connection in this process with an
 *                     urgent byte (MSG_OOB) waiting at its server end,
 *                     which gocr refuses: after SIGTERM the server reads
 *                     it and both ends exchange data.
 *   timewait          a listener without SO_REUSEADDR that accepted a
 *                     connection and closed it first (its port holds the
 *                     connection in TIME_WAIT), and a second connection
 *                     to it, open: after SIGTERM both ends of the second
 *                     exchange data and the listener accepts a third.
 *   external PORT     a connection to 127.0.0.1:PORT, a peer outside the
 *                     job: sends "from-job-1" now, "from-job-1b" when the
 *                     peer says "go"; after SIGTERM reads "from-outside-1"
 *                     and "from-outside-2", and sends "from-job-2".
 *   pending-outside   a listener on 127.0.0.1 whose port it writes to
 *                     RESULT.port, for a client outside the job to connect
 *                     to: after SIGTERM it accepts the connection, reads
 *                     "x" and answers "y".
 *   external-half PORT  a connection to 127.0.0.1:PORT, a peer outside the
 *                     job, shut for writing after "from-job-1" was sent
 *                     (FIN_WAIT2): after SIGTERM it reads "from-outside-1".
 * After SIGTERM each checks every byte, address and option and that the
 * sockets still work.
 */
#include "target.h"
#include "sockint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

typedef struct sockaddr_storage ss_t;

static int family;
static socklen_t alen;

static void loopback(ss_t *a, int fam, int port)
{
	memset(a, 0, sizeof(*a));
	if (fam == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)a;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->sin_port = htons(port);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)a;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		s->sin6_port = htons(port);
	}
}

static int port_of(const ss_t *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)a)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static void names(int fd, ss_t *local, ss_t *peer)
{
	socklen_t l = sizeof(*local);

	memset(local, 0, sizeof(*local));
	if (getsockname(fd, (struct sockaddr *)local, &l) < 0)
		tgt_fail("getsockname: %s", strerror(errno));
	if (peer) {
		memset(peer, 0, sizeof(*peer));
		l = sizeof(*peer);
		if (getpeername(fd, (struct sockaddr *)peer, &l) < 0)
			tgt_fail("getpeername: %s", strerror(errno));
	}
}

static void same_names(int fd, const ss_t *local, const ss_t *peer, const char *what)
{
	ss_t l, p;

	names(fd, &l, peer ? &p : NULL);
	if (memcmp(&l, local, sizeof(l)) != 0)
		tgt_fail("%s: local address changed (port %d, was %d)", what, port_of(&l), port_of(local));
	if (peer && memcmp(&p, peer, sizeof(p)) != 0)
		tgt_fail("%s: peer address changed (port %d, was %d)", what, port_of(&p), port_of(peer));
}

/* Reads exactly n bytes within 10 s, whatever O_NONBLOCK says. */
static void read_exact(int fd, char *buf, size_t n, const char *what)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 10000) <= 0)
			tgt_fail("%s: %zu of %zu bytes within 10 s", what, got, n);
		r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			tgt_fail("%s: read after %zu of %zu bytes: %zd (%s)", what, got, n, r, r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

static void expect(int fd, const char *want, const char *what)
{
	char buf[256];
	size_t n = strlen(want);

	read_exact(fd, buf, n, what);
	if (memcmp(buf, want, n) != 0)
		tgt_fail("%s: read %.*s, want %s", what, (int)n, buf, want);
}

static void send_all(int fd, const char *s, size_t n, const char *what)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, 10000) <= 0)
				tgt_fail("%s: cannot send within 10 s", what);
			continue;
		}
		if (w <= 0)
			tgt_fail("%s: send: %s", what, strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

static void expect_eof(int fd, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t r;

	if (poll(&p, 1, 10000) <= 0)
		tgt_fail("%s: no EOF within 10 s", what);
	r = recv(fd, &c, 1, MSG_DONTWAIT);
	if (r != 0)
		tgt_fail("%s: read %zd (%s), want EOF", what, r, r < 0 ? strerror(errno) : "data");
}

static int pattern(size_t i) { return (int)((i * 7) % 251); }

static int listener_reuse(int fam, int backlog, int reuse)
{
	ss_t a;
	int l = socket(fam, SOCK_STREAM, 0);

	if (l < 0)
		tgt_fail("socket: %s", strerror(errno));
	setint(l, SOL_SOCKET, SO_REUSEADDR, reuse, "SO_REUSEADDR");
	if (fam == AF_INET6 && family == AF_INET) {
		/* dual: :: with IPV6_V6ONLY off takes IPv4 too (man 7 ipv6) */
		setint(l, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
		memset(&a, 0, sizeof(a));
		((struct sockaddr_in6 *)&a)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&a)->sin6_addr = in6addr_any;
	} else {
		if (fam == AF_INET6)
			setint(l, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
		loopback(&a, fam, 0);
	}
	/* A small window for every connection it accepts. */
	setint(l, SOL_SOCKET, SO_RCVBUF, 4096, "SO_RCVBUF");
	if (bind(l, (struct sockaddr *)&a, fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) < 0)
		tgt_fail("bind: %s", strerror(errno));
	if (listen(l, backlog) < 0)
		tgt_fail("listen: %s", strerror(errno));
	return l;
}

static int listener(int fam, int backlog) { return listener_reuse(fam, backlog, 1); }

static int connect_to(int l)
{
	ss_t a;
	int c, port;

	names(l, &a, NULL);
	port = port_of(&a);
	loopback(&a, family, port);
	c = socket(family, SOCK_STREAM, 0);
	if (c < 0)
		tgt_fail("socket: %s", strerror(errno));
	if (connect(c, (struct sockaddr *)&a, alen) < 0)
		tgt_fail("connect to port %d: %s", port, strerror(errno));
	return c;
}

static int accept_one(int l)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	int s;

	if (poll(&p, 1, 10000) <= 0)
		tgt_fail("no connection to accept within 10 s");
	s = accept(l, NULL, NULL);
	if (s < 0)
		tgt_fail("accept: %s", strerror(errno));
	return s;
}

static void client_options(int c)
{
	struct linger lg = { 1, 3 };
	struct timeval tv = { 2, 500000 };

	setint(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	setint(c, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	setint(c, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
	setint(c, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
	setint(c, IPPROTO_TCP, TCP_KEEPCNT, 5, "TCP_KEEPCNT");
	if (family == AF_INET) {
		setint(c, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
		setint(c, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
	} else {
		setint(c, IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS");
		setint(c, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33, "IPV6_UNICAST_HOPS");
	}
	if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		tgt_fail("SO_LINGER: %s", strerror(errno));
	if (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		tgt_fail("SO_RCVTIMEO: %s", strerror(errno));
	setint(c, SOL_SOCKET, SO_SNDBUF, 65536, "SO_SNDBUF");
}

static void check_client_options(int c)
{
	struct linger lg;
	struct timeval tv;
	socklen_t l;

	wantint(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	wantint(c, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	wantint(c, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
	wantint(c, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
	wantint(c, IPPROTO_TCP, TCP_KEEPCNT, 5, "TCP_KEEPCNT");
	if (family == AF_INET) {
		wantint(c, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
		wantint(c, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
	} else {
		wantint(c, IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS");
		wantint(c, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33, "IPV6_UNICAST_HOPS");
	}
	wantint(c, SOL_SOCKET, SO_SNDBUF, 2 * 65536, "SO_SNDBUF");
	l = sizeof(lg);
	if (getsockopt(c, SOL_SOCKET, SO_LINGER, &lg, &l) < 0 || lg.l_onoff != 1 || lg.l_linger != 3)
		tgt_fail("SO_LINGER is %d/%d, want 1/3", lg.l_onoff, lg.l_linger);
	l = sizeof(tv);
	if (getsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) < 0 || tv.tv_sec != 2 || tv.tv_usec != 500000)
		tgt_fail("SO_RCVTIMEO is %ld.%06ld, want 2.5", (long)tv.tv_sec, (long)tv.tv_usec);
}

static const char reply[] = "hello-from-server";

static void conversation(int lfam)
{
	int l = listener(lfam, 7);
	int c, s, flags;
	ss_t ll, cl, cp, sl, sp;
	size_t sent = 0;
	char buf[4096];
	size_t i, got;

	c = connect_to(l);
	s = accept_one(l);
	client_options(c);
	/* Fill the server's window, then the client's send queue: bytes
	 * unread at the server and bytes the client could not send yet. */
	if (fcntl(c, F_SETFL, O_NONBLOCK) < 0)
		tgt_fail("O_NONBLOCK: %s", strerror(errno));
	for (;;) {
		ssize_t w;
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (char)pattern(sent + i);
		w = send(c, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			tgt_fail("fill: send: %s", strerror(errno));
		sent += (size_t)w;
		if (sent > (64u << 20))
			tgt_fail("fill: the send queue never filled");
	}
	send_all(s, reply, strlen(reply), "server reply");
	names(l, &ll, NULL);
	names(c, &cl, &cp);
	names(s, &sl, &sp);
	tgt_log("listening on port %d, %zu bytes in flight to the server\n", port_of(&ll), sent);
	tgt_ready();
	tgt_wait();

	same_names(l, &ll, NULL, "listener");
	same_names(c, &cl, &cp, "client");
	same_names(s, &sl, &sp, "server");
	wantint(l, SOL_SOCKET, SO_REUSEADDR, 1, "listener SO_REUSEADDR");
	/* Accepted from a listener with it: repair mode clears it. */
	wantint(s, SOL_SOCKET, SO_REUSEADDR, 1, "server SO_REUSEADDR");
	wantint(l, SOL_SOCKET, SO_ACCEPTCONN, 1, "listener SO_ACCEPTCONN");
	check_client_options(c);
	flags = fcntl(c, F_GETFL);
	if (!(flags & O_NONBLOCK))
		tgt_fail("client lost O_NONBLOCK");
	expect(c, reply, "client reads the reply");
	for (got = 0; got < sent;) {
		size_t n = sent - got < sizeof(buf) ? sent - got : sizeof(buf);
		read_exact(s, buf, n, "server reads what the client sent");
		for (i = 0; i < n; i++)
			if ((unsigned char)buf[i] != pattern(got + i))
				tgt_fail("server: byte %zu is %d, want %d", got + i, (unsigned char)buf[i], pattern(got + i));
		got += n;
	}
	send_all(c, "after", 5, "client sends after");
	expect(s, "after", "server reads after");
	send_all(s, "reply2", 6, "server sends reply2");
	expect(c, "reply2", "client reads reply2");
	/* The listener still takes connections. */
	{
		int c2 = connect_to(l), s2 = accept_one(l);
		send_all(c2, "new", 3, "new connection");
		expect(s2, "new", "new connection");
	}
	tgt_pass();
}

static void pending(void)
{
	int l = listener(family, 7);
	int c = connect_to(l), s;

	tgt_ready();
	tgt_wait();
	s = accept_one(l);
	send_all(c, "p", 1, "pending");
	expect(s, "p", "pending");
	tgt_pass();
}

static void pending_outside(void)
{
	int l = listener_reuse(AF_INET, 7, 0), s, fd;
	char path[4200], port[16];
	ss_t a;

	names(l, &a, NULL);
	snprintf(port, sizeof(port), "%d", port_of(&a));
	snprintf(path, sizeof(path), "%s.port", tgt_result_path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	tgt_write_all(fd, port, strlen(port));
	close(fd);
	tgt_ready();
	tgt_wait();
	s = accept_one(l);
	expect(s, "x", "the outside client's byte");
	send_all(s, "y", 1, "answer to the outside client");
	tgt_pass();
}

static void external_half(int port)
{
	ss_t a;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct tcp_info ti;
	socklen_t len;

	loopback(&a, AF_INET, port);
	if (connect(c, (struct sockaddr *)&a, sizeof(struct sockaddr_in)) < 0)
		tgt_fail("connect to port %d: %s", port, strerror(errno));
	send_all(c, "from-job-1", 10, "from-job-1");
	if (shutdown(c, SHUT_WR) < 0)
		tgt_fail("shutdown: %s", strerror(errno));
	/* FIN_WAIT2 once the peer acknowledged the FIN. */
	for (int i = 0;; i++) {
		len = sizeof(ti);
		if (getsockopt(c, SOL_TCP, TCP_INFO, &ti, &len) < 0)
			tgt_fail("TCP_INFO: %s", strerror(errno));
		if (ti.tcpi_state == TCP_FIN_WAIT2)
			break;
		if (i == 5000)
			tgt_fail("the connection is in state %d, not FIN_WAIT2", ti.tcpi_state);
		usleep(1000);
	}
	tgt_ready();
	tgt_wait();
	expect(c, "from-outside-1", "the message from outside");
	tgt_pass();
}

static void half(void)
{
	int l = listener_reuse(family, 7, 0);
	int c = connect_to(l), s = accept_one(l);
	ssize_t r;

	/* The listener, without SO_REUSEADDR, on an fd above the connection
	 * it accepted: the restore must bind it first all the same. */
	l = fcntl(l, F_DUPFD, 50);
	if (l < 0 || close(3) < 0)
		tgt_fail("move the listener: %s", strerror(errno));

	send_all(c, "abc", 3, "client data");
	if (shutdown(c, SHUT_WR) < 0)
		tgt_fail("shutdown: %s", strerror(errno));
	send_all(s, "xyz", 3, "server data");
	tgt_ready();
	tgt_wait();
	expect(s, "abc", "server reads the client's data");
	expect_eof(s, "server sees the client's FIN");
	expect(c, "xyz", "client reads the server's data");
	send_all(s, "more", 4, "server sends more");
	expect(c, "more", "client reads more");
	r = send(c, "x", 1, MSG_NOSIGNAL);
	if (r >= 0 || errno != EPIPE)
		tgt_fail("the client shut for writing could send: %zd (%s)", r, strerror(errno));
	close(s);
	expect_eof(c, "client sees the server's FIN");
	{
		int c2 = connect_to(l), s2 = accept_one(l);
		send_all(c2, "new", 3, "new connection");
		expect(s2, "new", "new connection");
	}
	tgt_pass();
}

static void timewait(void)
{
	int l = listener_reuse(family, 7, 0);
	int c = connect_to(l), s = accept_one(l), c2, s2;

	/* The server closes first: TIME_WAIT is on its side, the
	 * listener's address and port (RFC 793, active close). */
	close(s);
	expect_eof(c, "client sees the server's FIN");
	close(c);
	c2 = connect_to(l);
	s2 = accept_one(l);
	tgt_ready();
	tgt_wait();
	send_all(c2, "two", 3, "second connection");
	expect(s2, "two", "second connection");
	send_all(s2, "back", 4, "second connection's answer");
	expect(c2, "back", "second connection's answer");
	{
		int c3 = connect_to(l), s3 = accept_one(l);
		send_all(c3, "new", 3, "new connection");
		expect(s3, "new", "new connection");
	}
	tgt_pass();
}

static int udp_socket(void)
{
	ss_t a;
	int u = socket(family, SOCK_DGRAM, 0);

	if (u < 0)
		tgt_fail("socket: %s", strerror(errno));
	loopback(&a, family, 0);
	if (bind(u, (struct sockaddr *)&a, alen) < 0)
		tgt_fail("bind: %s", strerror(errno));
	return u;
}

static void recv_from(int u, const char *want, const ss_t *from, const char *what)
{
	char buf[256];
	ss_t f;
	socklen_t l = sizeof(f);
	struct pollfd p = { .fd = u, .events = POLLIN };
	ssize_t r;

	memset(&f, 0, sizeof(f));
	if (poll(&p, 1, 10000) <= 0)
		tgt_fail("%s: no datagram within 10 s", what);
	r = recvfrom(u, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&f, &l);
	if (r < 0)
		tgt_fail("%s: recvfrom: %s", what, strerror(errno));
	if ((size_t)r != strlen(want) || memcmp(buf, want, (size_t)r) != 0)
		tgt_fail("%s: got %zd bytes %.*s, want %s", what, r, (int)r, buf, want);
	if (memcmp(&f, from, sizeof(f)) != 0)
		tgt_fail("%s: from port %d, want %d", what, port_of(&f), port_of(from));
}

static void udp(void)
{
	int a = udp_socket(), b = udp_socket(), d = udp_socket();
	ss_t aa, ba, da, bp;
	char c;

	names(a, &aa, NULL);
	names(b, &ba, NULL);
	names(d, &da, NULL);
	if (connect(b, (struct sockaddr *)&aa, alen) < 0)
		tgt_fail("connect: %s", strerror(errno));
	setint(a, SOL_SOCKET, SO_RCVBUF, 32768, "SO_RCVBUF");
	setint(d, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
	send_all(b, "b1", 2, "b1");
	if (send(b, "", 0, 0) != 0)
		tgt_fail("send an empty datagram: %s", strerror(errno));
	send_all(b, "b3", 2, "b3");
	if (sendto(d, "d1", 2, 0, (struct sockaddr *)&aa, alen) != 2)
		tgt_fail("sendto: %s", strerror(errno));
	if (sendto(a, "a1", 2, 0, (struct sockaddr *)&ba, alen) != 2 ||
	    sendto(a, "a2", 2, 0, (struct sockaddr *)&ba, alen) != 2)
		tgt_fail("sendto: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	same_names(a, &aa, NULL, "a");
	same_names(b, &ba, &aa, "b");
	names(b, &ba, &bp);
	wantint(a, SOL_SOCKET, SO_RCVBUF, 2 * 32768, "SO_RCVBUF");
	wantint(d, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
	recv_from(a, "b1", &ba, "a's first datagram");
	recv_from(a, "", &ba, "a's empty datagram");
	recv_from(a, "b3", &ba, "a's third datagram");
	recv_from(a, "d1", &da, "a's datagram from d");
	recv_from(b, "a1", &aa, "b's first datagram");
	recv_from(b, "a2", &aa, "b's second datagram");
	if (recv(a, &c, 1, MSG_DONTWAIT) >= 0 || recv(b, &c, 1, MSG_DONTWAIT) >= 0)
		tgt_fail("a datagram more than was sent");
	send_all(b, "b4", 2, "b4");
	recv_from(a, "b4", &ba, "a datagram sent after");
	tgt_pass();
}

/* A pair of ends in this process with an urgent byte (MSG_OOB) waiting at
 * the server *s, which gocr refuses; *c is the client. */
static void urgent_pair(int *c, int *s)
{
	int l = listener(family, 1);
	struct pollfd p;

	*c = connect_to(l);
	*s = accept_one(l);
	close(l);
	send_all(*c, "a", 1, "data");
	if (send(*c, "u", 1, MSG_OOB) != 1)
		tgt_fail("send MSG_OOB: %s", strerror(errno));
	p.fd = *s;
	p.events = POLLPRI;
	if (poll(&p, 1, 10000) != 1)
		tgt_fail("the urgent byte did not come within 10 s");
}

static void check_urgent_pair(int c, int s)
{
	char b = 0;

	if (recv(s, &b, 1, MSG_OOB) != 1 || b != 'u')
		tgt_fail("recv MSG_OOB: %c (%s)", b, strerror(errno));
	expect(s, "a", "the data before the urgent byte");
	send_all(c, "more", 4, "client sends more");
	expect(s, "more", "server reads more");
	send_all(s, "back", 4, "server answers");
	expect(c, "back", "client reads the answer");
}

static void busy(int with_urgent)
{
	int l = listener(family, 1), c, s, uc = -1, us = -1, status;
	pid_t child;

	c = connect_to(l);
	s = accept_one(l);
	child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		char b;
		close(l);
		close(s);
		/* Waits in recv(2) on its end, always: gocr finds it there. */
		for (;;) {
			ssize_t r = recv(c, &b, 1, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r != 1 || send(c, &b, 1, MSG_NOSIGNAL) != 1)
				_exit(1);
		}
	}
	close(l);
	close(c);
	if (with_urgent)
		urgent_pair(&uc, &us);
	tgt_ready();
	tgt_wait();
	if (with_urgent)
		check_urgent_pair(uc, us);
	for (const char *m = "ping"; *m; m++) {
		char want[2] = { *m, 0 };
		send_all(s, m, 1, "send to the child");
		expect(s, want, "the child's echo");
	}
	if (waitpid(child, &status, WNOHANG) != 0)
		tgt_fail("the child ended (status %#x)", status);
	kill(child, SIGKILL);
	tgt_pass();
}

static void external(int port)
{
	ss_t a;
	int c = socket(AF_INET, SOCK_STREAM, 0), sent = 0;

	loopback(&a, AF_INET, port);
	if (connect(c, (struct sockaddr *)&a, sizeof(struct sockaddr_in)) < 0)
		tgt_fail("connect to port %d: %s", port, strerror(errno));
	send_all(c, "from-job-1", 10, "from-job-1");
	tgt_ready();
	/* Answers the peer's "go" with "from-job-1b" while it waits: the peer
	 * may drop it first, so that it is not acknowledged at the dump. */
	while (!got_term) {
		struct pollfd p = { .fd = c, .events = POLLIN };
		if (!sent && poll(&p, 1, 10) == 1) {
			expect(c, "go", "the peer's go");
			send_all(c, "from-job-1b", 11, "from-job-1b");
			sent = 1;
		} else if (sent) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	if (!sent)
		tgt_fail("the peer's go never came");
	expect(c, "from-outside-1", "first message from outside");
	send_all(c, "from-job-2", 10, "from-job-2");
	expect(c, "from-outside-2", "second message from outside");
	tgt_pass();
}

int main(int argc, char **argv)
{
	const char *mode;

	tgt_init(argc, argv);
	mode = argc > 2 ? argv[2] : "";
	family = strcmp(mode, "tcp6") == 0 || strcmp(mode, "udp6") == 0 ? AF_INET6 : AF_INET;
	alen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (strcmp(mode, "tcp4") == 0 || strcmp(mode, "tcp6") == 0)
		conversation(family);
	else if (strcmp(mode, "dual") == 0)
		conversation(AF_INET6);
	else if (strcmp(mode, "pending") == 0)
		pending();
	else if (strcmp(mode, "half") == 0)
		half();
	else if (strcmp(mode, "timewait") == 0)
		timewait();
	else if (strcmp(mode, "udp4") == 0 || strcmp(mode, "udp6") == 0)
		udp();
	else if (strcmp(mode, "busy") == 0)
		busy(0);
	else if (strcmp(mode, "urgent") == 0)
		busy(1);
	else if (strcmp(mode, "external") == 0 && argc > 3)
		external(atoi(argv[3]));
	else if (strcmp(mode, "pending-outside") == 0)
		pending_outside();
	else if (strcmp(mode, "external-half") == 0 && argc > 3)
		external_half(atoi(argv[3]));
	tgt_fail("usage: inet RESULT tcp4|tcp6|dual|pending|half|timewait|udp4|udp6|urgent|busy|external PORT|pending-outside|external-half PORT");
}
