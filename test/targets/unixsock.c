/*
 * unixsock: unix socketpairs of each type, within the process and between
 * it and a child, with what a restore must keep:
 *
 *   stream-self     fds 40/41, fd 46 a dup of 40 (one open file, kcmp);
 *                   data queued both ways, 41 shut for writing (so 40
 *                   reads its data, then end of file); 40 with SO_SNDBUF,
 *                   SO_RCVBUF, SO_RCVTIMEO and SO_PEEK_OFF 3 (a peek
 *                   starts at byte 3), 41 O_NONBLOCK and close-on-exec;
 *   dgram-self      fds 42/43: datagrams both ways, empty ones and one of
 *                   5000 bytes among them; 43 shut for reading (its
 *                   datagrams still read, new ones are refused); 42
 *                   O_NONBLOCK, SO_PASSCRED, SO_SNDTIMEO;
 *   seqpacket-self  fds 44/45: records both ways, empty ones last; 45
 *                   shut both ways; 44 SO_PASSSEC and SO_PEEK_OFF 0, and
 *                   the child holds fd 44 too (one open file, kcmp);
 *   stream-child    fd 50 here, 51 in the child; 50 O_NONBLOCK, 51 a
 *                   large SO_SNDBUF and SO_RCVTIMEO;
 *   dgram-child     fd 52 here (shut for writing), 53 in the child
 *                   (SO_PASSCRED);
 *   seqpacket-child fd 54 here, 55 in the child (shut for writing, so 54
 *                   reads an empty record, then end of file); 55 SO_RCVBUF.
 *
 * Every option and flag is set after the data is sent, so no message
 * carries credentials (SO_PASSCRED on either end when it is sent would
 * add them, and bind a datagram sender to an abstract name).
 *
 * Checked, by each process for its own ends: F_GETFL, F_GETFD, every
 * option, SIOCINQ and poll(2)'s events as at setup, and the values set;
 * a peek from SO_PEEK_OFF; every message queued, read with its
 * boundaries, then end of file or EAGAIN as the shutdown state says;
 * then a probe each way, which arrives, or fails with EPIPE where a
 * direction is shut: so each end is still connected to its own peer.
 * The whole setup is made and checked once before it is made again and
 * waits to be dumped, so the checks themselves are known to pass.
 * SO_PEERCRED is not checked: a restored pair names gocr, the process that
 * made it (docs/INTERNALS.md, Known gaps).
 *
 * Refusal modes (argv[2]) set up one socket at fd 70 that gocr must
 * refuse, and check after the refused dump that it is as it was:
 *   dgramfrom  a datagram socket bound to an abstract name, holding a
 *              datagram from a named socket closed since (so outside);
 *   pendingdata a listening stream socket with a connection (fd 71) not
 *              yet accepted, which sent data;
 *   outside    a stream socketpair whose other end a process outside the
 *              dumped tree holds (a grandchild, orphaned);
 *   fds        an fd in flight: SCM_RIGHTS sent to 70, not received;
 *   creds      credentials in flight: SCM_CREDENTIALS sent to 70;
 *   udp        a UDP socket, which is no unix socket;
 *   netlink    a NETLINK_ROUTE socket; packet  an AF_PACKET socket.
 *
 * Usage: unixsock RESULT_PATH [MODE]
 */
#include "target.h"

#include <poll.h>
#include <stddef.h>
#include <linux/kcmp.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <net/ethernet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#define LONG_LEN 5000
#define MAXMSG 6
#define DUP_FD 46
#define SHARED_FD 44 /* the child keeps it too: one open file, two processes */
#define POLL_EVENTS (POLLIN | POLLOUT | POLLRDHUP | POLLHUP | POLLERR)

/* What a user sets on one end; 0 (or 'peek_off' -1) leaves it alone. */
struct endopts {
	int sndbuf, rcvbuf;        /* as given to setsockopt */
	int passcred, passsec;
	int peek_off;              /* -1: off */
	long rcvtimeo_us, sndtimeo_us;
	int nonblock, cloexec;
};

/* What an end showed at setup, to compare with later. */
struct endstate {
	int fl, fdfl, inq;
	short revents;
	int opt[7];
	struct timeval rcvtimeo, sndtimeo;
};

static const int optnames[7] = { SO_TYPE, SO_DOMAIN, SO_SNDBUF, SO_RCVBUF, SO_PASSCRED, SO_PASSSEC, SO_PEEK_OFF };
static const char *const optstr[7] = { "SO_TYPE", "SO_DOMAIN", "SO_SNDBUF", "SO_RCVBUF", "SO_PASSCRED", "SO_PASSSEC", "SO_PEEK_OFF" };

