/*
 * savedfiles: a program whose executable, a library it loads and a data
 * file it maps may be gone or changed by restore time (gocr dump --save),
 * or moved to another directory (gocr restore --relocate).
 *
 *	savedfiles RESULT LIB DATA WORKDIR
 *
 * It loads LIB (dlopen) and calls it, maps DATA twice (MAP_PRIVATE and a
 * read-only MAP_SHARED, both PROT_READ), changes to WORKDIR and reads the
 * first bytes of WORKDIR/file. After restore it calls a function of its
 * own text and of the library again (same results; the library's data
 * keeps its call count), finds every byte of both mappings of DATA as
 * written by the test ((i * 13 + 7) & 0xff), and finds its open file under
 * its cwd, at its offset.
 */
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "target.h"

static const int own_table[] = { 2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5 };

__attribute__((noinline)) static int own_value(int x)
{
	int sum = 0;

	for (unsigned i = 0; i < sizeof(own_table) / sizeof(own_table[0]); i++)
		sum = sum * 31 + own_table[i] * x;
	return sum;
}

static const char *check_data(const unsigned char *p, size_t n)
{
	static char why[128];

	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)((i * 13 + 7) & 0xff)) {
			snprintf(why, sizeof(why), "byte %zu is %#x, want %#x", i, p[i],
				 (unsigned)((i * 13 + 7) & 0xff));
			return why;
		}
	return NULL;
}

int main(int argc, char **argv)
{
	struct stat st, fst;
	const char *why;
	char buf[8];
	int fd, own0, lib0;

	tgt_init(argc, argv);
	if (argc < 5)
		tgt_fail("usage: savedfiles RESULT LIB DATA WORKDIR");

	own0 = own_value(3);

	void *lib = dlopen(argv[2], RTLD_NOW);
	if (!lib)
		tgt_fail("dlopen %s: %s", argv[2], dlerror());
	int (*value)(int) = (int (*)(int))dlsym(lib, "savedlib_value");
	int *calls = dlsym(lib, "savedlib_calls");
	if (!value || !calls)
		tgt_fail("dlsym: %s", dlerror());
	lib0 = value(5);

	fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		tgt_fail("open %s: %s", argv[3], strerror(errno));
	size_t size = (size_t)st.st_size;
	unsigned char *priv = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	unsigned char *shared = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (priv == MAP_FAILED || shared == MAP_FAILED)
		tgt_fail("mmap %s: %s", argv[3], strerror(errno));
	close(fd);
	if ((why = check_data(priv, size)) != NULL)
		tgt_fail("%s before the dump: %s", argv[3], why);

	if (chdir(argv[4]) < 0)
		tgt_fail("chdir %s: %s", argv[4], strerror(errno));
	fd = open("file", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, 5) != 5 || memcmp(buf, "01234", 5) != 0)
		tgt_fail("open and read %s/file: %s", argv[4], strerror(errno));

	tgt_ready();
	tgt_wait();

	if (own_value(3) != own0)
		tgt_fail("own_value(3) is %d, was %d", own_value(3), own0);
	if (value(5) != lib0)
		tgt_fail("savedlib_value(5) is %d, was %d", value(5), lib0);
	if (*calls != 2)
		tgt_fail("the library's call count is %d, want 2", *calls);
	if ((why = check_data(priv, size)) != NULL)
		tgt_fail("private mapping of %s: %s", argv[3], why);
	if ((why = check_data(shared, size)) != NULL)
		tgt_fail("shared mapping of %s: %s", argv[3], why);
	if (stat("file", &st) < 0 || fstat(fd, &fst) < 0)
		tgt_fail("stat file in the cwd: %s", strerror(errno));
	if (st.st_dev != fst.st_dev || st.st_ino != fst.st_ino)
		tgt_fail("the open file is not the cwd's file");
	if (read(fd, buf, 5) != 5 || memcmp(buf, "56789", 5) != 0)
		tgt_fail("the open file does not read 56789 at offset 5");
	tgt_pass();
}
