/*
 * sharedoff: one open file description shared by two processes (opened
 * before fork, no O_APPEND): they share one offset. Before the dump each
 * writes a record in turn; after restore they go on in turn, and the file
 * must hold every record once, in order, none overwritten — which only
 * holds if the restored processes still share one offset: files shared by
 * several fds or processes (dup, fork) share one file description again
 * after restore.
 */
#include <sys/wait.h>
#include "target.h"

#define REC 16

static void put(int fd, char who, int n)
{
	char rec[REC + 1];
	snprintf(rec, sizeof(rec), "%c%014d\n", who, n);
	if (write(fd, rec, REC) != REC)
		tgt_fail("write: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	char path[4200];
	int fd, turn[2], back[2];
	pid_t child;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: sharedoff RESULT DIR");
	snprintf(path, sizeof(path), "%s/shared.log", argv[2]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || pipe(turn) < 0 || pipe(back) < 0)
		tgt_fail("setup: %s", strerror(errno));
	child = fork();
	if (child == 0) {
		/* the child writes whenever the parent passes it the turn */
		char c;
		int n = 0;
		while (read(turn[0], &c, 1) == 1) {
			if (c == 'q')
				_exit(0);
			put(fd, 'C', n++);
			if (write(back[1], "k", 1) != 1)
				_exit(3);
		}
		_exit(4);
	}
	int rounds = 0;
	char c;
	for (; rounds < 5; rounds++) {
		put(fd, 'P', rounds);
		if (write(turn[1], "g", 1) != 1 || read(back[0], &c, 1) != 1)
			tgt_fail("turn pipe: %s", strerror(errno));
	}
	tgt_ready();
	while (!got_term)
		pause();
	for (; rounds < 10; rounds++) {
		put(fd, 'P', rounds);
		if (write(turn[1], "g", 1) != 1 || read(back[0], &c, 1) != 1)
			tgt_fail("turn pipe after restore: %s", strerror(errno));
	}
	write(turn[1], "q", 1);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("child ended with status %#x", st);

	char want[20 * REC + 1], got[20 * REC + 64];
	want[0] = 0;
	for (int i = 0; i < 10; i++) {
		char rec[REC + 1];
		snprintf(rec, sizeof(rec), "P%014d\n", i);
		strcat(want, rec);
		snprintf(rec, sizeof(rec), "C%014d\n", i);
		strcat(want, rec);
	}
	int rfd = open(path, O_RDONLY);
	ssize_t n = rfd < 0 ? -1 : read(rfd, got, sizeof(got) - 1);
	if (n < 0)
		tgt_fail("read back: %s", strerror(errno));
	got[n] = 0;
	if (strcmp(want, got) != 0)
		tgt_fail("file holds %zd bytes, not the 20 records in turn (offset not shared?)", n);
	if (lseek(fd, 0, SEEK_CUR) != 20 * REC)
		tgt_fail("parent's offset is %ld, want %d", (long)lseek(fd, 0, SEEK_CUR), 20 * REC);
	tgt_pass();
}
