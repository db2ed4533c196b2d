/*
 * Socket state beyond plain options (argv[2] picks the case):
 *   restored    a UDP socket with a locked classic filter, IP options,
 *               IP_MULTICAST_ALL off, IP_MULTICAST_IF, a membership of
 *               239.1.2.3 on the loopback and a datagram queued; a unix datagram socketpair whose end has a
 *               filter and a datagram queued; a TCP listener with a
 *               filter, TCP_MAXSEG and TCP_SAVE_SYN; a TCP socket not
 *               connected with TCP_MAXSEG; TCP and UDP sockets never
 *               bound, with options (among them IP_LOCAL_PORT_RANGE
 *               and TCP_FASTOPEN_CONNECT); a unix stream socket whose
 *               peer was closed with data it had not read, with data
 *               of its own to read (ECONNRESET pending). After SIGTERM each reads
 *               back as set, the datagrams arrive, and a connection the
 *               listener accepts has its SYN saved.
 *   restored6   an IPv6 UDP socket bound to ::1 with a membership of
 *               ff02::1:3 on the loopback, IPV6_MULTICAST_IF and
 *               IPV6_MULTICAST_ALL off: after SIGTERM each reads back.
 * Refusal modes set up one socket at fd 70 that gocr must refuse; after
 * SIGTERM the target checks it is as it was:
 *   ebpf        a UDP socket with an eBPF filter (SO_ATTACH_BPF).
 *   soerror     a UDP socket connected to a closed port with its error
 *               (ECONNREFUSED) pending.
 *   msfilter    a UDP socket that joined 239.1.2.4 on the loopback for
 *               one source (IP_ADD_SOURCE_MEMBERSHIP).
 *   savedsyn    an accepted connection whose saved SYN was not read.
 *   md5sig      a TCP listener with an MD5 key (TCP_MD5SIG).
 *   tcpipopts   a TCP connection with IP options (IP_OPTIONS).
 *   unixdgramreset  a unix datagram socket whose peer, connected to it,
 *               disconnected with a datagram from it unread
 *               (ECONNRESET pending).
 *   tcpreset    a TCP connection reset by its peer, its error read.
 *   timestamping  a UDP socket with SO_TIMESTAMPING.
 *   bindtodevice  a UDP socket bound to the loopback device
 *               (SO_BINDTODEVICE).
 *   urgent      a TCP connection with an urgent byte (MSG_OOB) waiting.
 *   tcppeekoff  a TCP connection with SO_PEEK_OFF set.
 *   ipv6hdr     an IPv6 UDP socket with a destination options header
 *               (IPV6_DSTOPTS).
 *   tcpulp      an accepted TCP connection with the "tls" upper layer
 *               protocol attached (TCP_ULP, kTLS without keys).
 *   ecn         an accepted TCP connection with ECN negotiated: its
 *               listener on ECN_ADDR, whose route the test gives the ecn
 *               feature (ip-route(8) "features ecn"), the client asking
 *               for ECN by it (net/ipv4/tcp_output.c tcp_ecn_send_syn).
 *   linklocal ADDR IFNAME  a UDP socket bound to the IPv6 link-local
 *               address ADDR on interface IFNAME.
 */
#include "target.h"
#include "sockint.h"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define REFUSED_FD 70

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51 /* include/uapi/linux/in.h, Linux 6.3 */
#endif

static struct sockaddr_in lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int bound(int type)
{
	struct sockaddr_in a = lo(0);
	int s = socket(AF_INET, type, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		tgt_fail("socket and bind: %s", strerror(errno));
	return s;
}

static struct sockaddr_in name_of(int s)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	if (getsockname(s, (struct sockaddr *)&a, &l) < 0)
		tgt_fail("getsockname: %s", strerror(errno));
	return a;
}

static void to_fd(int s, int fd)
{
	if (dup2(s, fd) < 0)
		tgt_fail("dup2 to %d: %s", fd, strerror(errno));
	close(s);
}

/* A classic program of two instructions: load the length, accept that
 * many bytes (the whole packet). */
static struct sock_filter prog[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
	BPF_STMT(BPF_RET | BPF_A, 0),
};

