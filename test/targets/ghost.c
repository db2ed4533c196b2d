/*
 * ghost: a file deleted while open and mapped. After restore it must still
 * be deleted (st_nlink 0, its /proc link "PATH (deleted)"), one file under
 * every fd and mapping, with its contents, holes, mode, offsets and flags:
 *
 *   fd 3   O_RDWR, offset mid-file, data written through it after unlink
 *   fd 41  dup of fd 3 (one open file description: a shared offset)
 *   fd 40  O_RDONLY|O_NOFOLLOW, its own open file description and offset
 *   a MAP_SHARED read-write mapping (fd 3), written after unlink
 *   a MAP_SHARED read-only mapping (fd 40)
 *   a MAP_PRIVATE mapping of two pages (fd 40): the first written (a
 *   private copy), the second untouched, so still reading the file
 *
 * Usage: ghost RESULT_PATH TMPDIR [linked]
 * "linked": the file keeps a second hard link, for the dump to refuse.
 */
#include "target.h"

#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096
#define HEAD (3 * PAGE)         /* data at the start */
#define TAIL_AT (1024 * 1024)   /* data again here, a hole before it */
#define TAIL_LEN 100
#define SIZE (TAIL_AT + TAIL_LEN)

static unsigned char expect[SIZE];
static char want_link[PATH_MAX + 32];
static nlink_t want_nlink; /* 1 with the second link ("linked") */

static unsigned char byte_at(long i) { return (unsigned char)(i * 13 + 5); }

static void put(long at, const char *s)
{
	memcpy(expect + at, s, strlen(s));
}