struct pairdef {
	const char *name;
	int type;
	int fd[2];      /* fd[0] is this process's; fd[1] is the child's if child */
	int child;
	/* Queued to be read at fd[i]; "L" is LONG_LEN bytes of a pattern. */
	const char *to[2][MAXMSG];
	int nto[2];
	int shut[2];    /* shutdown(2) how for each end, or -1 */
	struct endopts opts[2];
	struct endstate st[2];
};

static char longmsg[LONG_LEN];

static struct pairdef pairs[] = {
	{ .name = "stream-self", .type = SOCK_STREAM, .fd = { 40, 41 },
	  .to = { { "alpha", "bravo", "L", "charlie" }, { "x-ray" } }, .nto = { 4, 1 },
	  .shut = { -1, SHUT_WR },
	  .opts = { { .sndbuf = 60000, .rcvbuf = 80000, .rcvtimeo_us = 1500000, .peek_off = 3 },
		    { .nonblock = 1, .cloexec = 1, .peek_off = -1 } } },
	{ .name = "dgram-self", .type = SOCK_DGRAM, .fd = { 42, 43 },
	  .to = { { "one", "", "L", "four" }, { "", "back" } }, .nto = { 4, 2 },
	  .shut = { -1, SHUT_RD },
	  .opts = { { .nonblock = 1, .passcred = 1, .sndtimeo_us = 250000, .peek_off = -1 }, { .peek_off = -1 } } },
	{ .name = "seqpacket-self", .type = SOCK_SEQPACKET, .fd = { 44, 45 },
	  .to = { { "rec1", "", "rec3", "" }, { "L" } }, .nto = { 4, 1 },
	  .shut = { -1, SHUT_RDWR },
	  .opts = { { .passsec = 1, .peek_off = 0 }, { .peek_off = -1 } } },
	{ .name = "stream-child", .type = SOCK_STREAM, .fd = { 50, 51 }, .child = 1,
	  .to = { { "from-child-1", "from-child-2" }, { "to-child", "L" } }, .nto = { 2, 2 },
	  .shut = { -1, -1 },
	  /* 200000, doubled by the kernel to 400000, more than a new
	   * socket's 212992 (net.core.wmem_default); and no more than an
	   * ordinary setsockopt may ask for on a stock kernel: the
	   * default net.core.wmem_max is SK_WMEM_MAX, 212992
	   * (include/net/sock.h, Documentation/admin-guide/sysctl/net.rst),
	   * and a larger request is cut to it (man 7 socket, SO_SNDBUF). */
	  .opts = { { .nonblock = 1, .peek_off = -1 }, { .sndbuf = 200000, .rcvtimeo_us = 20000, .peek_off = -1 } } },
	{ .name = "dgram-child", .type = SOCK_DGRAM, .fd = { 52, 53 }, .child = 1,
	  .to = { { "d1", "", "d3" }, { "e1" } }, .nto = { 3, 1 },
	  .shut = { SHUT_WR, -1 },
	  .opts = { { .peek_off = -1 }, { .passcred = 1, .peek_off = -1 } } },
	{ .name = "seqpacket-child", .type = SOCK_SEQPACKET, .fd = { 54, 55 }, .child = 1,
	  .to = { { "L", "s2", "" }, { "", "t2" } }, .nto = { 3, 2 },
	  .shut = { -1, SHUT_WR },
	  .opts = { { .peek_off = -1 }, { .rcvbuf = 50000, .peek_off = -1 } } },
};
#define NPAIRS (int)(sizeof(pairs) / sizeof(pairs[0]))

static pid_t child;
static int in_child;

static const char *msg(const char *m, size_t *len)
{
	if (strcmp(m, "L") == 0) {
		*len = LONG_LEN;
		return longmsg;
	}
	*len = strlen(m);
	return m;
}

/* The shutdown bits of end i, its own and, for a stream or seqpacket
 * pair, those its peer's shutdown gave it (1 reading, 2 writing). */
static int shut_bits(struct pairdef *p, int i)
{
	int own = p->shut[i] + 1, peer = p->shut[1 - i] + 1;
	int mirror = ((peer & 1) << 1) | ((peer & 2) >> 1);

	return p->type == SOCK_DGRAM ? own : own | mirror;
}

static int mine(struct pairdef *p, int i)
{
	return !p->child || (i == 1) == in_child;
}

