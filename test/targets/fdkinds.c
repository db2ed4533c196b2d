/*
 * fdkinds: one special file kind per mode, each at a fixed fd number so the
 * corruption test can reach it with gdb.
 *
 *   signalfd  fd 50: mask {SIGUSR1, SIGRTMIN+1}, O_NONBLOCK; all three of
 *             SIGUSR1, SIGUSR2, SIGRTMIN+1 blocked; a SIGUSR1 from kill()
 *             pending at dump time. After restore: the fdinfo sigmask and
 *             F_GETFL are unchanged, one read returns exactly that SIGUSR1
 *             (ssi_signo, ssi_code SI_USER, ssi_pid, ssi_uid), the next
 *             EAGAIN; a SIGRTMIN+1 sent then is read with its sigqueue value;
 *             a SIGUSR2 (blocked, not in the mask) is not.
 *   timerfd   fd 51: CLOCK_MONOTONIC, periodic 200 ms, O_NONBLOCK, at least
 *             three expirations unread at setup; fd 52: one-shot 30 s.
 *             After restore: F_GETFL and the fdinfo clockid are unchanged,
 *             a read of fd 51 returns at least the expirations counted at
 *             setup and no more than the time since arming allows; fd 51's
 *             interval is still 200 ms; fd 52 has no interval and between
 *             25 and 30 s left.
 *   inotify   fd 53, on TMPDIR: dir watch (IN_CREATE|IN_DELETE|IN_ONLYDIR),
 *             a file watch that is removed, a second file watch
 *             (IN_MODIFY|IN_ATTRIB), so the wds have a gap (1, -, 3). After
 *             restore: the fdinfo watch lines (wd, ino, mask) are unchanged;
 *             inotify_add_watch of the same paths and masks returns the same
 *             wds; creating a file and writing the watched file produce
 *             events with the right wd, mask and name.
 *   memfd     fd 54: "gocr-sealed", MFD_ALLOW_SEALING, F_SEAL_SHRINK, 1 MiB
 *             hole then a 4 KiB pattern (sparse), file offset 12345, also
 *             mapped MAP_SHARED (fd kept), mode 0640, owner 1234:5678. A
 *             second memfd "gocr-plain map\n2" (a space and a newline in
 *             its name) without sealing, 64 KiB, mode 0604, mapped
 *             MAP_SHARED and its fd closed. A third, fd 57: "gocr-noexec",
 *             MFD_NOEXEC_SEAL (mode 0666, sealed F_SEAL_EXEC). After
 *             restore: sizes, seals, offset, names (readlink of the fd or
 *             of /proc/self/map_files), modes and owners, contents (the
 *             hole reads as zeros), the shared mappings (a write through a
 *             mapping is read through the fd; for the closed one through
 *             /proc/self/map_files) and F_GETFL are verified, and the third
 *             still refuses to become executable.
 *   fifo      TMPDIR/fifo: the target (fd 55, O_RDONLY|O_NONBLOCK) and its
 *             child (fd 56, O_WRONLY) hold the two ends; the child wrote
 *             FIFO_BEFORE, unread at dump time. After restore the target
 *             reads exactly FIFO_BEFORE, tells the child (SIGTERM) to write
 *             FIFO_AFTER and exit, reads exactly that, then EOF, and reaps
 *             the child with status 0. Both fds must still be the FIFO at
 *             TMPDIR/fifo (same inode). The child sets O_DIRECT|O_APPEND on
 *             its end once FIFO_BEFORE is written; both ends' F_GETFL must
 *             be as they were.
 *   pipes     pipe A (fds 60 read, 61 write) with PIPE_DATA unread, 61
 *             made O_NONBLOCK with fcntl; pipe B (62, 63) made
 *             O_NONBLOCK by pipe2, 62 made blocking and 63 O_APPEND with
 *             fcntl later; two more open file descriptions of pipe A,
 *             opened through /proc/self/fd: 64 (O_RDONLY|O_NONBLOCK) and
 *             65 (O_RDWR); pipe C (66, 67), a packet pipe (pipe2
 *             O_DIRECT), empty. After restore: every fd's F_GETFL is what
 *             it was, each is the same pipe as the others of its pipe (and
 *             no other pipe's), and a distinct open
 *             file description where it was one (kcmp); 64 reads exactly
 *             PIPE_DATA, then EAGAIN; 65 writes what 64 reads; C keeps
 *             packets apart.
 *   packets   pipe C with two packets in it, "ab" and "cde": the dump
 *             refuses it (packet boundaries are not restored). After it
 *             the packets must still be there, read one at a time.
 *
 * Usage: fdkinds RESULT_PATH MODE [TMPDIR]
 */
#include "target.h"

#include <poll.h>
#include <stdint.h>
#include <linux/kcmp.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define SFD 50
#define TFD_PERIODIC 51
#define TFD_ONESHOT 52
#define IFD 53
#define MFD 54
#define FIFO_R 55
#define FIFO_W 56
#define MFD_NOEXEC 57
#define PA_R 60
#define PA_W 61
#define PB_R 62
#define PB_W 63
#define PA_R2 64
#define PA_RW 65
#define PC_R 66
#define PC_W 67

