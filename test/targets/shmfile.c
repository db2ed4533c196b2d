/*
 * shmfile: a regular file mapped MAP_SHARED and written through the
 * mapping before the dump. After restore the mapping must still be the
 * file's pages (a write through it reaches the file, a write to the file
 * shows in it) and hold what was written; a MAP_PRIVATE mapping of the
 * same file keeps its own copied-on-write page.
 */
#include <sys/mman.h>
#include "target.h"

#define SIZE (64 * 4096)

int main(int argc, char **argv)
{
	char path[4200];
	unsigned char *shared, *private;
	int fd;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: shmfile RESULT DIR");
	snprintf(path, sizeof(path), "%s/shared.dat", argv[2]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, SIZE) < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	shared = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	private = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (shared == MAP_FAILED || private == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	close(fd);
	for (int i = 0; i < SIZE; i++)
		shared[i] = (unsigned char)(i * 7 + 3);
	private[5 * 4096] = 0xAB; /* copied on write: only this mapping */
	tgt_ready();
	while (!got_term)
		pause();

	for (int i = 0; i < SIZE; i++)
		if (shared[i] != (unsigned char)(i * 7 + 3))
			tgt_fail("shared mapping byte %d is %#x", i, shared[i]);
	if (private[5 * 4096] != 0xAB)
		tgt_fail("private copy-on-write page lost: %#x", private[5 * 4096]);
	if (private[6 * 4096] != (unsigned char)(6 * 4096 * 7 + 3))
		tgt_fail("private mapping does not show the file's page");
	fd = open(path, O_RDWR);
	if (fd < 0)
		tgt_fail("reopen %s: %s", path, strerror(errno));
	unsigned char b = 0;
	shared[100] = 0x5A;
	if (pread(fd, &b, 1, 100) != 1 || b != 0x5A)
		tgt_fail("write through the shared mapping did not reach the file (%#x)", b);
	b = 0xC3;
	if (pwrite(fd, &b, 1, 200) != 1 || shared[200] != 0xC3)
		tgt_fail("write to the file does not show in the shared mapping (%#x)", shared[200]);
	tgt_pass();
}