static void send_all(struct pairdef *p, int from, const char *m)
{
	size_t len;
	const char *b = msg(m, &len);
	ssize_t n = send(p->fd[from], b, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n != (ssize_t)len)
		tgt_fail("%s: send %zu bytes on fd %d: %zd (%s)", p->name, len, p->fd[from], n, n < 0 ? strerror(errno) : "short");
}

static void set_opts(struct pairdef *p, int i)
{
	struct endopts *o = &p->opts[i];
	int fd = p->fd[i];
	struct { int set, opt; const char *name; int v; } ints[] = {
		{ o->sndbuf, SO_SNDBUF, "SO_SNDBUF", o->sndbuf },
		{ o->rcvbuf, SO_RCVBUF, "SO_RCVBUF", o->rcvbuf },
		{ o->passcred, SO_PASSCRED, "SO_PASSCRED", 1 },
		{ o->passsec, SO_PASSSEC, "SO_PASSSEC", 1 },
		{ o->peek_off >= 0, SO_PEEK_OFF, "SO_PEEK_OFF", o->peek_off },
	};
	struct { long us; int opt; const char *name; } tvs[] = {
		{ o->rcvtimeo_us, SO_RCVTIMEO, "SO_RCVTIMEO" },
		{ o->sndtimeo_us, SO_SNDTIMEO, "SO_SNDTIMEO" },
	};

	for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
		if (ints[k].set && setsockopt(fd, SOL_SOCKET, ints[k].opt, &ints[k].v, sizeof(int)) < 0)
			tgt_fail("%s: setsockopt fd %d %s: %s", p->name, fd, ints[k].name, strerror(errno));
	for (size_t k = 0; k < 2; k++) {
		struct timeval tv = { tvs[k].us / 1000000, tvs[k].us % 1000000 };

		if (tvs[k].us && setsockopt(fd, SOL_SOCKET, tvs[k].opt, &tv, sizeof(tv)) < 0)
			tgt_fail("%s: setsockopt fd %d %s: %s", p->name, fd, tvs[k].name, strerror(errno));
	}
	if (o->nonblock && fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		tgt_fail("%s: F_SETFL fd %d: %s", p->name, fd, strerror(errno));
	if (o->cloexec && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		tgt_fail("%s: F_SETFD fd %d: %s", p->name, fd, strerror(errno));
}

static short revents(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLL_EVENTS };

	if (poll(&pf, 1, 0) < 0)
		tgt_fail("poll fd %d: %s", fd, strerror(errno));
	return pf.revents;
}

static void read_state(struct pairdef *p, int i, struct endstate *s)
{
	int fd = p->fd[i];
	socklen_t l;

	s->fl = fcntl(fd, F_GETFL);
	s->fdfl = fcntl(fd, F_GETFD);
	if (s->fl < 0 || s->fdfl < 0)
		tgt_fail("%s: fd %d is not open: %s", p->name, fd, strerror(errno));
	if (ioctl(fd, SIOCINQ, &s->inq) < 0)
		tgt_fail("%s: SIOCINQ fd %d: %s", p->name, fd, strerror(errno));
	s->revents = revents(fd);
	for (int k = 0; k < 7; k++) {
		l = sizeof(int);
		if (getsockopt(fd, SOL_SOCKET, optnames[k], &s->opt[k], &l) < 0)
			tgt_fail("%s: getsockopt fd %d %s: %s", p->name, fd, optstr[k], strerror(errno));
	}
	l = sizeof(s->rcvtimeo);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &s->rcvtimeo, &l) < 0)
		tgt_fail("%s: getsockopt fd %d SO_RCVTIMEO: %s", p->name, fd, strerror(errno));
	l = sizeof(s->sndtimeo);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s->sndtimeo, &l) < 0)
		tgt_fail("%s: getsockopt fd %d SO_SNDTIMEO: %s", p->name, fd, strerror(errno));
}

static long tv_us(const struct timeval *tv)
{
	return tv->tv_sec * 1000000 + tv->tv_usec;
}