static void check_fd(int fd, off_t pos, int accmode, ino_t ino)
{
	char path[64], link[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fl;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		tgt_fail("readlink %s: %s", path, strerror(errno));
	link[n] = 0;
	if (strcmp(link, want_link) != 0)
		tgt_fail("fd %d links to \"%s\", want \"%s\"", fd, link, want_link);
	if (fstat(fd, &st) < 0)
		tgt_fail("fstat fd %d: %s", fd, strerror(errno));
	if (st.st_nlink != want_nlink)
		tgt_fail("fd %d: st_nlink %lu, want %lu", fd, (unsigned long)st.st_nlink, (unsigned long)want_nlink);
	if (st.st_ino != ino)
		tgt_fail("fd %d is inode %lu, fd 3 inode %lu: not one file", fd, (unsigned long)st.st_ino, (unsigned long)ino);
	if (st.st_size != SIZE)
		tgt_fail("fd %d: size %ld, want %d", fd, (long)st.st_size, SIZE);
	if ((st.st_mode & 07777) != 0640)
		tgt_fail("fd %d: mode %o, want 640", fd, st.st_mode & 07777);
	if (lseek(fd, 0, SEEK_CUR) != pos)
		tgt_fail("fd %d: offset %ld, want %ld", fd, (long)lseek(fd, 0, SEEK_CUR), (long)pos);
	fl = fcntl(fd, F_GETFL);
	if ((fl & O_ACCMODE) != accmode)
		tgt_fail("fd %d: access mode %#x, want %#x", fd, fl & O_ACCMODE, accmode);
}

int main(int argc, char **argv)
{
	static unsigned char got[SIZE];
	unsigned char *shared, *shared_ro, *priv;
	char cwd[PATH_MAX];
	struct stat st;
	int fd, ro, dup_fd, holes;
	long i;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: ghost RESULT_PATH TMPDIR [linked]");
	if (chdir(argv[2]) < 0 || !getcwd(cwd, sizeof(cwd)))
		tgt_fail("chdir %s: %s", argv[2], strerror(errno));
	snprintf(want_link, sizeof(want_link), "%s/scratch (deleted)", cwd);

	umask(022);
	fd = open("scratch", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd != 3)
		tgt_fail("open scratch gave fd %d (%s), want 3", fd, strerror(errno));
	for (i = 0; i < HEAD; i++)
		expect[i] = byte_at(i);
	for (i = 0; i < TAIL_LEN; i++)
		expect[TAIL_AT + i] = byte_at(i + 7);
	if (pwrite(fd, expect, HEAD, 0) != HEAD || pwrite(fd, expect + TAIL_AT, TAIL_LEN, TAIL_AT) != TAIL_LEN)
		tgt_fail("write scratch: %s", strerror(errno));
	ro = open("scratch", O_RDONLY | O_NOFOLLOW);
	if (ro < 0 || dup2(ro, 40) != 40)
		tgt_fail("open scratch read-only at fd 40: %s", strerror(errno));
	close(ro);
	dup_fd = dup2(3, 41);
	if (dup_fd != 41)
		tgt_fail("dup2 3 41: %s", strerror(errno));
	shared = mmap(NULL, HEAD, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
	shared_ro = mmap(NULL, HEAD, PROT_READ, MAP_SHARED, 40, 0);
	priv = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 40, PAGE);
	if (shared == MAP_FAILED || shared_ro == MAP_FAILED || priv == MAP_FAILED)
		tgt_fail("mmap scratch: %s", strerror(errno));
	if (argc > 3 && strcmp(argv[3], "linked") == 0) {
		if (link("scratch", "other") < 0)
			tgt_fail("link scratch other: %s", strerror(errno));
		want_nlink = 1;
	}
	if (unlink("scratch") < 0)
		tgt_fail("unlink scratch: %s", strerror(errno));

	/* Written after the unlink: through the fd, and through the shared
	 * mapping; the private mapping's first page becomes its own. */
	if (pwrite(3, "after unlink", 12, 5000) != 12)
		tgt_fail("pwrite: %s", strerror(errno));
	put(5000, "after unlink");
	memcpy(shared + 2 * PAGE + 10, "through the mapping", 19);
	put(2 * PAGE + 10, "through the mapping");
	memcpy(priv + 20, "private copy", 12);
	/* Whether the file system keeps holes: if so, the restored file must
	 * have the hole too. (SEEK_DATA moves the offset: before it is set.) */
	holes = lseek(3, HEAD, SEEK_DATA) >= TAIL_AT - PAGE;
	if (lseek(3, 6000, SEEK_SET) != 6000 || lseek(40, 100, SEEK_SET) != 100)
		tgt_fail("lseek: %s", strerror(errno));
	if (fstat(3, &st) < 0 || st.st_nlink != want_nlink)
		tgt_fail("scratch is not deleted before the dump");

	tgt_ready();
	tgt_wait();

	if (fstat(3, &st) < 0)
		tgt_fail("fstat fd 3: %s", strerror(errno));
	check_fd(3, 6000, O_RDWR, st.st_ino);
	check_fd(41, 6000, O_RDWR, st.st_ino);
	check_fd(40, 100, O_RDONLY, st.st_ino);
	if (!(fcntl(40, F_GETFL) & O_NOFOLLOW))
		tgt_fail("fd 40 lost O_NOFOLLOW");
	/* fd 41 is fd 3's open file description: one offset. */
	if (lseek(41, 7000, SEEK_SET) != 7000 || lseek(3, 0, SEEK_CUR) != 7000)
		tgt_fail("fds 3 and 41 no longer share their offset");
	if (pread(3, got, SIZE, 0) != SIZE)
		tgt_fail("read the file back: %s", strerror(errno));
	for (i = 0; i < SIZE; i++)
		if (got[i] != expect[i])
			tgt_fail("the file holds %#x at %ld, want %#x", got[i], i, expect[i]);
	if (holes && lseek(3, HEAD, SEEK_DATA) < TAIL_AT - PAGE)
		tgt_fail("the hole after %d bytes is filled (data at %ld)", HEAD, (long)lseek(3, HEAD, SEEK_DATA));
	for (i = 0; i < HEAD; i++)
		if (shared[i] != expect[i] || shared_ro[i] != expect[i])
			tgt_fail("the shared mappings hold %#x, %#x at %ld, want %#x", shared[i], shared_ro[i], i, expect[i]);
	if (memcmp(priv + 20, "private copy", 12) != 0)
		tgt_fail("the private mapping lost its own copy of its first page");
	/* Still one file under all of them: a write through the fd shows in
	 * the shared mappings and in the private page never written; one
	 * through the mapping shows in the fd. */
	if (pwrite(3, "late", 4, 2 * PAGE + 100) != 4)
		tgt_fail("pwrite after restore: %s", strerror(errno));
	if (memcmp(shared + 2 * PAGE + 100, "late", 4) != 0 || memcmp(shared_ro + 2 * PAGE + 100, "late", 4) != 0)
		tgt_fail("a write through fd 3 does not show in the shared mappings");
	if (memcmp(priv + PAGE + 100, "late", 4) != 0)
		tgt_fail("a write through fd 3 does not show in the private mapping's untouched page");
	memcpy(shared + 50, "back", 4);
	if (pread(40, got, 4, 50) != 4 || memcmp(got, "back", 4) != 0)
		tgt_fail("a write through the shared mapping does not show through fd 40");
	tgt_pass();
}
