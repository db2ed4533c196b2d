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
 *
 * Usage: job single|threads|tree LOGDIR
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

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: job single|threads|tree LOGDIR\n");
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
	} else if (strcmp(argv[1], "single")) {
		fprintf(stderr, "job: unknown kind %s\n", argv[1]);
		return 2;
	}
	count((void *)(long)open_log(0));
}