/* The state of end i is what it was at setup, and what was set. */
static void check_state(struct pairdef *p, int i)
{
	struct endstate now, *was = &p->st[i];
	struct endopts *o = &p->opts[i];
	int fd = p->fd[i], sb = shut_bits(p, i);

	read_state(p, i, &now);
	if (now.fl != was->fl)
		tgt_fail("%s: fd %d F_GETFL %#o, want %#o", p->name, fd, now.fl, was->fl);
	if (now.fdfl != was->fdfl)
		tgt_fail("%s: fd %d F_GETFD %d, want %d", p->name, fd, now.fdfl, was->fdfl);
	if (now.inq != was->inq)
		tgt_fail("%s: fd %d SIOCINQ %d, want %d", p->name, fd, now.inq, was->inq);
	if (now.revents != was->revents)
		tgt_fail("%s: fd %d poll events %#x, want %#x", p->name, fd, now.revents, was->revents);
	for (int k = 0; k < 7; k++)
		if (now.opt[k] != was->opt[k])
			tgt_fail("%s: fd %d %s %d, want %d", p->name, fd, optstr[k], now.opt[k], was->opt[k]);
	if (memcmp(&now.rcvtimeo, &was->rcvtimeo, sizeof(now.rcvtimeo)) || memcmp(&now.sndtimeo, &was->sndtimeo, sizeof(now.sndtimeo)))
		tgt_fail("%s: fd %d SO_RCVTIMEO %ld.%06ld SO_SNDTIMEO %ld.%06ld, want %ld.%06ld and %ld.%06ld", p->name, fd,
			 now.rcvtimeo.tv_sec, now.rcvtimeo.tv_usec, now.sndtimeo.tv_sec, now.sndtimeo.tv_usec,
			 was->rcvtimeo.tv_sec, was->rcvtimeo.tv_usec, was->sndtimeo.tv_sec, was->sndtimeo.tv_usec);

	/* And what was set, so setup itself is known to have worked. */
	if (now.opt[0] != p->type || now.opt[1] != AF_UNIX)
		tgt_fail("%s: fd %d is type %d family %d", p->name, fd, now.opt[0], now.opt[1]);
	if ((o->sndbuf && now.opt[2] != 2 * o->sndbuf) || (o->rcvbuf && now.opt[3] != 2 * o->rcvbuf))
		tgt_fail("%s: fd %d SO_SNDBUF %d SO_RCVBUF %d, want twice %d and %d", p->name, fd, now.opt[2], now.opt[3], o->sndbuf, o->rcvbuf);
	if (now.opt[4] != o->passcred || now.opt[5] != o->passsec || now.opt[6] != o->peek_off)
		tgt_fail("%s: fd %d SO_PASSCRED %d SO_PASSSEC %d SO_PEEK_OFF %d, want %d %d %d", p->name, fd,
			 now.opt[4], now.opt[5], now.opt[6], o->passcred, o->passsec, o->peek_off);
	if (!!(now.fl & O_NONBLOCK) != o->nonblock || !!(now.fdfl & FD_CLOEXEC) != o->cloexec)
		tgt_fail("%s: fd %d F_GETFL %#o F_GETFD %d, want O_NONBLOCK %d FD_CLOEXEC %d", p->name, fd, now.fl, now.fdfl, o->nonblock, o->cloexec);
	if (!!(now.revents & POLLRDHUP) != !!(sb & 1) || !!(now.revents & POLLHUP) != (sb == 3))
		tgt_fail("%s: fd %d poll events %#x, but its shutdown bits are %d", p->name, fd, now.revents, sb);
	/* The kernel keeps them in jiffies. */
	if (labs(tv_us(&now.rcvtimeo) - o->rcvtimeo_us) > 10000 || labs(tv_us(&now.sndtimeo) - o->sndtimeo_us) > 10000)
		tgt_fail("%s: fd %d timeouts %ld.%06ld %ld.%06ld, set %ld and %ld us", p->name, fd,
			 now.rcvtimeo.tv_sec, now.rcvtimeo.tv_usec, now.sndtimeo.tv_sec, now.sndtimeo.tv_usec, o->rcvtimeo_us, o->sndtimeo_us);
}

static char rbuf[2 * LONG_LEN];