static char tmpdir[2048];
static char scratch[4096];

static void place(int fd, int want, const char *what)
{
	if (fd < 0)
		tgt_fail("create %s: %s", what, strerror(errno));
	if (fd == want)
		return;
	if (dup3(fd, want, 0) < 0)
		tgt_fail("dup3 %s to %d: %s", what, want, strerror(errno));
	close(fd);
}

/* The lines of fd's fdinfo that start with one of prefixes, joined. */
static void fdinfo_lines(int fd, const char *const *prefixes, char *out, size_t cap)
{
	char buf[8192], *line, *save;

	tgt_read_fdinfo(fd, buf, sizeof(buf));
	out[0] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		for (const char *const *p = prefixes; *p; p++) {
			if (strncmp(line, *p, strlen(*p)) == 0) {
				strncat(out, line, cap - strlen(out) - 2);
				strcat(out, ";");
			}
		}
	}
}

static int getfl(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		tgt_fail("F_GETFL fd %d: %s", fd, strerror(errno));
	return fl;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- signalfd */

static char sfd_info[512];
static int sfd_fl;

static void signalfd_setup(void)
{
	static const char *const pre[] = { "sigmask:", NULL };
	sigset_t mask, block;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGRTMIN + 1);
	block = mask;
	sigaddset(&block, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		tgt_fail("sigprocmask: %s", strerror(errno));
	place(signalfd(-1, &mask, SFD_NONBLOCK), SFD, "signalfd");
	if (kill(getpid(), SIGUSR1) < 0)
		tgt_fail("kill SIGUSR1: %s", strerror(errno));
	fdinfo_lines(SFD, pre, sfd_info, sizeof(sfd_info));
	if (!strstr(sfd_info, "sigmask:"))
		tgt_fail("signalfd fdinfo has no sigmask line");
	sfd_fl = getfl(SFD);
}

static void sfd_read(const char *what, int signo, int code, int value)
{
	struct signalfd_siginfo si;
	ssize_t n = read(SFD, &si, sizeof(si));

	if (n != (ssize_t)sizeof(si))
		tgt_fail("signalfd read (%s) returned %zd (%s), want one siginfo", what, n,
			 n < 0 ? strerror(errno) : "short");
	if ((int)si.ssi_signo != signo)
		tgt_fail("signalfd read (%s): ssi_signo %u, want %d", what, si.ssi_signo, signo);
	if (si.ssi_code != code)
		tgt_fail("signalfd read (%s): ssi_code %d, want %d", what, si.ssi_code, code);
	if ((pid_t)si.ssi_pid != getpid() || si.ssi_uid != getuid())
		tgt_fail("signalfd read (%s): ssi_pid %u ssi_uid %u, want %d %d", what, si.ssi_pid,
			 si.ssi_uid, getpid(), getuid());
	if (code == SI_QUEUE && si.ssi_int != value)
		tgt_fail("signalfd read (%s): ssi_int %d, want %d", what, si.ssi_int, value);
}

static void sfd_expect_empty(const char *what)
{
	struct signalfd_siginfo si;
	ssize_t n = read(SFD, &si, sizeof(si));

	if (n >= 0)
		tgt_fail("signalfd read (%s) returned %zd bytes (signal %u), want EAGAIN", what, n,
			 n == (ssize_t)sizeof(si) ? si.ssi_signo : 0);
	if (errno != EAGAIN)
		tgt_fail("signalfd read (%s): %s, want EAGAIN", what, strerror(errno));
}

static void signalfd_verify(void)
{
	static const char *const pre[] = { "sigmask:", NULL };
	char info[512];
	sigset_t pend, usr2;
	union sigval sv = { .sival_int = 4242 };
	struct timespec zero = { 0, 0 };

	fdinfo_lines(SFD, pre, info, sizeof(info));
	if (strcmp(info, sfd_info) != 0)
		tgt_fail("signalfd fdinfo %s, want %s", info, sfd_info);
	if (getfl(SFD) != sfd_fl)
		tgt_fail("signalfd F_GETFL %#o, want %#o", getfl(SFD), sfd_fl);
	if (sigpending(&pend) < 0 || !sigismember(&pend, SIGUSR1))
		tgt_fail("SIGUSR1 is not pending after restore");
	sfd_read("pending SIGUSR1", SIGUSR1, SI_USER, 0);
	sfd_expect_empty("after SIGUSR1");
	/* The mask: SIGRTMIN+1 is in it, SIGUSR2 (also blocked) is not. */
	if (kill(getpid(), SIGUSR2) < 0)
		tgt_fail("kill SIGUSR2: %s", strerror(errno));
	if (sigqueue(getpid(), SIGRTMIN + 1, sv) < 0)
		tgt_fail("sigqueue SIGRTMIN+1: %s", strerror(errno));
	sfd_read("SIGRTMIN+1 sent after restore", SIGRTMIN + 1, SI_QUEUE, 4242);
	sfd_expect_empty("with only SIGUSR2 pending");
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	if (sigtimedwait(&usr2, NULL, &zero) != SIGUSR2)
		tgt_fail("SIGUSR2 was not pending after the signalfd skipped it");
}

/* ----------------------------------------------------------------- timerfd */

static double tfd_armed;
static uint64_t tfd_min_unread;
static int tfd_fl;
static char tfd_info[2][256];
/* Zero: gdb disarms a timer with it. */
struct itimerspec tfd_disarm;

static void timerfd_setup(void)
{
	static const char *const pre[] = { "clockid:", NULL };
	struct itimerspec per = { { 0, 200000000 }, { 0, 200000000 } };
	struct itimerspec one = { { 0, 0 }, { 30, 0 } };
	struct timespec ts = { 0, 700000000 };

	place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), TFD_PERIODIC, "periodic timerfd");
	place(timerfd_create(CLOCK_MONOTONIC, 0), TFD_ONESHOT, "one-shot timerfd");
	tfd_armed = now_mono();
	if (timerfd_settime(TFD_PERIODIC, 0, &per, NULL) < 0 || timerfd_settime(TFD_ONESHOT, 0, &one, NULL) < 0)
		tgt_fail("timerfd_settime: %s", strerror(errno));
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	tfd_min_unread = (uint64_t)((now_mono() - tfd_armed) / 0.2);
	if (tfd_min_unread < 3)
		tgt_fail("only %llu expirations after 700 ms", (unsigned long long)tfd_min_unread);
	tfd_fl = getfl(TFD_PERIODIC);
	fdinfo_lines(TFD_PERIODIC, pre, tfd_info[0], sizeof(tfd_info[0]));
	fdinfo_lines(TFD_ONESHOT, pre, tfd_info[1], sizeof(tfd_info[1]));
	tgt_log("timerfd: %llu expirations unread at setup\n", (unsigned long long)tfd_min_unread);
}

