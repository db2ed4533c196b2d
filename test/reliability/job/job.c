/*
 * job: the workload of the kill-at-random trials (main.go). Every counting
 * thread of it appends "N\n", N = 1, 2, 3, ..., to a log file of its own,
 * one line about every millisecond, forever, with write(2) at the fd's
 * offset (not O_APPEND): a process restored from a checkpoint goes on
 * from the dumped count at the dumped offset, so a log reads 1..N without
 * a gap or a repeat as long as no count was lost or replayed.
 *
 *   single   one process, one thread: log-0
 *   threads  one process, four counting threads (the main one and three
 *            more): log-0 .. log-3
 *   tree     five processes (the root, three children, a grandchild
 *            under the first child), one counting thread each:
 *            log-0 .. log-4
 *   tcp      two processes, the root and its child, counting over a
 *            loopback TCP connection between them: the root sends N,
 *            the child logs it (log-1) and sends it back, the root
 *            logs the echo (log-0); a count lost, replayed or out of
 *            order on the connection, or an error on it, ends the job
 *
 * Usage: job single|threads|tree|tcp LOGDIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char *logdir;

static int open_log(int i)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/log-%d", logdir, i);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "job: open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static void *count(void *arg)
{
	int fd = (int)(long)arg;
	struct timespec ms = {0, 1000000};
	char line[32];
	for (unsigned long n = 1;; n++) {
		int len = snprintf(line, sizeof(line), "%lu\n", n);
		if (write(fd, line, (size_t)len) != len) {
			fprintf(stderr, "job: write: %s\n", strerror(errno));
			exit(1);
		}
		while (nanosleep(&ms, NULL) != 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void spawn_thread(int i)
{
	pthread_t t;
	int err = pthread_create(&t, NULL, count, (void *)(long)open_log(i));
	if (err) {
		fprintf(stderr, "job: pthread_create: %s\n", strerror(err));
		exit(1);
	}
}

/* spawn_process forks a process that counts into log-i; with grandchild
 * >= 0 it first forks one more under it, counting into log-grandchild. */
static void spawn_process(int i, int grandchild)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("job: fork");
		exit(1);
	}
	if (pid > 0)
		return;
	if (grandchild >= 0)
		spawn_process(grandchild, -1);
	count((void *)(long)open_log(i));
}

static void die(const char *what)
{
	fprintf(stderr, "job: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void log_count(int fd, unsigned long n)
{
	char line[32];
	int len = snprintf(line, sizeof(line), "%lu\n", n);
	if (write(fd, line, (size_t)len) != len)
		die("write");
}

/* io_all sends or receives all of the 8 bytes of *n. */
static void io_all(int s, unsigned long *n, int out)
{
	size_t done = 0;
	while (done < sizeof(*n)) {
		ssize_t r = out ? send(s, (char *)n + done, sizeof(*n) - done, MSG_NOSIGNAL)
				: recv(s, (char *)n + done, sizeof(*n) - done, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EPIPE;
			die(out ? "send" : "recv");
		}
		done += (size_t)r;
	}
}

static void tcp_job(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct timespec ms = {0, 1000000};
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int log = open_log(1);
		close(l);
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect");
		for (unsigned long want = 1;; want++) {
			unsigned long n;
			io_all(s, &n, 0);
			if (n != want) {
				fprintf(stderr, "job: child got count %lu, want %lu\n", n, want);
				exit(1);
			}
			log_count(log, n);
			io_all(s, &n, 1);
		}
	}
	int log = open_log(0);
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		die("accept");
	close(l);
	for (unsigned long n = 1;; n++) {
		unsigned long echo;
		io_all(s, &n, 1);
		io_all(s, &echo, 0);
		if (echo != n) {
			fprintf(stderr, "job: root got echo %lu, want %lu\n", echo, n);
			exit(1);
		}
		log_count(log, n);
		while (nanosleep(&ms, NULL) != 0 && errno == EINTR)
			;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: job single|threads|tree|tcp LOGDIR\n");
		return 2;
	}
	logdir = argv[2];
	if (!strcmp(argv[1], "threads")) {
		for (int i = 1; i <= 3; i++)
			spawn_thread(i);
	} else if (!strcmp(argv[1], "tree")) {
		spawn_process(1, 4);
		spawn_process(2, -1);
		spawn_process(3, -1);
	} else if (!strcmp(argv[1], "tcp")) {
		tcp_job();
	} else if (strcmp(argv[1], "single")) {
		fprintf(stderr, "job: unknown kind %s\n", argv[1]);
		return 2;
	}
	count((void *)(long)open_log(0));
}
