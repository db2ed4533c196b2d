/*
 * epoll: an epoll instance (fd 50, EPOLL_CLOEXEC) watching eventfds at
 * chosen fd numbers with distinct event masks and data:
 *
 *   A  fd 60, readable,     EPOLLIN          data 0xa1a1000000000060
 *   B  fd 61, not readable, EPOLLIN          data 0xb2b2000000000061
 *   C  fd 62, writable,     EPOLLOUT         data 0xc3c3000000000062
 *   D  fd 63, readable,     EPOLLIN|EPOLLET  data 0xd4d4000000000063
 *   E  fd 200, readable,    EPOLLIN|EPOLLPRI|EPOLLRDHUP data 0xe5e50000000000c8
 *
 * and a second instance (fd 51) watching F (fd 64, readable) with
 * EPOLLIN|EPOLLONESHOT, whose one shot was consumed and re-armed with
 * EPOLL_CTL_MOD before the dump: it reports F once more, then no more.
 * (A disarmed one-shot watch is refused at dump: refusedstate.c.)
 *
 * After restore: fd 50's fdinfo watch list is what it was; one epoll_wait
 * reports exactly A, C, D and E with their data and events; a second
 * reports A, C and E but not D (edge-triggered, consumed); fd 51 reports
 * F once, then nothing. Then for every registered fd number: EPOLL_CTL_ADD fails with
 * EEXIST, EPOLL_CTL_MOD to a new mask and data takes effect, EPOLL_CTL_DEL
 * succeeds and a second DEL fails with ENOENT; the instance ends empty.
 * This shows the watches are keyed by the dumped fd numbers.
 *
 * Usage: epoll RESULT_PATH
 */
#include "target.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define EPFD 50
#define EPFD1 51

struct watch {
	const char *name;
	int fd;
	uint64_t count; /* eventfd initial count */
	uint32_t events;
	uint64_t data;
	uint32_t want1, want2; /* events expected from the first and second epoll_wait (0: none) */
};

static struct watch w[] = {
	{ "A", 60, 1, EPOLLIN, 0xa1a1000000000060ULL, EPOLLIN, EPOLLIN },
	{ "B", 61, 0, EPOLLIN, 0xb2b2000000000061ULL, 0, 0 },
	{ "C", 62, 0, EPOLLOUT, 0xc3c3000000000062ULL, EPOLLOUT, EPOLLOUT },
	{ "D", 63, 2, EPOLLIN | EPOLLET, 0xd4d4000000000063ULL, EPOLLIN, 0 },
	{ "E", 200, 3, EPOLLIN | EPOLLPRI | EPOLLRDHUP, 0xe5e50000000000c8ULL, EPOLLIN, EPOLLIN },
};
#define NW (int)(sizeof(w) / sizeof(w[0]))
#define ONESHOT_FD 64
#define ONESHOT_DATA 0xf6f6000000000040ULL

static char fdinfo_before[4096];

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "tfd:" lines of an epoll fd's fdinfo without their pos: field,
 * sorted: the kernel lists them in the order of its red-black tree, keyed
 * by file address, which a restore need not keep. */
static void watch_lines(int epfd, char *out, size_t cap)
{
	char buf[8192], *line, *save, *lines[64];
	int nl = 0;

	tgt_read_fdinfo(epfd, buf, sizeof(buf));
	for (line = strtok_r(buf, "\n", &save); line && nl < 64; line = strtok_r(NULL, "\n", &save)) {
		char *pos;

		if (strncmp(line, "tfd:", 4) != 0)
			continue;
		if ((pos = strstr(line, " pos:")) != NULL)
			*pos = 0;
		lines[nl++] = line;
	}
	qsort(lines, (size_t)nl, sizeof(lines[0]), cmp_str);
	out[0] = 0;
	for (int i = 0; i < nl; i++) {
		strncat(out, lines[i], cap - strlen(out) - 2);
		strcat(out, ";");
	}
}

static int make_eventfd(const char *name, int want_fd, uint64_t count)
{
	int fd = eventfd((unsigned int)count, EFD_NONBLOCK);

	if (fd < 0)
		tgt_fail("eventfd %s: %s", name, strerror(errno));
	if (dup2(fd, want_fd) < 0)
		tgt_fail("dup2 %s to %d: %s", name, want_fd, strerror(errno));
	close(fd);
	return want_fd;
}