/* Reads one message of end i without waiting. */
static ssize_t recv_one(struct pairdef *p, int i, int *flags)
{
	struct iovec iov = { rbuf, sizeof(rbuf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n = recvmsg(p->fd[i], &mh, MSG_DONTWAIT);

	*flags = mh.msg_flags;
	return n;
}

/* Reads everything queued at end i, message by message, and the end of
 * it. */
static void drain(struct pairdef *p, int i)
{
	const char *const *want = p->to[i];
	int nwant = p->nto[i], fd = p->fd[i], flags;
	ssize_t n;

	if (p->type == SOCK_STREAM) {
		/* One stream: what was sent, in order, in as many reads as
		 * it takes. */
		char all[2 * LONG_LEN];
		size_t total = 0, got = 0, len;

		for (int k = 0; k < nwant; k++) {
			const char *b = msg(want[k], &len);

			memcpy(all + total, b, len);
			total += len;
		}
		while (got < total) {
			n = recv_one(p, i, &flags);
			if (n <= 0)
				tgt_fail("%s: fd %d read after %zu of %zu bytes: %zd (%s)", p->name, fd, got, total, n,
					 n < 0 ? strerror(errno) : "end of file");
			if (got + n > total || memcmp(rbuf, all + got, n))
				tgt_fail("%s: fd %d bytes %zu-%zu are %.*s..., want %.*s...", p->name, fd, got, got + n,
					 (int)(n < 12 ? n : 12), rbuf, 12, all + got);
			got += n;
		}
	} else {
		for (int k = 0; k < nwant; k++) {
			size_t len;
			const char *b = msg(want[k], &len);

			n = recv_one(p, i, &flags);
			if (n < 0)
				tgt_fail("%s: fd %d message %d: %s, want %zu bytes", p->name, fd, k, strerror(errno), len);
			if ((size_t)n != len || (flags & MSG_TRUNC) || memcmp(rbuf, b, len))
				tgt_fail("%s: fd %d message %d is %zd bytes %.*s, want %zu bytes %.*s", p->name, fd, k, n,
					 (int)(n < 12 ? n : 12), rbuf, len, (int)(len < 12 ? len : 12), b);
		}
	}
	/* Then end of file where reading is shut (a datagram socket has
	 * none), else nothing more. */
	n = recv_one(p, i, &flags);
	if ((shut_bits(p, i) & 1) && p->type != SOCK_DGRAM) {
		if (n != 0)
			tgt_fail("%s: fd %d read %zd (%s) after its messages, want end of file", p->name, fd, n, n < 0 ? strerror(errno) : "data");
	} else if (n >= 0 || errno != EAGAIN) {
		tgt_fail("%s: fd %d read %zd (%s) after its messages, want EAGAIN", p->name, fd, n, n < 0 ? strerror(errno) : "more data");
	}
}

/* Whether a probe from end `from` goes to its peer: not if either
 * side's shutdown forbids it. */
static int probe_goes(struct pairdef *p, int from)
{
	return !((shut_bits(p, from) & 2) || (shut_bits(p, 1 - from) & 1));
}

/* A probe from end `from`: sent, or refused with EPIPE where it cannot
 * go. Returns whether it went. */
static int probe(struct pairdef *p, int from, const char *what)
{
	int shut = !probe_goes(p, from);
	ssize_t n = send(p->fd[from], what, strlen(what), MSG_DONTWAIT | MSG_NOSIGNAL);

	if (shut) {
		if (n >= 0 || errno != EPIPE)
			tgt_fail("%s: probe from fd %d: %zd (%s), want EPIPE: that direction was shut", p->name, p->fd[from], n,
				 n < 0 ? strerror(errno) : "sent");
		return 0;
	}
	if (n != (ssize_t)strlen(what))
		tgt_fail("%s: probe from fd %d: %zd (%s)", p->name, p->fd[from], n, n < 0 ? strerror(errno) : "short");
	return 1;
}

/* Reads a probe that went, at end i, as its only message, waiting for it
 * if it was sent by the other process. */
static void read_probe(struct pairdef *p, int i, const char *what)
{
	struct pollfd pf = { .fd = p->fd[i], .events = POLLIN };
	int flags;
	ssize_t n;

	if (poll(&pf, 1, 10000) != 1)
		tgt_fail("%s: fd %d: no probe %s in 10 s: %s", p->name, p->fd[i], what, strerror(errno));
	n = recv_one(p, i, &flags);
	if (n != (ssize_t)strlen(what) || memcmp(rbuf, what, n))
		tgt_fail("%s: fd %d got %zd bytes (%s) for the probe %s: not its peer", p->name, p->fd[i], n,
			 n < 0 ? strerror(errno) : "other data", what);
	n = recv_one(p, i, &flags);
	if (n >= 0 && !(p->type != SOCK_DGRAM && n == 0 && (shut_bits(p, i) & 1)))
		tgt_fail("%s: fd %d reads %zd bytes more after the probe %s", p->name, p->fd[i], n, what);
}

static void setup(void)
{
	int ready[2];

	for (int k = 0; k < LONG_LEN; k++)
		longmsg[k] = 'A' + k % 26;
	for (int i = 0; i < NPAIRS; i++) {
		struct pairdef *p = &pairs[i];
		int sv[2];

		if (socketpair(AF_UNIX, p->type, 0, sv) < 0)
			tgt_fail("%s: socketpair: %s", p->name, strerror(errno));
		for (int e = 0; e < 2; e++) {
			if (dup2(sv[e], p->fd[e]) < 0)
				tgt_fail("%s: dup2 to %d: %s", p->name, p->fd[e], strerror(errno));
			close(sv[e]);
		}
		for (int e = 0; e < 2; e++)
			for (int k = 0; k < p->nto[1 - e]; k++)
				send_all(p, e, p->to[1 - e][k]);
		for (int e = 0; e < 2; e++) {
			set_opts(p, e);
			if (p->shut[e] >= 0 && shutdown(p->fd[e], p->shut[e]) < 0)
				tgt_fail("%s: shutdown fd %d: %s", p->name, p->fd[e], strerror(errno));
		}
	}
	if (dup2(40, DUP_FD) < 0)
		tgt_fail("dup2 40 to %d: %s", DUP_FD, strerror(errno));
	if (pipe(ready) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	in_child = child == 0;
	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if ((!mine(&pairs[i], e) || (in_child && !pairs[i].child)) && !(in_child && pairs[i].fd[e] == SHARED_FD))
				close(pairs[i].fd[e]);
	if (in_child) {
		close(DUP_FD);
		close(ready[0]);
	} else {
		close(ready[1]);
	}
	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if (mine(&pairs[i], e) && !(in_child && !pairs[i].child))
				read_state(&pairs[i], e, &pairs[i].st[e]);
	if (in_child) {
		/* Its fds are its own now; the parent may go on. */
		if (write(ready[1], "r", 1) != 1)
			_exit(20);
		close(ready[1]);
		return;
	}
	{
		char c;

		if (read(ready[0], &c, 1) != 1)
			tgt_fail("the child did not get ready (its log says why)");
		close(ready[0]);
	}
}

/* The child's part: its ends, once the parent asks (SIGTERM): their
 * state and queues, then a probe each way, the child's first. */
static void child_main(void)
{
	long r;

	tgt_wait();
	r = syscall(SYS_kcmp, getppid(), getpid(), KCMP_FILE, SHARED_FD, SHARED_FD);
	if (r != 0)
		tgt_fail("fd %d is not the same open file as its parent's fd %d (kcmp %ld: %s), though it was inherited",
			 SHARED_FD, SHARED_FD, r, r < 0 ? strerror(errno) : "another");
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child)
			check_state(&pairs[i], 1);
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child)
			drain(&pairs[i], 1);
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child)
			probe(&pairs[i], 1, "probe-to-parent");
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child && probe_goes(&pairs[i], 0))
			read_probe(&pairs[i], 1, "probe-to-child");
	_exit(0);
}

