/*
 * Shared scaffolding for gocr's integration targets (the zdtm contract, see
 * test/harness_test.go): argv[1] is RESULT_PATH; the target creates
 * RESULT_PATH.ready once its state is set up, waits for SIGTERM, verifies
 * itself and writes "PASS\n" or "FAIL: reason\n" to RESULT_PATH.
 *
 * Everything here uses raw open/write rather than stdio so that the helpers
 * themselves never allocate: the memory target compares /proc/self/maps
 * before and after, and a lazily malloc'ed stdio buffer would show up as a
 * difference.
 */
#ifndef GOCR_TARGET_H
#define GOCR_TARGET_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;
static char tgt_result_path[4096];
static char tgt_msg[4096];

static inline void tgt_on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static inline void tgt_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Writes the verdict by path: the restored process must find its result
 * file by name, not through an fd that gocr might have left behind. */
static inline void tgt_write_result(const char *text)
{
	int fd = open(tgt_result_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	tgt_write_all(fd, text, strlen(text));
	close(fd);
}

__attribute__((format(printf, 1, 2), noreturn))
static inline void tgt_fail(const char *fmt, ...)
{
	va_list ap;
	size_t n;

	strcpy(tgt_msg, "FAIL: ");
	va_start(ap, fmt);
	vsnprintf(tgt_msg + 6, sizeof(tgt_msg) - 8, fmt, ap);
	va_end(ap);
	n = strlen(tgt_msg);
	tgt_msg[n] = '\n';
	tgt_msg[n + 1] = 0;
	tgt_write_all(2, tgt_msg, n + 1);
	tgt_write_result(tgt_msg);
	_exit(1);
}

__attribute__((noreturn))
static inline void tgt_pass(void)
{
	tgt_write_result("PASS\n");
	_exit(0);
}

/* Setup failures are reported like verification failures so the harness
 * shows the reason instead of timing out on a missing ready file. */
__attribute__((format(printf, 1, 2)))
static inline void tgt_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tgt_write_all(1, buf, strlen(buf));
}

/* The SIGTERM handler only sets a flag and is installed without SA_RESTART
 * so that a target blocked in a syscall sees EINTR (signal(7), "Interruption
 * of system calls and library functions by signal handlers"). */
/* tgt_read_fdinfo reads /proc/self/fdinfo/FD into buf, NUL-terminated,
 * or fails the target. */
static inline void tgt_read_fdinfo(int fd, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	n = read(f, buf, cap - 1);
	close(f);
	if (n < 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
}

/* tgt_read_file reads all of path (up to cap - 1 bytes) into buf,
 * NUL-terminated, or fails the target: a /proc file may come in several
 * reads. It returns the length. */
static inline size_t tgt_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	size_t n = 0;
	ssize_t r;
	while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return n;
}

static inline void tgt_init(int argc, char **argv)
{
	struct sigaction sa;

	if (argc < 2) {
		static const char usage[] = "usage: target RESULT_PATH [args]\n";
		tgt_write_all(2, usage, sizeof(usage) - 1);
		_exit(2);
	}
	if (strlen(argv[1]) > sizeof(tgt_result_path) - 16) {
		static const char msg[] = "result path too long\n";
		tgt_write_all(2, msg, sizeof(msg) - 1);
		_exit(2);
	}
	strcpy(tgt_result_path, argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tgt_on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0)
		tgt_fail("sigaction(SIGTERM): %s", strerror(errno));
}

/* Creating the file is the last step of setup: the harness may dump the
 * target at any moment after it appears. */
static inline void tgt_ready(void)
{
	char path[4096 + 8];
	int fd;

	snprintf(path, sizeof(path), "%s.ready", tgt_result_path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	close(fd);
}

/* Polls instead of sigsuspend(): a task stopped inside sigsuspend has its
 * temporary mask installed as the blocked mask, which would make every
 * target's signal state depend on that corner of the restore. */
static inline void tgt_wait(void)
{
	while (!got_term) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* For failures seen before SIGTERM: the contract is to report only when
 * asked, so the reason is kept until then. */
__attribute__((format(printf, 1, 2), noreturn))
static inline void tgt_fail_on_term(const char *fmt, ...)
{
	char reason[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	tgt_wait();
	tgt_fail("%s", reason);
}

/* tgt_fork_orphan forks a grandchild that pauses for good (after a setsid
 * with new_session) and whose parent exits at once, so that it is
 * reparented away from the target (to init, or to a subreaper), and
 * returns its pid. */
static inline pid_t tgt_fork_orphan(int new_session)
{
	int p[2];
	if (pipe(p) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		pid_t g = fork();
		if (g == 0) {
			close(p[0]);
			close(p[1]);
			if (new_session)
				setsid();
			for (;;)
				pause();
		}
		_exit(write(p[1], &g, sizeof(g)) == sizeof(g) && g > 0 ? 0 : 1);
	}
	close(p[1]);
	pid_t orphan = 0;
	int st;
	if (read(p[0], &orphan, sizeof(orphan)) != sizeof(orphan) || waitpid(child, &st, 0) != child ||
	    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the child did not fork the orphan");
	close(p[0]);
	return orphan;
}

#endif
