/*
 * ttyecho: a job on its shell's terminal. It appends what it reads from
 * its standard input, a terminal, to RESULT_PATH.echo. After SIGTERM it
 * checks that its standard input is its controlling terminal
 * (/proc/self/stat tty_nr) and that its group is the terminal's
 * foreground (tcgetpgrp), as a shell's foreground job is.
 */
#include "target.h"

#include <sys/stat.h>
#include <termios.h>

static long tty_nr(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	long nr = -1;

	if (n <= 0)
		tgt_fail("read /proc/self/stat");
	close(fd);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %ld", &nr) != 1)
		tgt_fail("parse /proc/self/stat");
	return nr;
}

int main(int argc, char **argv)
{
	char path[4200], buf[256];
	struct stat st;

	tgt_init(argc, argv);
	if (!isatty(0))
		tgt_fail("stdin is not a terminal");
	snprintf(path, sizeof(path), "%s.echo", argv[1]);
	tgt_ready();
	while (!got_term) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			tgt_fail_on_term("read stdin: %zd (%s)", n, strerror(errno));
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			tgt_fail("open %s: %s", path, strerror(errno));
		tgt_write_all(fd, buf, (size_t)n);
		close(fd);
	}
	if (fstat(0, &st) < 0 || tty_nr() != (long)st.st_rdev)
		tgt_fail("controlling terminal tty_nr %#lx, stdin is %#lx", tty_nr(), (long)st.st_rdev);
	if (tcgetpgrp(0) != getpgrp())
		tgt_fail("foreground group %d, want its own %d", tcgetpgrp(0), getpgrp());
	tgt_pass();
}
