/*
 * fds: a table of file descriptors with distinct numbers, access modes,
 * status flags, FD_CLOEXEC bits and offsets, plus umask and cwd. After
 * restore every fd must refer to the same inode with the same flags and
 * offset, and no fd may have been added or lost.
 *
 * Usage: fds RESULT_PATH TMPDIR
 * The harness's deleted-file test removes TMPDIR/nonblock.txt after a dump.
 */
#include "target.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#define DATA_SIZE 10000

struct fdspec {
	const char *name; /* for messages */
	const char *path;
	int flags;        /* open(2) flags */
	off_t offset;
	int want_fd;      /* -1: whatever open returns; else dup2 to this */
	/* recorded at setup */
	int fd;
	dev_t dev;
	ino_t ino;
	off_t off;
	int fl, fdfl;
};

static struct fdspec specs[] = {
	{ .name = "rdonly", .path = "data", .flags = O_RDONLY, .offset = 100, .want_fd = -1 },
	{ .name = "rdwr", .path = "data", .flags = O_RDWR, .offset = 4097, .want_fd = -1 },
	{ .name = "append", .path = "append.log", .flags = O_WRONLY | O_APPEND | O_CREAT, .offset = 0, .want_fd = -1 },
	{ .name = "cloexec", .path = "data", .flags = O_RDWR | O_CLOEXEC, .offset = 7, .want_fd = -1 },
	{ .name = "nonblock", .path = "nonblock.txt", .flags = O_RDONLY | O_NONBLOCK | O_CREAT, .offset = 3, .want_fd = -1 },
	{ .name = "devnull", .path = "/dev/null", .flags = O_WRONLY, .offset = 0, .want_fd = -1 },
	{ .name = "devzero", .path = "/dev/zero", .flags = O_RDONLY, .offset = 0, .want_fd = -1 },
	{ .name = "dir", .path = ".", .flags = O_RDONLY | O_DIRECTORY, .offset = 0, .want_fd = -1 },
	/* An independent open (own offset) placed at a high number. */
	{ .name = "high", .path = "data", .flags = O_RDONLY, .offset = 555, .want_fd = 77 },
};
#define NSPECS (int)(sizeof(specs) / sizeof(specs[0]))

static unsigned char data_byte(long i) { return (unsigned char)(i * 31 + 7); }

/* Flags that fcntl(F_GETFL) reports and that a restore must preserve. */
#define FL_MASK (O_ACCMODE | O_APPEND | O_NONBLOCK)