/* One epoll_wait on EPFD must report exactly the watches whose want (first
 * or second round) is set, with their data and events. */
static void expect_events(int round)
{
	struct epoll_event ev[16];
	int seen[NW] = { 0 };
	int n = epoll_wait(EPFD, ev, 16, 0);

	if (n < 0)
		tgt_fail("epoll_wait %d: %s", round, strerror(errno));
	for (int k = 0; k < n; k++) {
		int found = -1;

		for (int i = 0; i < NW; i++)
			if (ev[k].data.u64 == w[i].data)
				found = i;
		if (found < 0)
			tgt_fail("epoll_wait %d reported data %#llx events %#x, which no watch has", round,
				 (unsigned long long)ev[k].data.u64, ev[k].events);
		if (seen[found]++)
			tgt_fail("epoll_wait %d reported %s twice", round, w[found].name);
		uint32_t want = round == 1 ? w[found].want1 : w[found].want2;
		if (!want)
			tgt_fail("epoll_wait %d reported %s (fd %d, events %#x), which is not ready", round,
				 w[found].name, w[found].fd, ev[k].events);
		if (ev[k].events != want)
			tgt_fail("epoll_wait %d reported %s with events %#x, want %#x", round, w[found].name,
				 ev[k].events, want);
	}
	for (int i = 0; i < NW; i++) {
		uint32_t want = round == 1 ? w[i].want1 : w[i].want2;

		if (want && !seen[i])
			tgt_fail("epoll_wait %d did not report %s (fd %d, data %#llx)", round, w[i].name, w[i].fd,
				 (unsigned long long)w[i].data);
	}
}