/* The failure a child reported, from the result file it wrote. */
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
	int status;
	long r;

	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if (mine(&pairs[i], e))
				check_state(&pairs[i], e);
	r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 40, DUP_FD);
	if (r != 0)
		tgt_fail("fd %d is not the same open file as fd 40 (kcmp %ld), though it was a dup of it", DUP_FD, r);
	{
		/* SO_PEEK_OFF 3 on fd 40: a peek starts at byte 3 of the
		 * stream, and moves the offset on. */
		char b[4];
		int off;
		socklen_t l = sizeof(off);
		ssize_t n = recv(40, b, 4, MSG_PEEK | MSG_DONTWAIT);

		if (n != 4 || memcmp(b, "habr", 4))
			tgt_fail("stream-self: fd 40 peek from SO_PEEK_OFF 3 gave %zd bytes %.*s, want habr", n, n > 0 ? (int)n : 0, b);
		if (getsockopt(40, SOL_SOCKET, SO_PEEK_OFF, &off, &l) < 0 || off != 7)
			tgt_fail("stream-self: fd 40 SO_PEEK_OFF %d after a peek of 4, want 7", off);
	}
	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if (mine(&pairs[i], e))
				drain(&pairs[i], e);
	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if (!pairs[i].child && probe(&pairs[i], e, "probe"))
				read_probe(&pairs[i], 1 - e, "probe");
	if (kill(child, SIGTERM) < 0)
		tgt_fail("SIGTERM child %d: %s", child, strerror(errno));
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child && probe_goes(&pairs[i], 1))
			read_probe(&pairs[i], 0, "probe-to-parent");
	for (int i = 0; i < NPAIRS; i++)
		if (pairs[i].child)
			probe(&pairs[i], 0, "probe-to-child");
	if (waitpid(child, &status, 0) != child)
		tgt_fail("waitpid child %d: %s", child, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		child_failed(status);
}