static void attach(int s)
{
	struct sock_fprog p = { .len = 2, .filter = prog };

	if (setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof(p)) < 0)
		tgt_fail("SO_ATTACH_FILTER: %s", strerror(errno));
}

static void want_filter(int s, const char *what)
{
	struct sock_filter got[4];
	socklen_t n = 4;

	if (getsockopt(s, SOL_SOCKET, SO_GET_FILTER, got, &n) < 0)
		tgt_fail("%s: SO_GET_FILTER: %s", what, strerror(errno));
	if (n != 2 || memcmp(got, prog, sizeof(prog)) != 0)
		tgt_fail("%s: the filter reads back as %u other instructions", what, n);
}

static void expect_datagram(int s, const char *want, const char *what)
{
	char buf[64];
	struct pollfd p = { .fd = s, .events = POLLIN };
	ssize_t r;

	if (poll(&p, 1, 10000) <= 0)
		tgt_fail("%s: no datagram within 10 s", what);
	r = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	if (r != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)r) != 0)
		tgt_fail("%s: got %zd bytes, want %s", what, r, want);
}

static struct ip_mreqn group(const char *g)
{
	struct ip_mreqn m = { .imr_ifindex = (int)if_nametoindex("lo") };

	inet_aton(g, &m.imr_multiaddr);
	return m;
}

