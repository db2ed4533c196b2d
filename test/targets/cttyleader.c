/*
 * cttyleader: leads a session whose controlling terminal a restore could
 * not give back, so a dump must refuse it; after the refused dump the
 * target checks its controlling terminal is still there (/dev/tty opens).
 *
 * usage: cttyleader RESULT_PATH MODE
 *   pty-nofd  a pty taken as controlling terminal through its slave, whose
 *             fd is then closed (the master stays open)
 *   vt        /dev/tty1, a virtual console; where it cannot be taken (no
 *             such device, or another session's), the target runs with no
 *             controlling terminal and the test skips
 */
#include "target.h"

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	int fd;

	tgt_init(argc, argv);
	if (setsid() < 0)
		tgt_fail("setsid: %s", strerror(errno));
	if (strcmp(mode, "pty-nofd") == 0) {
		int master = posix_openpt(O_RDWR | O_NOCTTY);
		char *name;

		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || !(name = ptsname(master)))
			tgt_fail("open a pty: %s", strerror(errno));
		/* Opened without O_NOCTTY by a session leader with none, it
		 * becomes the controlling terminal (man 4 tty). */
		fd = open(name, O_RDWR);
		if (fd < 0)
			tgt_fail("open %s: %s", name, strerror(errno));
		close(fd);
	} else if (strcmp(mode, "vt") == 0) {
		/* Kept open: the last close of a terminal ends its session's
		 * hold on it (drivers/tty/tty_io.c tty_release). */
		fd = open("/dev/tty1", O_RDWR | O_NONBLOCK);
	} else {
		tgt_fail("unknown mode %s", mode);
	}
	tgt_ready();
	tgt_wait();
	fd = open("/dev/tty", O_RDWR | O_NONBLOCK);
	if (fd < 0 && strcmp(mode, "pty-nofd") == 0)
		tgt_fail("open /dev/tty: %s: the controlling terminal is gone", strerror(errno));
	tgt_pass();
}
