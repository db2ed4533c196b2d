/*
 * secretmem: a page of memfd_secret(2) memory, mapped and written, which
 * no other process can read: the dump must refuse it, naming the mapping,
 * and the target runs on with its contents intact. With argument "fd" it
 * keeps only the fd, unmapped.
 *
 * Usage: secretmem RESULT_PATH [fd]
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	int fd = (int)syscall(SYS_memfd_secret, 0);
	if (fd < 0)
		tgt_fail("memfd_secret: %s", strerror(errno));
	if (ftruncate(fd, 4096) < 0)
		tgt_fail("ftruncate: %s", strerror(errno));
	char *p = NULL;
	if (argc < 3 || strcmp(argv[2], "fd") != 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			tgt_fail("mmap: %s", strerror(errno));
		memset(p, 0x5a, 4096);
	}
	tgt_ready();
	tgt_wait();
	for (int i = 0; p && i < 4096; i++)
		if (p[i] != 0x5a)
			tgt_fail("byte %d of the secret memory is %#x", i, p[i]);
	tgt_pass();
}
