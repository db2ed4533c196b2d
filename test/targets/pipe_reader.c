/*
 * pipe_reader: blocked in read() on a pipe that is empty at dump time: its
 * stdin, or the fd given as its one argument. The harness writes "hello\n"
 * into the pipe after the restore and closes it, so the restored read must
 * return exactly those bytes and then end of file. An EINTR that is not
 * our SIGTERM means the restore broke the syscall.
 */
#include "target.h"

#include <sys/stat.h>

int main(int argc, char **argv)
{
	char buf[256];
	size_t got = 0;
	struct stat st;
	int fd = 0;

	tgt_init(argc, argv);
	if (argc > 2)
		fd = atoi(argv[2]);
	if (fstat(fd, &st) < 0)
		tgt_fail("fstat(fd %d): %s", fd, strerror(errno));
	if (!S_ISFIFO(st.st_mode))
		tgt_fail("fd %d must be a pipe (mode %o)", fd, st.st_mode);
	tgt_ready();
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR && got_term)
			tgt_fail("SIGTERM came before end of file; read %zu bytes", got);
		if (r < 0)
			tgt_fail_on_term("read(fd %d) after %zu bytes: %s", fd, got, strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == sizeof(buf) - 1)
			break;
	}
	buf[got] = 0;
	tgt_wait();
	if (got != 6 || memcmp(buf, "hello\n", 6) != 0)
		tgt_fail("read %zu bytes \"%s\" from fd %d, want \"hello\\n\"", got, buf, fd);
	tgt_pass();
}
