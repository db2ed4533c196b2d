/*
 * pty: a pseudo-terminal pair the job opened itself, as script(1) or a
 * Python pty.fork() do. The root opens the master (posix_openpt, grantpt,
 * unlockpt), sets the slave's termios (raw, with chosen control
 * characters and speeds), a window size, packet mode, the slave's owner
 * and mode, and writes data for the slave. Its child starts a session,
 * opens the slave as its controlling terminal, sets exclusive mode and
 * writes data for the master; a grandchild in a group of its own is made
 * the terminal's foreground group. Then the root locks the pair. After
 * SIGTERM each checks its own state: the root its master (index, termios,
 * window size, packet mode, lock, the data, the slave's owner and mode),
 * the child its slave (the data, the controlling terminal in
 * /proc/self/stat tty_nr, TIOCGSID, TIOCGPGRP, TIOCGEXCL), the grandchild
 * its group and that it is in the foreground.
 *
 * argv[2] "corrupt-fg": the child moves the foreground back to its own
 * group after the dump, so the check must fail (the test's mutation).
 * "canon": the slave is in canonical mode, so the data for it is a
 * complete line, which gocr refuses to dump.
 * "partial": the slave is in canonical mode with echo, IEXTEN and IXON,
 * and the data for it is a line typed but not ended, holding a newline,
 * a kill and a stop character each typed after ^V; its echo waits for
 * the master. After SIGTERM the master holds the echo once, the termios
 * are the same, and once the root types the line's end the child reads
 * the whole line at once.
 */
#include "target.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

static const char to_slave[] = "keys\r\x03typed\n";  /* ^C and CR: no processing may touch them */
static const char to_master[] = "out\nput\x1b[0m\r"; /* written raw: no OPOST */

static int canon, partial;

/* Typed into the master in "partial" mode: ^V (LNEXT) makes the next
 * character literal, so the buffer holds partial_line, no line ended. */
static const char partial_typed[] = "half\r\x16\x15\x16\n\x16\x13line";
static const char partial_line[] = "half\r\x15\n\x13line";
/* Its echo: ECHO without ECHOCTL echoes each stored character as it is,
 * and not the ^V (drivers/tty/n_tty.c); no OPOST. */
#define partial_echo partial_line

static struct termios want_termios(void)
{
	struct termios t;

	memset(&t, 0, sizeof(t));
	cfmakeraw(&t);
	if (canon)
		t.c_lflag |= ICANON;
	if (partial) {
		t.c_lflag |= ICANON | ECHO | IEXTEN;
		t.c_iflag |= IXON;
		t.c_cc[VLNEXT] = 0x16;
		t.c_cc[VKILL] = 0x15;
		t.c_cc[VERASE] = 0x7f;
		t.c_cc[VEOF] = 0x04;
		t.c_cc[VSTART] = 0x11;
		t.c_cc[VSTOP] = 0x13;
	}
	/* A pty always has CS8 and CREAD (drivers/tty/pty.c pty_set_termios). */
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 3;
	t.c_cc[VINTR] = 0x07;
	cfsetispeed(&t, B9600);
	cfsetospeed(&t, B19200);
	return t;
}

static const struct winsize want_ws = { .ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9 };

static int same_termios(const struct termios *a, const struct termios *b)
{
	return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
	       a->c_lflag == b->c_lflag && !memcmp(a->c_cc, b->c_cc, NCCS) &&
	       cfgetispeed(a) == cfgetispeed(b) && cfgetospeed(a) == cfgetospeed(b);
}

/* Reads exactly n bytes, failing on a short read: the data must all be
 * there at once after the restore. */
static void read_exact(int fd, char *buf, size_t n, const char *what)
{
	ssize_t r = read(fd, buf, n + 1);
	if (r != (ssize_t)n)
		tgt_fail("%s: read %zd bytes, want %zu (%s)", what, r, n, r < 0 ? strerror(errno) : "");
}

static long tty_nr(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	long nr = -1;

	if (n <= 0)
		tgt_fail("read /proc/self/stat");
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	/* ") S ppid pgrp session tty_nr" */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %ld", &nr) != 1)
		tgt_fail("parse /proc/self/stat");
	close(fd);
	return nr;
}

/* A descendant that failed wrote its own verdict: keep it. */
static void descendant_failed(const char *who, int status)
{
	if (access(tgt_result_path, F_OK) == 0)
		_exit(1);
	tgt_fail("%s failed (status %#x)", who, status);
}

static void grandchild(int slave)
{
	tgt_wait();
	if (getpgrp() != getpid())
		tgt_fail("grandchild: pgrp %d, want its own %d", getpgrp(), getpid());
	if (tcgetpgrp(slave) != getpid())
		tgt_fail("grandchild: foreground group %d, want its own %d", tcgetpgrp(slave), getpid());
	_exit(0);
}