static int fd_set_now(unsigned char *seen, int cap)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		tgt_fail("opendir /proc/self/fd: %s", strerror(errno));
	memset(seen, 0, (size_t)cap);
	while ((de = readdir(d)) != NULL) {
		int fd;
		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fd >= cap)
			continue;
		seen[fd] = 1;
		n++;
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	static unsigned char fds_before[1024], fds_after[1024];
	char cwd_before[PATH_MAX], cwd_after[PATH_MAX];
	unsigned char buf[DATA_SIZE];
	struct stat st;
	mode_t mask;
	int i, fd;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: fds RESULT_PATH TMPDIR");
	umask(027);
	if (chdir(argv[2]) < 0)
		tgt_fail("chdir %s: %s", argv[2], strerror(errno));
	if (!getcwd(cwd_before, sizeof(cwd_before)))
		tgt_fail("getcwd: %s", strerror(errno));

	for (i = 0; i < DATA_SIZE; i++)
		buf[i] = data_byte(i);
	fd = open("data", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, DATA_SIZE) != DATA_SIZE)
		tgt_fail("create data: %s", strerror(errno));
	close(fd);
	fd = open("nonblock.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "0123456789", 10) != 10)
		tgt_fail("create nonblock.txt: %s", strerror(errno));
	close(fd);

	for (i = 0; i < NSPECS; i++) {
		struct fdspec *s = &specs[i];

		fd = open(s->path, s->flags, 0644);
		if (fd < 0)
			tgt_fail("open %s (%s): %s", s->path, s->name, strerror(errno));
		if (s->want_fd >= 0) {
			if (dup2(fd, s->want_fd) < 0)
				tgt_fail("dup2 %d -> %d: %s", fd, s->want_fd, strerror(errno));
			close(fd);
			fd = s->want_fd;
		}
		if (strcmp(s->name, "append") == 0 &&
		    write(fd, "first line\n", 11) != 11)
			tgt_fail("write append.log: %s", strerror(errno));
		if (s->offset && lseek(fd, s->offset, SEEK_SET) != s->offset)
			tgt_fail("lseek %s: %s", s->name, strerror(errno));
		s->fd = fd;
		if (fstat(fd, &st) < 0)
			tgt_fail("fstat %s: %s", s->name, strerror(errno));
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->off = lseek(fd, 0, SEEK_CUR);
		s->fl = fcntl(fd, F_GETFL) & FL_MASK;
		s->fdfl = fcntl(fd, F_GETFD);
	}
	fd_set_now(fds_before, sizeof(fds_before));
	tgt_ready();
	tgt_wait();

	fd_set_now(fds_after, sizeof(fds_after));
	for (i = 0; i < (int)sizeof(fds_before); i++)
		if (fds_before[i] != fds_after[i])
			tgt_fail("fd %d %s after restore", i,
				 fds_before[i] ? "is missing" : "appeared");

	mask = umask(0);
	umask(mask);
	if (mask != 027)
		tgt_fail("umask is %03o, want 027", mask);
	if (!getcwd(cwd_after, sizeof(cwd_after)))
		tgt_fail("getcwd: %s", strerror(errno));
	if (strcmp(cwd_before, cwd_after) != 0)
		tgt_fail("cwd is %s, want %s", cwd_after, cwd_before);

	for (i = 0; i < NSPECS; i++) {
		struct fdspec *s = &specs[i];
		off_t off;
		int fl, fdfl;

		if (fstat(s->fd, &st) < 0)
			tgt_fail("fstat fd %d (%s): %s", s->fd, s->name, strerror(errno));
		if (st.st_dev != s->dev || st.st_ino != s->ino)
			tgt_fail("fd %d (%s) is dev %lu ino %lu, want dev %lu ino %lu",
				 s->fd, s->name, (unsigned long)st.st_dev,
				 (unsigned long)st.st_ino, (unsigned long)s->dev,
				 (unsigned long)s->ino);
		off = lseek(s->fd, 0, SEEK_CUR);
		if (off != s->off)
			tgt_fail("fd %d (%s) offset is %lld, want %lld", s->fd,
				 s->name, (long long)off, (long long)s->off);
		fl = fcntl(s->fd, F_GETFL) & FL_MASK;
		if (fl != s->fl)
			tgt_fail("fd %d (%s) F_GETFL is %#o, want %#o", s->fd,
				 s->name, fl, s->fl);
		fdfl = fcntl(s->fd, F_GETFD);
		if (fdfl != s->fdfl)
			tgt_fail("fd %d (%s) F_GETFD is %#x, want %#x", s->fd,
				 s->name, fdfl, s->fdfl);
	}

	/* The content at each offset proves the right file is behind the fd. */
	for (i = 0; i < NSPECS; i++) {
		struct fdspec *s = &specs[i];
		unsigned char b[16];
		int j;

		if (strcmp(s->path, "data") != 0 || (s->flags & O_ACCMODE) == O_WRONLY)
			continue;
		if (read(s->fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			tgt_fail("read fd %d (%s): %s", s->fd, s->name, strerror(errno));
		for (j = 0; j < (int)sizeof(b); j++)
			if (b[j] != data_byte(s->off + j))
				tgt_fail("fd %d (%s) byte at offset %lld is %u, want %u",
					 s->fd, s->name, (long long)(s->off + j), b[j],
					 data_byte(s->off + j));
	}
	for (i = 0; i < NSPECS; i++) {
		struct fdspec *s = &specs[i];

		if (strcmp(s->name, "devzero") == 0) {
			unsigned char z[256];
			int j;
			if (read(s->fd, z, sizeof(z)) != (ssize_t)sizeof(z))
				tgt_fail("read /dev/zero: %s", strerror(errno));
			for (j = 0; j < (int)sizeof(z); j++)
				if (z[j])
					tgt_fail("/dev/zero gave byte %u at %d", z[j], j);
		}
		if (strcmp(s->name, "devnull") == 0 && write(s->fd, "x", 1) != 1)
			tgt_fail("write /dev/null: %s", strerror(errno));
		if (strcmp(s->name, "append") == 0) {
			/* Move the offset away first: O_APPEND must still write at
			 * the end (open(2), O_APPEND). */
			if (lseek(s->fd, 0, SEEK_SET) != 0)
				tgt_fail("lseek append.log: %s", strerror(errno));
			if (write(s->fd, "second line\n", 12) != 12)
				tgt_fail("write append.log: %s", strerror(errno));
			char got[64] = { 0 };
			int r = open("append.log", O_RDONLY | O_CLOEXEC);
			if (r < 0 || read(r, got, sizeof(got) - 1) < 0)
				tgt_fail("read append.log: %s", strerror(errno));
			close(r);
			if (strcmp(got, "first line\nsecond line\n") != 0)
				tgt_fail("append.log holds \"%s\", want both lines in order", got);
		}
		if (strcmp(s->name, "dir") == 0) {
			if (fstatat(s->fd, "nonblock.txt", &st, 0) < 0)
				tgt_fail("fstatat(dir fd, nonblock.txt): %s", strerror(errno));
		}
	}
	tgt_pass();
}