int main(int argc, char **argv)
{
	struct epoll_event ev;
	char now[4096];
	int fd, n;

	tgt_init(argc, argv);
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0 || dup3(fd, EPFD, O_CLOEXEC) < 0)
		tgt_fail("epoll fd %d: %s", EPFD, strerror(errno));
	close(fd);
	fd = epoll_create1(0);
	if (fd < 0 || dup2(fd, EPFD1) < 0)
		tgt_fail("epoll fd %d: %s", EPFD1, strerror(errno));
	close(fd);
	for (int i = 0; i < NW; i++) {
		make_eventfd(w[i].name, w[i].fd, w[i].count);
		ev.events = w[i].events;
		ev.data.u64 = w[i].data;
		if (epoll_ctl(EPFD, EPOLL_CTL_ADD, w[i].fd, &ev) < 0)
			tgt_fail("epoll_ctl ADD %s: %s", w[i].name, strerror(errno));
	}
	make_eventfd("F", ONESHOT_FD, 1);
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.u64 = ONESHOT_DATA;
	if (epoll_ctl(EPFD1, EPOLL_CTL_ADD, ONESHOT_FD, &ev) < 0)
		tgt_fail("epoll_ctl ADD F: %s", strerror(errno));
	n = epoll_wait(EPFD1, &ev, 1, 0);
	if (n != 1 || ev.data.u64 != ONESHOT_DATA)
		tgt_fail("setup: one-shot epoll_wait returned %d", n);
	if (epoll_wait(EPFD1, &ev, 1, 0) != 0)
		tgt_fail("setup: one-shot watch reported twice");
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.u64 = ONESHOT_DATA;
	if (epoll_ctl(EPFD1, EPOLL_CTL_MOD, ONESHOT_FD, &ev) < 0)
		tgt_fail("setup: epoll_ctl MOD F: %s", strerror(errno));
	watch_lines(EPFD, fdinfo_before, sizeof(fdinfo_before));
	tgt_log("epoll fd %d watches: %s\n", EPFD, fdinfo_before);
	tgt_ready();
	tgt_wait();

	if (fcntl(EPFD, F_GETFD) != FD_CLOEXEC)
		tgt_fail("epoll fd %d F_GETFD %d, want FD_CLOEXEC", EPFD, fcntl(EPFD, F_GETFD));
	if (fcntl(EPFD1, F_GETFD) != 0)
		tgt_fail("epoll fd %d F_GETFD %d, want 0", EPFD1, fcntl(EPFD1, F_GETFD));
	watch_lines(EPFD, now, sizeof(now));
	if (strcmp(now, fdinfo_before) != 0)
		tgt_fail("epoll fd %d watches %s, want %s", EPFD, now, fdinfo_before);

	expect_events(1);
	expect_events(2);
	n = epoll_wait(EPFD1, &ev, 1, 0);
	if (n != 1 || ev.data.u64 != ONESHOT_DATA || ev.events != EPOLLIN)
		tgt_fail("epoll fd %d: the re-armed one-shot watch reported %d events (data %#llx events %#x), want F once",
			 EPFD1, n, (unsigned long long)ev.data.u64, ev.events);
	n = epoll_wait(EPFD1, &ev, 1, 0);
	if (n != 0)
		tgt_fail("epoll fd %d: the one-shot watch reported again after its shot (%d events, data %#llx)", EPFD1,
			 n, (unsigned long long)ev.data.u64);
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.u64 = ONESHOT_DATA + 1;
	if (epoll_ctl(EPFD1, EPOLL_CTL_MOD, ONESHOT_FD, &ev) < 0)
		tgt_fail("epoll_ctl MOD the one-shot fd %d: %s", ONESHOT_FD, strerror(errno));
	n = epoll_wait(EPFD1, &ev, 1, 0);
	if (n != 1 || ev.data.u64 != ONESHOT_DATA + 1)
		tgt_fail("epoll fd %d: the re-armed one-shot watch reported %d events", EPFD1, n);

	for (int i = 0; i < NW; i++) {
		struct epoll_event got;

		ev.events = w[i].events;
		ev.data.u64 = w[i].data;
		if (epoll_ctl(EPFD, EPOLL_CTL_ADD, w[i].fd, &ev) == 0)
			tgt_fail("epoll_ctl ADD %s (fd %d) again succeeded: it was not registered under that fd", w[i].name,
				 w[i].fd);
		if (errno != EEXIST)
			tgt_fail("epoll_ctl ADD %s (fd %d) again: %s, want EEXIST", w[i].name, w[i].fd, strerror(errno));
		/* MOD to "writable" (every eventfd below the maximum is) with
		 * new data: exactly this watch is reported, with it. */
		ev.events = EPOLLOUT;
		ev.data.u64 = w[i].data ^ 0xffff;
		if (epoll_ctl(EPFD, EPOLL_CTL_MOD, w[i].fd, &ev) < 0)
			tgt_fail("epoll_ctl MOD %s (fd %d): %s", w[i].name, w[i].fd, strerror(errno));
		/* The other watches still registered would be reported too;
		 * take every event and look for this one. */
		{
			struct epoll_event all[16];
			int found = 0;

			n = epoll_wait(EPFD, all, 16, 0);
			for (int k = 0; k < n; k++)
				if (all[k].data.u64 == (w[i].data ^ 0xffff) && all[k].events == EPOLLOUT)
					found = 1;
			if (!found)
				tgt_fail("after MOD %s (fd %d) to EPOLLOUT, epoll_wait did not report it with the new data",
					 w[i].name, w[i].fd);
		}
		if (epoll_ctl(EPFD, EPOLL_CTL_DEL, w[i].fd, &got) < 0)
			tgt_fail("epoll_ctl DEL %s (fd %d): %s", w[i].name, w[i].fd, strerror(errno));
		if (epoll_ctl(EPFD, EPOLL_CTL_DEL, w[i].fd, &got) == 0 || errno != ENOENT)
			tgt_fail("second epoll_ctl DEL %s (fd %d) did not fail with ENOENT", w[i].name, w[i].fd);
	}
	watch_lines(EPFD, now, sizeof(now));
	if (now[0])
		tgt_fail("epoll fd %d still watches %s after every DEL", EPFD, now);
	n = epoll_wait(EPFD, &ev, 1, 0);
	if (n != 0)
		tgt_fail("empty epoll fd %d reported %d events", EPFD, n);
	tgt_pass();
}