static void teardown(void)
{
	for (int i = 0; i < NPAIRS; i++)
		for (int e = 0; e < 2; e++)
			if (mine(&pairs[i], e))
				close(pairs[i].fd[e]);
	close(DUP_FD);
}

/* ---- refusal modes: one socket at fd 70 ---- */

static void must(int ok, const char *what)
{
	if (!ok)
		tgt_fail("%s: %s", what, strerror(errno));
}

static void move_to(int fd, int to)
{
	must(dup2(fd, to) == to, "dup2");
	close(fd);
}

static void abstract_name(struct sockaddr_un *a, socklen_t *len)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	*len = offsetof(struct sockaddr_un, sun_path) + 1 +
	       snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "gocr-unixsock-%d", getpid());
}

static void refuse_mode(const char *mode)
{
	int sv[2];

	if (strcmp(mode, "dgramfrom") == 0) {
		struct sockaddr_un a;
		socklen_t len;
		int from;

		move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 70);
		abstract_name(&a, &len);
		must(bind(70, (struct sockaddr *)&a, len) == 0, "bind");
		from = socket(AF_UNIX, SOCK_DGRAM, 0);
		must(from >= 0, "socket");
		/* Bound by autobind: an abstract name of its own. */
		must(bind(from, (struct sockaddr *)&a, sizeof(sa_family_t)) == 0, "autobind");
		must(sendto(from, "to-bound", 8, 0, (struct sockaddr *)&a, len) == 8, "sendto");
		close(from);
	} else if (strcmp(mode, "pendingdata") == 0) {
		struct sockaddr_un a;
		socklen_t len;

		move_to(socket(AF_UNIX, SOCK_STREAM, 0), 70);
		abstract_name(&a, &len);
		must(bind(70, (struct sockaddr *)&a, len) == 0, "bind");
		must(listen(70, 4) == 0, "listen");
		move_to(socket(AF_UNIX, SOCK_STREAM, 0), 71);
		must(connect(71, (struct sockaddr *)&a, len) == 0, "connect");
		must(send(71, "early", 5, 0) == 5, "send");
	} else if (strcmp(mode, "outside") == 0) {
		pid_t mid;
		char c;

		must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
		move_to(sv[0], 70);
		mid = fork();
		must(mid >= 0, "fork");
		if (mid == 0) {
			/* The grandchild, orphaned at once, so outside the
			 * dumped tree: it says hello, then waits for the end
			 * of file that 70's closing gives, and exits. */
			if (fork() != 0)
				_exit(0);
			close(70);
			for (int fd = 0; fd < 1024; fd++)
				if (fd != sv[1])
					close(fd);
			if (write(sv[1], "outside", 7) != 7)
				_exit(1);
			while (read(sv[1], &c, 1) > 0)
				;
			_exit(0);
		}
		close(sv[1]);
		must(waitpid(mid, NULL, 0) == mid, "waitpid");
		/* Its hello is there once the grandchild runs. */
		for (int k = 0; k < 500; k++) {
			int n = 0;

			if (ioctl(70, SIOCINQ, &n) == 0 && n == 7)
				break;
			usleep(10000);
		}
	} else if (strcmp(mode, "fds") == 0) {
		int null = open("/dev/null", O_RDONLY);
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { "fd", 2 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		must(null >= 0, "open /dev/null");
		must(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0, "socketpair");
		move_to(sv[0], 70);
		move_to(sv[1], 71);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &null, sizeof(int));
		must(sendmsg(71, &mh, 0) == 2, "sendmsg SCM_RIGHTS");
		close(null);
	} else if (strcmp(mode, "creds") == 0) {
		struct ucred uc = { getpid(), getuid(), getgid() };
		char cbuf[CMSG_SPACE(sizeof(uc))] = { 0 };
		struct iovec iov = { "cred", 4 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
		move_to(sv[0], 70);
		move_to(sv[1], 71);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(uc));
		memcpy(CMSG_DATA(c), &uc, sizeof(uc));
		must(sendmsg(71, &mh, 0) == 4, "sendmsg SCM_CREDENTIALS");
	} else if (strcmp(mode, "udp") == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		move_to(socket(AF_INET, SOCK_DGRAM, 0), 70);
		must(bind(70, (struct sockaddr *)&a, sizeof(a)) == 0, "bind");
	} else if (strcmp(mode, "netlink") == 0) {
		struct sockaddr_nl a = { .nl_family = AF_NETLINK };

		move_to(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 70);
		must(bind(70, (struct sockaddr *)&a, sizeof(a)) == 0, "bind");
	} else if (strcmp(mode, "packet") == 0) {
		move_to(socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)), 70);
	} else {
		tgt_fail("unknown mode %s", mode);
	}
	tgt_ready();
	tgt_wait();
}

