/*
 * outsidepipes: fds 3 and 4 are ends of two pipes whose other ends the
 * harness holds, outside the dump: fd 3 the read end of one, with "left\n"
 * written into it and not read, fd 4 the write end of another, made
 * O_NONBLOCK here. The target sets fd 3's pipe size to 16 KiB and handles
 * SIGPIPE. Restored without --inherit-fd, each is a new pipe whose other
 * end is closed; on SIGTERM the target requires:
 *   fd 3  open for reading, blocking, 16 KiB: reads give "left\n" and
 *         then end of file;
 *   fd 4  open for writing, O_NONBLOCK: a write fails with EPIPE and
 *         raises SIGPIPE once (man 7 pipe).
 *
 * Usage: outsidepipes RESULT_PATH
 */
#include "target.h"

#include <poll.h>

static volatile sig_atomic_t pipes;

static void on_pipe(int sig)
{
	(void)sig;
	pipes++;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct pollfd pfd = { .fd = 3, .events = POLLIN };
	char buf[64];
	size_t got = 0;
	int fl, sz;

	tgt_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_pipe;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		tgt_fail("sigaction(SIGPIPE): %s", strerror(errno));
	if (fcntl(3, F_SETPIPE_SZ, 16384) < 0)
		tgt_fail("F_SETPIPE_SZ fd 3: %s", strerror(errno));
	if ((fl = fcntl(4, F_GETFL)) < 0 || fcntl(4, F_SETFL, fl | O_NONBLOCK) < 0)
		tgt_fail("O_NONBLOCK on fd 4: %s", strerror(errno));
	tgt_ready();
	tgt_wait();

	if ((fl = fcntl(3, F_GETFL)) < 0 || (fl & (O_ACCMODE | O_NONBLOCK)) != O_RDONLY)
		tgt_fail("fd 3 flags %#o, want read-only and blocking", fl);
	if ((sz = fcntl(3, F_GETPIPE_SZ)) != 16384)
		tgt_fail("fd 3 pipe size %d, want 16384", sz);
	for (;;) {
		ssize_t r;

		/* The other end must be closed: never wait for it. */
		if (poll(&pfd, 1, 5000) != 1)
			tgt_fail("fd 3 not readable within 5 s after %zu bytes: its writer is open", got);
		r = read(3, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			tgt_fail("read fd 3: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == sizeof(buf) - 1)
			break;
	}
	buf[got] = 0;
	if (got != 5 || memcmp(buf, "left\n", 5) != 0)
		tgt_fail("fd 3 gave %zu bytes \"%s\" before end of file, want \"left\\n\"", got, buf);

	if ((fl = fcntl(4, F_GETFL)) < 0 || (fl & (O_ACCMODE | O_NONBLOCK)) != (O_WRONLY | O_NONBLOCK))
		tgt_fail("fd 4 flags %#o, want write-only and O_NONBLOCK", fl);
	if (write(4, "x", 1) != -1 || errno != EPIPE)
		tgt_fail("write fd 4: %s, want EPIPE", strerror(errno));
	if (pipes != 1)
		tgt_fail("SIGPIPE handled %d times after the write, want 1", (int)pipes);
	tgt_pass();
}