/*
 * A dumped timer keeps its remaining time: the time a process spends in
 * the image does not count against it (the clock "stops" while dumped).
 * The one-shot's 25-30 s window would also hold if it did count, as the
 * harness keeps the target dumped for about a second.
 */
static void timerfd_verify(void)
{
	static const char *const pre[] = { "clockid:", NULL };
	struct itimerspec cur;
	char info[256];
	uint64_t n;
	ssize_t r;
	double max;

	if (getfl(TFD_PERIODIC) != tfd_fl)
		tgt_fail("periodic timerfd F_GETFL %#o, want %#o", getfl(TFD_PERIODIC), tfd_fl);
	for (int i = 0; i < 2; i++) {
		fdinfo_lines(TFD_PERIODIC + i, pre, info, sizeof(info));
		if (strcmp(info, tfd_info[i]) != 0)
			tgt_fail("timerfd fd %d fdinfo %s, want %s", TFD_PERIODIC + i, info, tfd_info[i]);
	}
	r = read(TFD_PERIODIC, &n, sizeof(n));
	max = (now_mono() - tfd_armed) / 0.2 + 1;
	if (r != (ssize_t)sizeof(n))
		tgt_fail("periodic timerfd read returned %zd (%s), want at least %llu expirations", r,
			 r < 0 ? strerror(errno) : "short", (unsigned long long)tfd_min_unread);
	if (n < tfd_min_unread || (double)n > max)
		tgt_fail("periodic timerfd read %llu expirations, want %llu..%.0f",
			 (unsigned long long)n, (unsigned long long)tfd_min_unread, max);
	if (timerfd_gettime(TFD_PERIODIC, &cur) < 0)
		tgt_fail("timerfd_gettime periodic: %s", strerror(errno));
	if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != 200000000)
		tgt_fail("periodic timerfd interval %ld.%09ld s, want 0.200000000",
			 (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
	if (cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec > 200000000 ||
	    (cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0))
		tgt_fail("periodic timerfd next expiry in %ld.%09ld s, want (0, 0.2]",
			 (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
	if (timerfd_gettime(TFD_ONESHOT, &cur) < 0)
		tgt_fail("timerfd_gettime one-shot: %s", strerror(errno));
	if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != 0)
		tgt_fail("one-shot timerfd has interval %ld.%09ld s, want none",
			 (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
	if (cur.it_value.tv_sec >= 30 || cur.it_value.tv_sec < 25)
		tgt_fail("one-shot timerfd remaining %ld.%09ld s, want in (25, 30]",
			 (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
}

/* ----------------------------------------------------------------- inotify */

#define DIR_MASK (IN_CREATE | IN_DELETE | IN_ONLYDIR)
#define FILE_MASK (IN_MODIFY | IN_ATTRIB)
static int wd_dir, wd_gone, wd_file;
static char ino_info[1024];
static char path_dir[2100], path_gone[2100], path_file[2100];

static void inotify_drain(void)
{
	while (read(IFD, scratch, sizeof(scratch)) > 0)
		;
	if (errno != EAGAIN)
		tgt_fail("drain inotify: %s", strerror(errno));
}

static void inotify_setup(void)
{
	static const char *const pre[] = { "inotify wd:", NULL };
	int fd;

	snprintf(path_dir, sizeof(path_dir), "%s/watched", tmpdir);
	snprintf(path_gone, sizeof(path_gone), "%s/gone.txt", tmpdir);
	snprintf(path_file, sizeof(path_file), "%s/file.txt", tmpdir);
	if (mkdir(path_dir, 0755) < 0)
		tgt_fail("mkdir %s: %s", path_dir, strerror(errno));
	for (int i = 0; i < 2; i++) {
		fd = open(i ? path_file : path_gone, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			tgt_fail("create: %s", strerror(errno));
		close(fd);
	}
	place(inotify_init1(IN_NONBLOCK), IFD, "inotify");
	wd_dir = inotify_add_watch(IFD, path_dir, DIR_MASK);
	wd_gone = inotify_add_watch(IFD, path_gone, IN_CLOSE_WRITE);
	wd_file = inotify_add_watch(IFD, path_file, FILE_MASK);
	if (wd_dir < 0 || wd_gone < 0 || wd_file < 0)
		tgt_fail("inotify_add_watch: %s", strerror(errno));
	if (inotify_rm_watch(IFD, wd_gone) < 0)
		tgt_fail("inotify_rm_watch: %s", strerror(errno));
	if (wd_file != wd_gone + 1 || wd_gone != wd_dir + 1)
		tgt_fail("wds %d %d %d are not consecutive", wd_dir, wd_gone, wd_file);
	/* IN_IGNORED for the removed watch: an instance with events queued
	 * is refused at dump (refusedstate.c). */
	inotify_drain();
	fdinfo_lines(IFD, pre, ino_info, sizeof(ino_info));
	tgt_log("inotify: wds %d %d(removed) %d\n", wd_dir, wd_gone, wd_file);
}

static void inotify_expect(int wd, uint32_t mask, const char *name)
{
	struct pollfd p = { .fd = IFD, .events = POLLIN };
	struct inotify_event *ev = (struct inotify_event *)scratch;
	ssize_t n;

	if (poll(&p, 1, 5000) != 1)
		tgt_fail("no inotify event within 5 s, want wd %d mask %#x", wd, mask);
	n = read(IFD, scratch, sizeof(scratch));
	if (n < (ssize_t)sizeof(*ev))
		tgt_fail("inotify read returned %zd (%s)", n, n < 0 ? strerror(errno) : "short");
	if (n != (ssize_t)(sizeof(*ev) + ev->len))
		tgt_fail("inotify read returned %zd bytes, want one event of %zu", n, sizeof(*ev) + ev->len);
	if (ev->wd != wd || ev->mask != mask)
		tgt_fail("inotify event wd %d mask %#x, want wd %d mask %#x", ev->wd, ev->mask, wd, mask);
	if (strcmp(name, ev->len ? ev->name : "") != 0)
		tgt_fail("inotify event name \"%s\", want \"%s\"", ev->len ? ev->name : "", name);
}

static void inotify_verify(void)
{
	static const char *const pre[] = { "inotify wd:", NULL };
	char info[1024], path[2200];
	int wd, fd;

	fdinfo_lines(IFD, pre, info, sizeof(info));
	if (strcmp(info, ino_info) != 0)
		tgt_fail("inotify fdinfo watches %s, want %s", info, ino_info);
	/* Nothing was queued at the dump, nor is now: not even the
	 * IN_IGNORED of a watch the restore adds and removes to skip wd 2. */
	if (ioctl(IFD, FIONREAD, &fd) < 0 || fd != 0)
		tgt_fail("inotify fd %d has %d bytes of events queued after the restore, want 0", IFD, fd);
	if ((wd = inotify_add_watch(IFD, path_dir, DIR_MASK)) != wd_dir)
		tgt_fail("inotify_add_watch(dir) after restore returned %d, want wd %d", wd, wd_dir);
	if ((wd = inotify_add_watch(IFD, path_file, FILE_MASK)) != wd_file)
		tgt_fail("inotify_add_watch(file) after restore returned %d, want wd %d", wd, wd_file);
	snprintf(path, sizeof(path), "%s/new-after-restore", path_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	close(fd);
	inotify_expect(wd_dir, IN_CREATE, "new-after-restore");
	fd = open(path_file, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1)
		tgt_fail("append to %s: %s", path_file, strerror(errno));
	close(fd);
	inotify_expect(wd_file, IN_MODIFY, "");
}

/* ------------------------------------------------------------------- memfd */

#define M1_HOLE (1 << 20)
#define M1_DATA 4096
#define M1_OFF 12345
#define M2_SIZE (64 << 10)
static unsigned char *m1map, *m2map;

static unsigned char pat(int which, size_t i)
{
	return (unsigned char)(i * 31 + which * 7 + (i >> 8));
}

#define M1_MODE 0640
#define M1_UID 1234
#define M1_GID 5678
#define M2_MODE 0604
#define M2_NAME "gocr-plain map\n2"
#define M3_MODE 0666

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* include/uapi/linux/memfd.h, Linux 6.3 */
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020 /* include/uapi/linux/fcntl.h, Linux 6.3 */
#endif

static void memfd_setup(void)
{
	unsigned char buf[M1_DATA];
	int m2;

	place(memfd_create("gocr-sealed", MFD_ALLOW_SEALING), MFD, "sealed memfd");
	for (size_t i = 0; i < M1_DATA; i++)
		buf[i] = pat(1, i);
	if (pwrite(MFD, buf, M1_DATA, M1_HOLE) != M1_DATA)
		tgt_fail("pwrite sealed memfd: %s", strerror(errno));
	if (fcntl(MFD, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		tgt_fail("F_ADD_SEALS: %s", strerror(errno));
	if (lseek(MFD, M1_OFF, SEEK_SET) != M1_OFF)
		tgt_fail("lseek sealed memfd: %s", strerror(errno));
	if (fchown(MFD, M1_UID, M1_GID) < 0 || fchmod(MFD, M1_MODE) < 0)
		tgt_fail("fchown/fchmod sealed memfd: %s", strerror(errno));
	m1map = mmap(NULL, M1_HOLE + M1_DATA, PROT_READ | PROT_WRITE, MAP_SHARED, MFD, 0);
	if (m1map == MAP_FAILED)
		tgt_fail("mmap sealed memfd: %s", strerror(errno));

	m2 = memfd_create(M2_NAME, MFD_CLOEXEC);
	if (m2 < 0 || ftruncate(m2, M2_SIZE) < 0 || fchmod(m2, M2_MODE) < 0)
		tgt_fail("plain memfd: %s", strerror(errno));
	m2map = mmap(NULL, M2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m2, 0);
	if (m2map == MAP_FAILED)
		tgt_fail("mmap plain memfd: %s", strerror(errno));
	close(m2);
	for (size_t i = 0; i < M2_SIZE; i++)
		m2map[i] = pat(2, i);

	place(memfd_create("gocr-noexec", MFD_NOEXEC_SEAL), MFD_NOEXEC, "no-exec memfd");
}

/* A memfd's mode, owner, seals and name (the link of path, an fd or a
 * map_files entry) are what the dump saw. */
static void memfd_check_file(int fd, const char *path, const char *what, const char *name, mode_t mode,
			     uid_t uid, gid_t gid, int seals)
{
	char link[512], want[512];
	struct stat st;
	ssize_t n;
	int got;

	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = 0;
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	if (strcmp(link, want) != 0)
		tgt_fail("%s is \"%s\", want \"%s\"", what, link, want);
	if (fstat(fd, &st) < 0)
		tgt_fail("fstat %s: %s", what, strerror(errno));
	if ((st.st_mode & 07777) != mode)
		tgt_fail("%s mode %#o, want %#o", what, st.st_mode & 07777, mode);
	if (st.st_uid != uid || st.st_gid != gid)
		tgt_fail("%s owner %u:%u, want %u:%u", what, st.st_uid, st.st_gid, uid, gid);
	if ((got = fcntl(fd, F_GET_SEALS)) != seals)
		tgt_fail("%s seals %#x, want %#x", what, got, seals);
}

static void memfd_verify(void)
{
	unsigned char buf[M1_DATA];
	char path[128];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", MFD);
	memfd_check_file(MFD, path, "sealed memfd", "gocr-sealed", M1_MODE, M1_UID, M1_GID, F_SEAL_SHRINK);
	if (fstat(MFD, &st) < 0 || st.st_size != M1_HOLE + M1_DATA)
		tgt_fail("sealed memfd size %lld, want %d", (long long)st.st_size, M1_HOLE + M1_DATA);
	if (lseek(MFD, 0, SEEK_CUR) != M1_OFF)
		tgt_fail("sealed memfd offset %lld, want %d", (long long)lseek(MFD, 0, SEEK_CUR), M1_OFF);
	if ((getfl(MFD) & (O_ACCMODE | O_NONBLOCK | O_APPEND)) != O_RDWR)
		tgt_fail("sealed memfd F_GETFL %#o, want O_RDWR", getfl(MFD));
	/* Hole, through the fd: zeros (read in pages, not all of it). */
	for (off_t off = 0; off < M1_HOLE; off += 64 << 10) {
		if (pread(MFD, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			tgt_fail("pread sealed memfd hole at %lld: %s", (long long)off, strerror(errno));
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i])
				tgt_fail("sealed memfd hole byte %lld is %#x, want 0", (long long)off + (long long)i, buf[i]);
	}
	if (pread(MFD, buf, M1_DATA, M1_HOLE) != M1_DATA)
		tgt_fail("pread sealed memfd data: %s", strerror(errno));
	for (size_t i = 0; i < M1_DATA; i++)
		if (buf[i] != pat(1, i) || m1map[M1_HOLE + i] != pat(1, i))
			tgt_fail("sealed memfd data byte %zu is %#x (fd) / %#x (mapping), want %#x", i, buf[i],
				 m1map[M1_HOLE + i], pat(1, i));
	/* One object: a write through the mapping is seen through the fd. */
	m1map[100] = 0xa5;
	if (pread(MFD, buf, 1, 100) != 1 || buf[0] != 0xa5)
		tgt_fail("write through the sealed memfd's mapping not seen through its fd (got %#x)", buf[0]);
	if (lseek(MFD, 0, SEEK_CUR) != M1_OFF)
		tgt_fail("sealed memfd offset moved to %lld", (long long)lseek(MFD, 0, SEEK_CUR));

	for (size_t i = 0; i < M2_SIZE; i++)
		if (m2map[i] != pat(2, i))
			tgt_fail("plain memfd mapping byte %zu is %#x, want %#x", i, m2map[i], pat(2, i));
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)m2map,
		 (unsigned long)m2map + M2_SIZE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	memfd_check_file(fd, path, "plain memfd mapping", M2_NAME, M2_MODE, 0, 0, F_SEAL_SEAL);
	if (fstat(fd, &st) < 0 || st.st_size != M2_SIZE)
		tgt_fail("plain memfd size %lld, want %d", (long long)st.st_size, M2_SIZE);
	m2map[M2_SIZE - 1] = 0x5a;
	if (pread(fd, buf, 1, M2_SIZE - 1) != 1 || buf[0] != 0x5a)
		tgt_fail("write through the plain memfd's mapping not seen through the file (got %#x)", buf[0]);
	close(fd);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", MFD_NOEXEC);
	memfd_check_file(MFD_NOEXEC, path, "no-exec memfd", "gocr-noexec", M3_MODE, 0, 0, F_SEAL_EXEC);
	/* F_SEAL_EXEC forbids changing the exec bits (man 2 memfd_create). */
	if (fchmod(MFD_NOEXEC, 0777) == 0)
		tgt_fail("no-exec memfd: fchmod 0777 succeeded, want EPERM (F_SEAL_EXEC)");
	if (errno != EPERM)
		tgt_fail("no-exec memfd: fchmod 0777: %s, want EPERM (F_SEAL_EXEC)", strerror(errno));
}

/* -------------------------------------------------------------------- fifo */

static const char FIFO_BEFORE[] = "written before the dump, unread\n";
static const char FIFO_AFTER[] = "written after the restore\n";
static char fifo_path[2100];
static pid_t fifo_child;
static struct stat fifo_st;
static int fifo_fl;

static volatile sig_atomic_t child_term;
static void on_child_term(int sig)
{
	(void)sig;
	child_term = 1;
}

static void fifo_child_main(int ready_w)
{
	struct sigaction sa = { .sa_handler = on_child_term };
	struct stat st;
	int fd, fl;

	sigaction(SIGTERM, &sa, NULL);
	fd = open(fifo_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || dup3(fd, FIFO_W, O_CLOEXEC) < 0)
		_exit(10);
	close(fd);
	if (write(FIFO_W, FIFO_BEFORE, sizeof(FIFO_BEFORE) - 1) != sizeof(FIFO_BEFORE) - 1)
		_exit(11);
	/* Set with fcntl, and only now: data written with O_DIRECT would
	 * be packets, which a dump refuses. */
	if (fcntl(FIFO_W, F_SETFL, O_DIRECT | O_APPEND) < 0 || (fl = fcntl(FIFO_W, F_GETFL)) < 0)
		_exit(15);
	if (write(ready_w, "r", 1) != 1)
		_exit(12);
	close(ready_w);
	while (!child_term) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (fstat(FIFO_W, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_ino != fifo_st.st_ino ||
	    st.st_dev != fifo_st.st_dev)
		_exit(13);
	if (fcntl(FIFO_W, F_GETFL) != fl)
		_exit(16);
	if (write(FIFO_W, FIFO_AFTER, sizeof(FIFO_AFTER) - 1) != sizeof(FIFO_AFTER) - 1)
		_exit(14);
	_exit(0);
}

static void fifo_setup(void)
{
	int p[2];
	char c;

	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", tmpdir);
	if (mkfifo(fifo_path, 0600) < 0 || stat(fifo_path, &fifo_st) < 0)
		tgt_fail("mkfifo %s: %s", fifo_path, strerror(errno));
	place(open(fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), FIFO_R, "fifo read end");
	if (fcntl(FIFO_R, F_SETFD, FD_CLOEXEC) < 0)
		tgt_fail("F_SETFD: %s", strerror(errno));
	if (pipe2(p, O_CLOEXEC) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	fifo_child = fork();
	if (fifo_child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (fifo_child == 0) {
		close(p[0]);
		close(FIFO_R);
		fifo_child_main(p[1]);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		tgt_fail("fifo child did not get ready (exit status in log)");
	close(p[0]);
	fifo_fl = getfl(FIFO_R);
	tgt_log("fifo: child %d\n", fifo_child);
}

static void fifo_read_exact(const char *want, size_t len, const char *what)
{
	size_t got = 0;
	struct pollfd p = { .fd = FIFO_R, .events = POLLIN };

	while (got < len) {
		ssize_t n = read(FIFO_R, scratch + got, len - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			tgt_fail("fifo: EOF after %zu of %zu bytes %s", got, len, what);
		if (errno != EAGAIN)
			tgt_fail("fifo read %s: %s", what, strerror(errno));
		if (poll(&p, 1, 5000) != 1)
			tgt_fail("fifo: only %zu of %zu bytes %s within 5 s: \"%.*s\"", got, len, what, (int)got, scratch);
	}
	if (memcmp(scratch, want, len) != 0)
		tgt_fail("fifo data %s is \"%.*s\", want \"%s\"", what, (int)len, scratch, want);
}

static void fifo_verify(void)
{
	struct stat st;
	int status;
	ssize_t n;

	if (fstat(FIFO_R, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_ino != fifo_st.st_ino ||
	    st.st_dev != fifo_st.st_dev)
		tgt_fail("fd %d is not the FIFO %s (ino %lu, want %lu)", FIFO_R, fifo_path,
			 (unsigned long)st.st_ino, (unsigned long)fifo_st.st_ino);
	if (getfl(FIFO_R) != fifo_fl)
		tgt_fail("fifo read end F_GETFL %#o, want %#o", getfl(FIFO_R), fifo_fl);
	fifo_read_exact(FIFO_BEFORE, sizeof(FIFO_BEFORE) - 1, "written before the dump");
	n = read(FIFO_R, scratch, sizeof(scratch));
	if (n >= 0 || errno != EAGAIN)
		tgt_fail("fifo: read after the dumped data returned %zd (%s), want EAGAIN: extra \"%.*s\"", n,
			 n < 0 ? strerror(errno) : "data", n > 0 ? (int)n : 0, scratch);
	if (kill(fifo_child, SIGTERM) < 0)
		tgt_fail("SIGTERM fifo child %d: %s", fifo_child, strerror(errno));
	fifo_read_exact(FIFO_AFTER, sizeof(FIFO_AFTER) - 1, "written after the restore");
	if (waitpid(fifo_child, &status, 0) != fifo_child)
		tgt_fail("waitpid fifo child %d: %s", fifo_child, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tgt_fail("fifo child exit status %#x, want 0 (10+: its own check failed; 16: its F_GETFL)", status);
	n = read(FIFO_R, scratch, sizeof(scratch));
	if (n != 0)
		tgt_fail("fifo: read after the writer exited returned %zd, want EOF", n);
}

/* ------------------------------------------------------------------- pipes */

static const char PIPE_DATA[] = "unread in pipe A at the dump\n";
static const struct {
	int fd;
	const char *what;
	char pipe; /* which pipe: A, B or C */
} pipe_fds[] = {
	{ PA_R, "A read end", 'A' },     { PA_W, "A write end", 'A' },
	{ PB_R, "B read end", 'B' },     { PB_W, "B write end", 'B' },
	{ PA_R2, "A read, reopened", 'A' }, { PA_RW, "A read-write, reopened", 'A' },
	{ PC_R, "C packet read end", 'C' }, { PC_W, "C packet write end", 'C' },
};
#define NPIPE_FDS (int)(sizeof(pipe_fds) / sizeof(pipe_fds[0]))
static int pipe_fl[NPIPE_FDS];

static void setfl(int fd, int fl)
{
	if (fcntl(fd, F_SETFL, fl) < 0)
		tgt_fail("F_SETFL fd %d %#o: %s", fd, fl, strerror(errno));
}

static void reopen(int fd, int flags, int want)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	place(open(path, flags | O_CLOEXEC), want, path);
}

static void pipe_make(int flags, int r, int w)
{
	int p[2];

	if (pipe2(p, flags | O_CLOEXEC) < 0)
		tgt_fail("pipe2: %s", strerror(errno));
	place(p[0], r, "pipe read end");
	place(p[1], w, "pipe write end");
}

static void packet_pipe_setup(void)
{
	pipe_make(O_DIRECT, PC_R, PC_W);
}

/* Two packets: each read returns one of them (man 2 pipe, O_DIRECT). */
static void packets_write(void)
{
	if (write(PC_W, "ab", 2) != 2 || write(PC_W, "cde", 3) != 3)
		tgt_fail("write packets: %s", strerror(errno));
}

static void packets_expect(const char *when)
{
	char buf[64];
	ssize_t n;

	if ((n = read(PC_R, buf, sizeof(buf))) != 2 || memcmp(buf, "ab", 2) != 0)
		tgt_fail("packet pipe %s: first read returned %zd bytes \"%.*s\", want the packet \"ab\"", when, n,
			 n > 0 ? (int)n : 0, buf);
	if ((n = read(PC_R, buf, sizeof(buf))) != 3 || memcmp(buf, "cde", 3) != 0)
		tgt_fail("packet pipe %s: second read returned %zd bytes \"%.*s\", want the packet \"cde\"", when, n,
			 n > 0 ? (int)n : 0, buf);
}

static void pipes_setup(void)
{
	pipe_make(0, PA_R, PA_W);
	if (write(PA_W, PIPE_DATA, sizeof(PIPE_DATA) - 1) != sizeof(PIPE_DATA) - 1)
		tgt_fail("write pipe A: %s", strerror(errno));
	setfl(PA_W, O_NONBLOCK);
	pipe_make(O_NONBLOCK, PB_R, PB_W);
	setfl(PB_R, 0);
	setfl(PB_W, O_NONBLOCK | O_APPEND);
	reopen(PA_R, O_RDONLY | O_NONBLOCK, PA_R2);
	reopen(PA_W, O_RDWR, PA_RW);
	packet_pipe_setup();
	for (int i = 0; i < NPIPE_FDS; i++)
		pipe_fl[i] = getfl(pipe_fds[i].fd);
}

static int same_description(int a, int b)
{
	pid_t me = getpid();
	long r = syscall(SYS_kcmp, me, me, KCMP_FILE, a, b);

	if (r < 0)
		tgt_fail("kcmp fds %d %d: %s", a, b, strerror(errno));
	return r == 0;
}

static void pipes_verify(void)
{
	static const int distinct[][2] = { { PA_R, PA_R2 }, { PA_R, PA_RW }, { PA_W, PA_RW }, { PA_R2, PA_RW } };
	struct stat st[NPIPE_FDS];
	char buf[256];
	ssize_t n;

	for (int i = 0; i < NPIPE_FDS; i++) {
		int fd = pipe_fds[i].fd, fl = getfl(fd);

		if (fl != pipe_fl[i])
			tgt_fail("pipe fd %d (%s) F_GETFL %#o, want %#o", fd, pipe_fds[i].what, fl, pipe_fl[i]);
		if (fstat(fd, &st[i]) < 0 || !S_ISFIFO(st[i].st_mode))
			tgt_fail("fd %d (%s) is not a pipe", fd, pipe_fds[i].what);
	}
	/* The same pipe where it was one, another where it was not. */
	for (int i = 0; i < NPIPE_FDS; i++)
		for (int j = 0; j < i; j++)
			if ((st[i].st_ino == st[j].st_ino) != (pipe_fds[i].pipe == pipe_fds[j].pipe))
				tgt_fail("fd %d (%s) and fd %d (%s) are %s pipe", pipe_fds[i].fd, pipe_fds[i].what,
					 pipe_fds[j].fd, pipe_fds[j].what,
					 st[i].st_ino == st[j].st_ino ? "one" : "not one");
	for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++)
		if (same_description(distinct[i][0], distinct[i][1]))
			tgt_fail("fds %d and %d are one open file description, want two", distinct[i][0], distinct[i][1]);
	n = read(PA_R2, buf, sizeof(buf));
	if (n != sizeof(PIPE_DATA) - 1 || memcmp(buf, PIPE_DATA, (size_t)n) != 0)
		tgt_fail("pipe A read returned %zd bytes \"%.*s\", want \"%s\"", n, n > 0 ? (int)n : 0, buf, PIPE_DATA);
	if ((n = read(PA_R2, buf, sizeof(buf))) >= 0 || errno != EAGAIN)
		tgt_fail("pipe A: read after its data returned %zd (%s), want EAGAIN", n, n < 0 ? strerror(errno) : "data");
	if (write(PA_RW, "rw", 2) != 2)
		tgt_fail("write pipe A through its read-write fd: %s", strerror(errno));
	if ((n = read(PA_R2, buf, sizeof(buf))) != 2 || memcmp(buf, "rw", 2) != 0)
		tgt_fail("pipe A read %zd bytes after a write through fd %d, want \"rw\"", n, PA_RW);
	packets_write();
	packets_expect("after restore");
}

int main(int argc, char **argv)
{
	const char *mode;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: fdkinds RESULT_PATH MODE [TMPDIR]");
	mode = argv[2];
	if (argc > 3)
		snprintf(tmpdir, sizeof(tmpdir), "%s", argv[3]);
	if (strcmp(mode, "signalfd") == 0)
		signalfd_setup();
	else if (strcmp(mode, "timerfd") == 0)
		timerfd_setup();
	else if (strcmp(mode, "inotify") == 0 && tmpdir[0])
		inotify_setup();
	else if (strcmp(mode, "memfd") == 0)
		memfd_setup();
	else if (strcmp(mode, "fifo") == 0 && tmpdir[0])
		fifo_setup();
	else if (strcmp(mode, "pipes") == 0)
		pipes_setup();
	else if (strcmp(mode, "packets") == 0) {
		packet_pipe_setup();
		packets_write();
	} else
		tgt_fail("unknown mode %s (inotify and fifo need TMPDIR)", mode);
	tgt_ready();
	tgt_wait();
	if (strcmp(mode, "signalfd") == 0)
		signalfd_verify();
	else if (strcmp(mode, "timerfd") == 0)
		timerfd_verify();
	else if (strcmp(mode, "inotify") == 0)
		inotify_verify();
	else if (strcmp(mode, "memfd") == 0)
		memfd_verify();
	else if (strcmp(mode, "pipes") == 0)
		pipes_verify();
	else if (strcmp(mode, "packets") == 0)
		packets_expect("after the refused dump");
	else
		fifo_verify();
	tgt_pass();
}