static void child(const char *path, int ready_fd, int corrupt)
{
	struct stat st;
	char buf[64];
	pid_t gc;
	int excl = 0, sid = 0, pgrp = 0;

	if (setsid() < 0)
		tgt_fail("setsid: %s", strerror(errno));
	/* A session leader opening a terminal without O_NOCTTY takes it as
	 * its controlling terminal (man 4 tty_ioctl, TIOCSCTTY). */
	int slave = open(path, O_RDWR);
	if (slave < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	if (ioctl(slave, TIOCEXCL) < 0)
		tgt_fail("TIOCEXCL: %s", strerror(errno));
	gc = fork();
	if (gc == 0) {
		close(ready_fd);
		setpgid(0, 0);
		grandchild(slave);
	}
	setpgid(gc, gc);
	if (tcsetpgrp(slave, gc) < 0)
		tgt_fail("tcsetpgrp: %s", strerror(errno));
	if (write(slave, to_master, sizeof(to_master) - 1) != sizeof(to_master) - 1)
		tgt_fail("write to the slave: %s", strerror(errno));
	if (write(ready_fd, "k", 1) != 1)
		tgt_fail("tell the parent: %s", strerror(errno));
	close(ready_fd);

	tgt_wait();
	if (corrupt) {
		signal(SIGTTOU, SIG_IGN);
		tcsetpgrp(slave, getpgrp());
	}
	kill(gc, SIGTERM);
	int status;
	if (waitpid(gc, &status, 0) != gc || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		descendant_failed("grandchild", status);
	if (fstat(slave, &st) < 0)
		tgt_fail("fstat slave: %s", strerror(errno));
	if (tty_nr() != (long)st.st_rdev)
		tgt_fail("controlling terminal tty_nr %#lx, want the slave %#lx", tty_nr(), (long)st.st_rdev);
	if (ioctl(slave, TIOCGSID, &sid) < 0 || sid != getpid())
		tgt_fail("TIOCGSID %d (%s), want %d", sid, strerror(errno), getpid());
	if (ioctl(slave, TIOCGPGRP, &pgrp) < 0 || pgrp != gc)
		tgt_fail("TIOCGPGRP %d, want the grandchild's group %d", pgrp, gc);
	if (ioctl(slave, TIOCGEXCL, &excl) < 0 || excl != 1)
		tgt_fail("TIOCGEXCL %d, want 1", excl);
	/* The child's group is orphaned (its parent is in another session),
	 * so reading its terminal from the background fails with EIO
	 * (drivers/tty/tty_jobctrl.c __tty_check_change): it takes the
	 * foreground first, which SIGTTOU ignored allows. */
	signal(SIGTTOU, SIG_IGN);
	if (tcsetpgrp(slave, getpgrp()) < 0)
		tgt_fail("tcsetpgrp back to the child: %s", strerror(errno));
	if (partial) {
		/* The root typed the line's end: the whole line comes in one
		 * read, its newline last. */
		char line[sizeof(partial_line) + 1];
		memcpy(line, partial_line, sizeof(partial_line) - 1);
		line[sizeof(partial_line) - 1] = '\n';
		read_exact(slave, buf, sizeof(partial_line), "the line for the slave");
		if (memcmp(buf, line, sizeof(partial_line)))
			tgt_fail("the line for the slave differs: %.*s", (int)sizeof(partial_line), buf);
		_exit(0);
	}
	read_exact(slave, buf, sizeof(to_slave) - 1, "data for the slave");
	if (memcmp(buf, to_slave, sizeof(to_slave) - 1))
		tgt_fail("data for the slave differs: %.*s", (int)sizeof(to_slave) - 1, buf);
	_exit(0);
}

int main(int argc, char **argv)
{
	struct termios t, got;
	struct winsize ws;
	struct stat st;
	char path[64], buf[64];
	int pipefd[2], on = 1, pkt = 0, lck = 0, n = 0;
	int corrupt = argc > 2 && !strcmp(argv[2], "corrupt-fg");

	tgt_init(argc, argv);
	canon = argc > 2 && !strcmp(argv[2], "canon");
	partial = argc > 2 && !strcmp(argv[2], "partial");
	t = want_termios();
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
		tgt_fail("posix_openpt: %s", strerror(errno));
	if (ptsname_r(master, path, sizeof(path)) != 0)
		tgt_fail("ptsname: %s", strerror(errno));
	if (tcsetattr(master, TCSANOW, &t) < 0 || ioctl(master, TIOCSWINSZ, &want_ws) < 0)
		tgt_fail("set termios or window size: %s", strerror(errno));
	if (chown(path, 4321, 4322) < 0 || chmod(path, 0604) < 0)
		tgt_fail("chown/chmod %s: %s", path, strerror(errno));
	if (pipe(pipefd) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	pid_t c = fork();
	if (c == 0) {
		close(master);
		close(pipefd[0]);
		child(path, pipefd[1], corrupt);
	}
	close(pipefd[1]);
	if (read(pipefd[0], buf, 1) != 1)
		tgt_fail("the child did not get ready");
	close(pipefd[0]);
	if (partial) {
		if (write(master, partial_typed, sizeof(partial_typed) - 1) != sizeof(partial_typed) - 1)
			tgt_fail("write to the master: %s", strerror(errno));
		/* Wait until the echo is all there: the master then holds
		 * what the child wrote, then the echo. */
		for (int i = 0;; i++) {
			struct pollfd p = { .fd = master, .events = POLLIN };
			int q = 0;
			/* A poll flushes what the driver holds (n_tty_poll);
			 * it returns at once, the child's data being there. */
			poll(&p, 1, 0);
			usleep(1000);
			if (ioctl(master, FIONREAD, &q) < 0)
				tgt_fail("FIONREAD on the master: %s", strerror(errno));
			if (q == (int)(sizeof(to_master) - 1 + sizeof(partial_echo) - 1))
				break;
			if (i > 10000)
				tgt_fail("the master holds %d bytes, want %zu", q, sizeof(to_master) - 1 + sizeof(partial_echo) - 1);
		}
	} else if (write(master, to_slave, sizeof(to_slave) - 1) != sizeof(to_slave) - 1)
		tgt_fail("write to the master: %s", strerror(errno));
	if (ioctl(master, TIOCPKT, &on) < 0 || ioctl(master, TIOCSPTLCK, &on) < 0)
		tgt_fail("TIOCPKT or TIOCSPTLCK: %s", strerror(errno));
	tgt_ready();

	tgt_wait();
	if (tcgetattr(master, &got) < 0 || !same_termios(&got, &t))
		tgt_fail("termios differ: iflag %#x oflag %#x cflag %#x lflag %#x", got.c_iflag, got.c_oflag, got.c_cflag, got.c_lflag);
	if (ioctl(master, TIOCGWINSZ, &ws) < 0 || memcmp(&ws, &want_ws, sizeof(ws)))
		tgt_fail("window size %dx%d, want %dx%d", ws.ws_row, ws.ws_col, want_ws.ws_row, want_ws.ws_col);
	if (ioctl(master, TIOCGPKT, &pkt) < 0 || pkt != 1)
		tgt_fail("packet mode %d, want 1", pkt);
	if (ioctl(master, TIOCGPTLCK, &lck) < 0 || lck != 1)
		tgt_fail("locked %d, want 1", lck);
	char want_path[64];
	if (ioctl(master, TIOCGPTN, &n) < 0)
		tgt_fail("TIOCGPTN: %s", strerror(errno));
	snprintf(want_path, sizeof(want_path), "/dev/pts/%d", n);
	if (strcmp(want_path, path))
		tgt_fail("the pair is %s, want %s", want_path, path);
	if (stat(path, &st) < 0 || st.st_uid != 4321 || st.st_gid != 4322 || (st.st_mode & 07777) != 0604)
		tgt_fail("%s owner %d:%d mode %o, want 4321:4322 604", path, st.st_uid, st.st_gid, st.st_mode & 07777);
	/* Packet mode: a read starts with TIOCPKT_DATA. */
	ssize_t r = read(master, buf, sizeof(buf));
	if (r < 1 || buf[0] != TIOCPKT_DATA || r < (ssize_t)sizeof(to_master) || memcmp(buf + 1, to_master, sizeof(to_master) - 1))
		tgt_fail("data for the master: read %zd bytes", r);
	if (partial) {
		/* The echo, once: not again when the line was typed back. */
		if (r != (ssize_t)(sizeof(to_master) + sizeof(partial_echo) - 1) ||
		    memcmp(buf + sizeof(to_master), partial_echo, sizeof(partial_echo) - 1))
			tgt_fail("data for the master: read %zd bytes, want the child's %zu and the echo's %zu",
				 r - 1, sizeof(to_master) - 1, sizeof(partial_echo) - 1);
		if (write(master, "\n", 1) != 1)
			tgt_fail("type the line's end: %s", strerror(errno));
	} else if (r != (ssize_t)sizeof(to_master))
		tgt_fail("data for the master: read %zd bytes", r);
	kill(c, SIGTERM);
	int status;
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		descendant_failed("child", status);
	tgt_pass();
}