/* After a refused dump, fd 70 is as it was. */
static void check_refused(const char *mode)
{
	char buf[64] = "";
	ssize_t n;

	if (strcmp(mode, "dgramfrom") == 0) {
		n = recv(70, buf, sizeof(buf), MSG_DONTWAIT);
		if (n != 8 || memcmp(buf, "to-bound", 8))
			tgt_fail("dgramfrom: fd 70 read %zd bytes %.*s, want to-bound", n, n > 0 ? (int)n : 0, buf);
	} else if (strcmp(mode, "pendingdata") == 0) {
		int c = accept4(70, NULL, NULL, SOCK_NONBLOCK);

		if (c < 0)
			tgt_fail("pendingdata: accept on fd 70: %s, want the pending connection", strerror(errno));
		n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
		if (n != 5 || memcmp(buf, "early", 5))
			tgt_fail("pendingdata: the connection read %zd bytes %.*s, want early", n, n > 0 ? (int)n : 0, buf);
	} else if (strcmp(mode, "outside") == 0) {
		n = recv(70, buf, sizeof(buf), MSG_DONTWAIT);
		if (n != 7 || memcmp(buf, "outside", 7))
			tgt_fail("outside: fd 70 read %zd bytes %.*s, want outside", n, n > 0 ? (int)n : 0, buf);
	} else if (strcmp(mode, "fds") == 0) {
		char cbuf[CMSG_SPACE(sizeof(int))], path[64], link[64] = "";
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		int fd;

		n = recvmsg(70, &mh, MSG_DONTWAIT);
		c = CMSG_FIRSTHDR(&mh);
		if (n != 2 || !c || c->cmsg_type != SCM_RIGHTS)
			tgt_fail("fds: fd 70 read %zd bytes (%s) without the fd sent to it", n, n < 0 ? strerror(errno) : "data");
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (readlink(path, link, sizeof(link) - 1) < 0 || strcmp(link, "/dev/null"))
			tgt_fail("fds: the fd received is %s, want /dev/null", link);
	} else if (strcmp(mode, "creds") == 0) {
		int one = 1;
		char cbuf[CMSG_SPACE(sizeof(struct ucred))];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		struct ucred uc;

		must(setsockopt(70, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED");
		n = recvmsg(70, &mh, MSG_DONTWAIT);
		c = CMSG_FIRSTHDR(&mh);
		if (n != 4 || !c || c->cmsg_type != SCM_CREDENTIALS)
			tgt_fail("creds: fd 70 read %zd bytes (%s) without its credentials", n, n < 0 ? strerror(errno) : "data");
		memcpy(&uc, CMSG_DATA(c), sizeof(uc));
		if (uc.pid != getpid())
			tgt_fail("creds: credentials of pid %d, want %d", uc.pid, getpid());
	} else if (strcmp(mode, "udp") == 0) {
		struct sockaddr_in a;
		socklen_t l = sizeof(a);

		if (getsockname(70, (struct sockaddr *)&a, &l) < 0 || a.sin_port == 0)
			tgt_fail("udp: fd 70 is not bound: %s", strerror(errno));
	} else if (strcmp(mode, "netlink") == 0 || strcmp(mode, "packet") == 0) {
		int dom;
		socklen_t l = sizeof(dom);

		if (getsockopt(70, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 || dom != (mode[0] == 'n' ? AF_NETLINK : AF_PACKET))
			tgt_fail("%s: fd 70 is family %d: %s", mode, dom, strerror(errno));
	}
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc > 2) {
		refuse_mode(argv[2]);
		check_refused(argv[2]);
		tgt_pass();
	}
	/* Once, checked at once: the checks pass on what setup makes. */
	setup();
	if (in_child)
		child_main();
	verify();
	teardown();
	/* Again, for the dump. */
	setup();
	if (in_child)
		child_main();
	tgt_log("unixsock: parent %d, child %d\n", getpid(), child);
	tgt_ready();
	tgt_wait();
	verify();
	tgt_pass();
}