static void join(int s, const char *g)
{
	struct ip_mreqn m = group(g);

	if (setsockopt(s, SOL_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("IP_ADD_MEMBERSHIP %s: %s", g, strerror(errno));
}

/* Leaving fails with EADDRNOTAVAIL if the socket is no member. */
static void leave(int s, const char *g)
{
	struct ip_mreqn m = group(g);

	if (setsockopt(s, SOL_IP, IP_DROP_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("no longer a member of %s (IP_DROP_MEMBERSHIP: %s)", g, strerror(errno));
}

static const unsigned char ipopts[] = { IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END };

/* A stream socket whose peer was closed with "r" unread, "q" waiting at
 * it: recv gives "q", then ECONNRESET, then the end of file. */
static void reset_pair(int *r)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		tgt_fail("socketpair: %s", strerror(errno));
	if (send(sv[1], "q", 1, 0) != 1 || send(sv[0], "r", 1, 0) != 1)
		tgt_fail("send: %s", strerror(errno));
	close(sv[1]);
	*r = sv[0];
}

static void check_reset_pair(int r)
{
	char c = 0;

	if (recv(r, &c, 1, MSG_DONTWAIT) != 1 || c != 'q')
		tgt_fail("the reset unix socket's data: %s", strerror(errno));
	if (recv(r, &c, 1, MSG_DONTWAIT) >= 0 || errno != ECONNRESET)
		tgt_fail("the reset unix socket gave no ECONNRESET (%s)", strerror(errno));
	if (recv(r, &c, 1, MSG_DONTWAIT) != 0)
		tgt_fail("the reset unix socket gave no end of file (%s)", strerror(errno));
}

static void restored(void)
{
	int u = bound(SOCK_DGRAM), snd = bound(SOCK_DGRAM), l = bound(SOCK_STREAM), t = bound(SOCK_STREAM);
	int ut = socket(AF_INET, SOCK_STREAM, 0), uu = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ua = name_of(u), la = name_of(l), got;
	struct in_addr mcif = { htonl(INADDR_LOOPBACK) };
	unsigned char ob[40];
	socklen_t ol = sizeof(ob);
	int sv[2], c, a, rs;
	char syn[512];
	uint64_t rate = 5000000000ULL; /* above 2^32: needs the 8-byte form */

	if (sendto(snd, "u1", 2, 0, (struct sockaddr *)&ua, sizeof(ua)) != 2)
		tgt_fail("sendto: %s", strerror(errno));
	attach(u);
	setint(u, SOL_SOCKET, SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");
	if (setsockopt(u, SOL_IP, IP_OPTIONS, ipopts, sizeof(ipopts)) < 0)
		tgt_fail("IP_OPTIONS: %s", strerror(errno));
	setint(u, SOL_IP, IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL");
	if (setsockopt(u, SOL_IP, IP_MULTICAST_IF, &mcif, sizeof(mcif)) < 0)
		tgt_fail("IP_MULTICAST_IF: %s", strerror(errno));
	join(u, "239.1.2.3");
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		tgt_fail("socketpair: %s", strerror(errno));
	attach(sv[0]);
	if (send(sv[1], "x1", 2, 0) != 2)
		tgt_fail("send: %s", strerror(errno));
	attach(l);
	setint(l, SOL_TCP, TCP_MAXSEG, 1000, "TCP_MAXSEG");
	setint(l, SOL_TCP, TCP_SAVE_SYN, 1, "TCP_SAVE_SYN");
	if (listen(l, 4) < 0)
		tgt_fail("listen: %s", strerror(errno));
	setint(t, SOL_TCP, TCP_MAXSEG, 1200, "TCP_MAXSEG");
	if (ut < 0 || uu < 0)
		tgt_fail("socket: %s", strerror(errno));
	setint(ut, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	setint(ut, SOL_IP, IP_LOCAL_PORT_RANGE, 40000 | 41000 << 16, "IP_LOCAL_PORT_RANGE");
	setint(ut, SOL_TCP, TCP_FASTOPEN_CONNECT, 1, "TCP_FASTOPEN_CONNECT");
	setint(u, SOL_IP, IP_RECVORIGDSTADDR, 1, "IP_RECVORIGDSTADDR");
	setint(l, SOL_IP, IP_MINTTL, 3, "IP_MINTTL");
	if (setsockopt(u, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate)) < 0)
		tgt_fail("SO_MAX_PACING_RATE: %s", strerror(errno));
	setint(uu, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
	reset_pair(&rs);
	tgt_ready();
	tgt_wait();

	want_filter(u, "UDP socket");
	wantint(u, SOL_SOCKET, SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");
	if (getsockopt(u, SOL_IP, IP_OPTIONS, ob, &ol) < 0 || ol != sizeof(ipopts) || memcmp(ob, ipopts, ol) != 0)
		tgt_fail("IP_OPTIONS read back as %u bytes (%s)", ol, strerror(errno));
	wantint(u, SOL_IP, IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL");
	ol = sizeof(mcif);
	mcif.s_addr = 0;
	if (getsockopt(u, SOL_IP, IP_MULTICAST_IF, &mcif, &ol) < 0 || mcif.s_addr != htonl(INADDR_LOOPBACK))
		tgt_fail("IP_MULTICAST_IF reads back as %s", inet_ntoa(mcif));
	expect_datagram(u, "u1", "UDP socket");
	leave(u, "239.1.2.3");
	want_filter(sv[0], "unix socket");
	wantint(sv[0], SOL_SOCKET, SO_LOCK_FILTER, 0, "unix SO_LOCK_FILTER");
	expect_datagram(sv[0], "x1", "unix socket");
	want_filter(l, "TCP listener");
	wantint(l, SOL_TCP, TCP_MAXSEG, 1000, "listener TCP_MAXSEG");
	wantint(l, SOL_TCP, TCP_SAVE_SYN, 1, "TCP_SAVE_SYN");
	wantint(t, SOL_TCP, TCP_MAXSEG, 1200, "unconnected TCP_MAXSEG");
	wantint(ut, SOL_TCP, TCP_NODELAY, 1, "unbound TCP_NODELAY");
	wantint(ut, SOL_IP, IP_LOCAL_PORT_RANGE, 40000 | 41000 << 16, "IP_LOCAL_PORT_RANGE");
	wantint(ut, SOL_TCP, TCP_FASTOPEN_CONNECT, 1, "TCP_FASTOPEN_CONNECT");
	wantint(u, SOL_IP, IP_RECVORIGDSTADDR, 1, "IP_RECVORIGDSTADDR");
	wantint(l, SOL_IP, IP_MINTTL, 3, "IP_MINTTL");
	ol = sizeof(rate);
	rate = 0;
	if (getsockopt(u, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, &ol) < 0 || rate != 5000000000ULL)
		tgt_fail("SO_MAX_PACING_RATE reads back as %llu", (unsigned long long)rate);
	wantint(uu, SOL_SOCKET, SO_BROADCAST, 1, "unbound SO_BROADCAST");
	if (name_of(ut).sin_port != 0 || name_of(uu).sin_port != 0)
		tgt_fail("an unbound socket came back bound");
	check_reset_pair(rs);
	got = name_of(l);
	if (got.sin_port != la.sin_port)
		tgt_fail("listener port changed");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	if (a < 0)
		tgt_fail("accept: %s", strerror(errno));
	ol = sizeof(syn);
	if (getsockopt(a, SOL_TCP, TCP_SAVED_SYN, syn, &ol) < 0 || ol == 0)
		tgt_fail("no saved SYN on the accepted connection (%s)", strerror(errno));
	tgt_pass();
}

static void ebpf(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char license[] = "GPL";
	union bpf_attr attr;
	int u = bound(SOCK_DGRAM), p;
	socklen_t n = 0;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insn_cnt = 2;
	attr.insns = (unsigned long)insns;
	attr.license = (unsigned long)license;
	p = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (p < 0)
		tgt_fail("BPF_PROG_LOAD: %s", strerror(errno));
	if (setsockopt(u, SOL_SOCKET, SO_ATTACH_BPF, &p, sizeof(p)) < 0)
		tgt_fail("SO_ATTACH_BPF: %s", strerror(errno));
	close(p);
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_SOCKET, SO_GET_FILTER, NULL, &n) == 0 || errno != EACCES)
		tgt_fail("the eBPF filter is gone (SO_GET_FILTER: %s)", strerror(errno));
	tgt_pass();
}

static void soerror(void)
{
	int u = bound(SOCK_DGRAM), closed = bound(SOCK_DGRAM);
	struct sockaddr_in a = name_of(closed);
	struct pollfd p = { .fd = u };

	close(closed);
	if (connect(u, (struct sockaddr *)&a, sizeof(a)) < 0 || send(u, "e", 1, 0) != 1)
		tgt_fail("connect and send: %s", strerror(errno));
	if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLERR))
		tgt_fail("no error pending within 10 s");
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	wantint(REFUSED_FD, SOL_SOCKET, SO_ERROR, ECONNREFUSED, "SO_ERROR");
	tgt_pass();
}

static void msfilter(void)
{
	int u = bound(SOCK_DGRAM);
	struct ip_mreq_source m = { .imr_interface = { htonl(INADDR_LOOPBACK) } };

	inet_aton("239.1.2.4", &m.imr_multiaddr);
	inet_aton("127.0.0.2", &m.imr_sourceaddr);
	if (setsockopt(u, SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("IP_ADD_SOURCE_MEMBERSHIP: %s", strerror(errno));
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (setsockopt(REFUSED_FD, SOL_IP, IP_DROP_SOURCE_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("no longer a member (IP_DROP_SOURCE_MEMBERSHIP: %s)", strerror(errno));
	tgt_pass();
}

static void savedsyn(void)
{
	int l = bound(SOCK_STREAM), c = socket(AF_INET, SOCK_STREAM, 0), a;
	struct sockaddr_in la = name_of(l);
	char syn[512];
	socklen_t n = sizeof(syn);

	setint(l, SOL_TCP, TCP_SAVE_SYN, 1, "TCP_SAVE_SYN");
	if (listen(l, 4) < 0 || c < 0 || connect(c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("listen and connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	if (a < 0)
		tgt_fail("accept: %s", strerror(errno));
	to_fd(a, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_TCP, TCP_SAVED_SYN, syn, &n) < 0 || n == 0)
		tgt_fail("the saved SYN is gone (%s)", strerror(errno));
	tgt_pass();
}

static void md5sig(void)
{
	int l = bound(SOCK_STREAM);
	struct tcp_md5sig k = { .tcpm_keylen = 6 };
	struct sockaddr_in peer = lo(0);
	socklen_t n = sizeof(k);

	memcpy(&k.tcpm_addr, &peer, sizeof(peer));
	memcpy(k.tcpm_key, "secret", 6);
	if (setsockopt(l, SOL_TCP, TCP_MD5SIG, &k, sizeof(k)) < 0)
		tgt_fail("TCP_MD5SIG: %s", strerror(errno));
	if (listen(l, 4) < 0)
		tgt_fail("listen: %s", strerror(errno));
	to_fd(l, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	/* Deleting the key (keylen 0) fails with ENOENT if it is gone. */
	k.tcpm_keylen = 0;
	if (setsockopt(REFUSED_FD, SOL_TCP, TCP_MD5SIG, &k, n) < 0)
		tgt_fail("the MD5 key is gone (%s)", strerror(errno));
	tgt_pass();
}

static void tcpipopts(void)
{
	int l = bound(SOCK_STREAM), c = socket(AF_INET, SOCK_STREAM, 0), a;
	struct sockaddr_in la = name_of(l);
	unsigned char ob[40];
	socklen_t n = sizeof(ob);

	if (listen(l, 4) < 0 || c < 0 || connect(c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("listen and connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	if (a < 0)
		tgt_fail("accept: %s", strerror(errno));
	if (setsockopt(c, SOL_IP, IP_OPTIONS, ipopts, sizeof(ipopts)) < 0)
		tgt_fail("IP_OPTIONS: %s", strerror(errno));
	to_fd(c, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_IP, IP_OPTIONS, ob, &n) < 0 || n != sizeof(ipopts))
		tgt_fail("the IP options are gone (%u bytes, %s)", n, strerror(errno));
	tgt_pass();
}

static void ipv6hdr(void)
{
	/* Next header, length 0 (8 bytes), a PadN option of 4 bytes. */
	static const unsigned char dst[8] = { 0, 0, 1, 4, 0, 0, 0, 0 };
	unsigned char got[8];
	socklen_t n = sizeof(got);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int u = socket(AF_INET6, SOCK_DGRAM, 0);

	if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)) < 0)
		tgt_fail("socket and bind: %s", strerror(errno));
	if (setsockopt(u, SOL_IPV6, IPV6_DSTOPTS, dst, sizeof(dst)) < 0)
		tgt_fail("IPV6_DSTOPTS: %s", strerror(errno));
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_IPV6, IPV6_DSTOPTS, got, &n) < 0 || n != sizeof(dst))
		tgt_fail("the destination options are gone (%u bytes, %s)", n, strerror(errno));
	tgt_pass();
}

static void unixdgramreset(void)
{
	int sv[2];
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	char c;

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		tgt_fail("socketpair: %s", strerror(errno));
	/* The peer disconnecting with a datagram unread (net/unix/af_unix.c
	 * unix_dgram_disconnected). */
	if (send(sv[0], "d", 1, 0) != 1)
		tgt_fail("send: %s", strerror(errno));
	if (connect(sv[1], &un, sizeof(un)) < 0)
		tgt_fail("disconnect: %s", strerror(errno));
	to_fd(sv[0], REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (recv(REFUSED_FD, &c, 1, MSG_DONTWAIT) >= 0 || errno != ECONNRESET)
		tgt_fail("recv gave no ECONNRESET (%s)", strerror(errno));
	tgt_pass();
}

static void tcpreset(void)
{
	int l = bound(SOCK_STREAM), c = socket(AF_INET, SOCK_STREAM, 0), a;
	struct sockaddr_in la = name_of(l);
	struct linger lg = { 1, 0 };
	struct pollfd p = { .fd = c };
	char ch;

	if (listen(l, 4) < 0 || c < 0 || connect(c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("listen and connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	if (a < 0 || setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		tgt_fail("accept and SO_LINGER: %s", strerror(errno));
	close(a); /* a linger of 0 sends a reset */
	if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLERR))
		tgt_fail("no reset within 10 s");
	wantint(c, SOL_SOCKET, SO_ERROR, ECONNRESET, "SO_ERROR");
	to_fd(c, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	/* A reset socket reads the end of file; a new one is not connected. */
	if (recv(REFUSED_FD, &ch, 1, MSG_DONTWAIT) != 0)
		tgt_fail("recv on the reset socket: %s", strerror(errno));
	tgt_pass();
}

static void timestamping(void)
{
	int u = bound(SOCK_DGRAM);

	setint(u, SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, "SO_TIMESTAMPING");
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	wantint(REFUSED_FD, SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, "SO_TIMESTAMPING");
	tgt_pass();
}

static void bindtodevice(void)
{
	int u = bound(SOCK_DGRAM);
	char dev[IFNAMSIZ] = "";
	socklen_t len = sizeof(dev);

	if (setsockopt(u, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) < 0)
		tgt_fail("SO_BINDTODEVICE lo: %s", strerror(errno));
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) < 0 || strcmp(dev, "lo") != 0)
		tgt_fail("SO_BINDTODEVICE is \"%s\", want lo", dev);
	tgt_pass();
}

/* tcp_pair connects a TCP socket of its own to a listener of its own and
 * returns the accepted end; *c is the connecting one. */
static int tcp_pair(int *c)
{
	int l = bound(SOCK_STREAM), a;
	struct sockaddr_in la = name_of(l);

	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (listen(l, 4) < 0 || *c < 0 || connect(*c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("listen and connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	if (a < 0)
		tgt_fail("accept: %s", strerror(errno));
	close(l);
	return a;
}

static void urgent(void)
{
	int c, a = tcp_pair(&c), at_mark = 0;
	char ch;

	if (send(c, "u", 1, MSG_OOB) != 1)
		tgt_fail("send MSG_OOB: %s", strerror(errno));
	/* Wait for the urgent byte to arrive: the mark is at it. */
	for (int i = 0; i < 5000 && !at_mark; i++) {
		if (ioctl(a, SIOCATMARK, &at_mark) < 0)
			tgt_fail("SIOCATMARK: %s", strerror(errno));
		if (!at_mark)
			usleep(1000);
	}
	if (!at_mark)
		tgt_fail("the urgent byte did not arrive");
	to_fd(a, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (recv(REFUSED_FD, &ch, 1, MSG_OOB) != 1 || ch != 'u')
		tgt_fail("the urgent byte is gone: %s", strerror(errno));
	tgt_pass();
}

static void tcppeekoff(void)
{
	int c, a = tcp_pair(&c);

	setint(a, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
	to_fd(a, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	wantint(REFUSED_FD, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
	tgt_pass();
}

static void tcpulp(void)
{
	int c, a = tcp_pair(&c);
	char ulp[16] = "";
	socklen_t len = sizeof(ulp);

	if (setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
		tgt_fail("TCP_ULP tls: %s", strerror(errno));
	to_fd(a, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockopt(REFUSED_FD, SOL_TCP, TCP_ULP, ulp, &len) < 0 || strcmp(ulp, "tls") != 0)
		tgt_fail("TCP_ULP is \"%s\", want tls", ulp);
	tgt_pass();
}

#define ECN_ADDR "127.0.0.77"

/* has_ecn tells whether ECN was negotiated on TCP socket s: TCPI_OPT_ECN
 * in tcpi_options (include/uapi/linux/tcp.h). */
static int has_ecn(int s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(s, SOL_TCP, TCP_INFO, &ti, &len) < 0)
		tgt_fail("TCP_INFO: %s", strerror(errno));
	return (ti.tcpi_options & TCPI_OPT_ECN) != 0;
}

static void ecn(void)
{
	struct sockaddr_in la = { .sin_family = AF_INET };
	socklen_t len = sizeof(la);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), a;
	char ch;

	inet_pton(AF_INET, ECN_ADDR, &la.sin_addr);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&la, &len) < 0 || connect(c, (struct sockaddr *)&la, sizeof(la)) < 0)
		tgt_fail("listen on and connect to %s: %s", ECN_ADDR, strerror(errno));
	if ((a = accept(l, NULL, NULL)) < 0)
		tgt_fail("accept: %s", strerror(errno));
	close(l);
	if (!has_ecn(a) || !has_ecn(c))
		tgt_fail("no ECN negotiated on the connection to %s", ECN_ADDR);
	/* The client above the refused fd: the dump looks at fd 70 first. */
	to_fd(a, REFUSED_FD);
	to_fd(c, REFUSED_FD + 1);
	tgt_ready();
	tgt_wait();
	if (!has_ecn(REFUSED_FD))
		tgt_fail("ECN is no longer negotiated");
	if (send(REFUSED_FD + 1, "e", 1, 0) != 1 || recv(REFUSED_FD, &ch, 1, 0) != 1 || ch != 'e')
		tgt_fail("the connection carries no data: %s", strerror(errno));
	tgt_pass();
}

static void linklocal(const char *addr, const char *ifname)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 }, got;
	socklen_t len = sizeof(got);
	int u = socket(AF_INET6, SOCK_DGRAM, 0);

	a.sin6_scope_id = if_nametoindex(ifname);
	if (u < 0 || a.sin6_scope_id == 0 || inet_pton(AF_INET6, addr, &a.sin6_addr) != 1 ||
	    bind(u, (struct sockaddr *)&a, sizeof(a)) < 0)
		tgt_fail("bind to %s%%%s: %s", addr, ifname, strerror(errno));
	to_fd(u, REFUSED_FD);
	tgt_ready();
	tgt_wait();
	if (getsockname(REFUSED_FD, (struct sockaddr *)&got, &len) < 0 ||
	    memcmp(&got.sin6_addr, &a.sin6_addr, sizeof(a.sin6_addr)) != 0 || got.sin6_scope_id != a.sin6_scope_id)
		tgt_fail("the socket is no longer bound to %s%%%s", addr, ifname);
	tgt_pass();
}

static void restored6(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct ipv6_mreq m = { .ipv6mr_interface = if_nametoindex("lo") };
	int u = socket(AF_INET6, SOCK_DGRAM, 0);

	if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)) < 0)
		tgt_fail("socket and bind: %s", strerror(errno));
	inet_pton(AF_INET6, "ff02::1:3", &m.ipv6mr_multiaddr);
	if (setsockopt(u, SOL_IPV6, IPV6_ADD_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("IPV6_ADD_MEMBERSHIP: %s", strerror(errno));
	setint(u, SOL_IPV6, IPV6_MULTICAST_IF, (int)m.ipv6mr_interface, "IPV6_MULTICAST_IF");
	setint(u, SOL_IPV6, IPV6_MULTICAST_ALL, 0, "IPV6_MULTICAST_ALL");
	tgt_ready();
	tgt_wait();
	wantint(u, SOL_IPV6, IPV6_MULTICAST_IF, (int)m.ipv6mr_interface, "IPV6_MULTICAST_IF");
	wantint(u, SOL_IPV6, IPV6_MULTICAST_ALL, 0, "IPV6_MULTICAST_ALL");
	/* Leaving fails with EADDRNOTAVAIL if the socket is no member. */
	if (setsockopt(u, SOL_IPV6, IPV6_DROP_MEMBERSHIP, &m, sizeof(m)) < 0)
		tgt_fail("no longer a member of ff02::1:3 (IPV6_DROP_MEMBERSHIP: %s)", strerror(errno));
	tgt_pass();
}

int main(int argc, char **argv)
{
	const char *mode;

	tgt_init(argc, argv);
	mode = argc > 2 ? argv[2] : "";
	if (strcmp(mode, "restored") == 0)
		restored();
	else if (strcmp(mode, "restored6") == 0)
		restored6();
	else if (strcmp(mode, "ebpf") == 0)
		ebpf();
	else if (strcmp(mode, "soerror") == 0)
		soerror();
	else if (strcmp(mode, "msfilter") == 0)
		msfilter();
	else if (strcmp(mode, "savedsyn") == 0)
		savedsyn();
	else if (strcmp(mode, "md5sig") == 0)
		md5sig();
	else if (strcmp(mode, "tcpipopts") == 0)
		tcpipopts();
	else if (strcmp(mode, "ipv6hdr") == 0)
		ipv6hdr();
	else if (strcmp(mode, "unixdgramreset") == 0)
		unixdgramreset();
	else if (strcmp(mode, "tcpreset") == 0)
		tcpreset();
	else if (strcmp(mode, "timestamping") == 0)
		timestamping();
	else if (strcmp(mode, "bindtodevice") == 0)
		bindtodevice();
	else if (strcmp(mode, "urgent") == 0)
		urgent();
	else if (strcmp(mode, "tcppeekoff") == 0)
		tcppeekoff();
	else if (strcmp(mode, "tcpulp") == 0)
		tcpulp();
	else if (strcmp(mode, "ecn") == 0)
		ecn();
	else if (strcmp(mode, "linklocal") == 0 && argc > 4)
		linklocal(argv[3], argv[4]);
	tgt_fail("usage: sockopts RESULT restored|restored6|ebpf|soerror|msfilter|savedsyn|md5sig|tcpipopts|ipv6hdr|unixdgramreset|tcpreset|timestamping|bindtodevice|urgent|tcppeekoff|tcpulp|ecn|linklocal ADDR IFNAME");
}
