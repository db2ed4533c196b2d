/*
 * callbacks: a program using libgocr's checkpoint callbacks (libgocr/gocr.h).
 *
 *	callbacks RESULT_PATH MODE
 *
 * It holds a deleted scratch file at fd SCRATCH_FD, which its callbacks
 * replace around a checkpoint (its contents tell whether they ran), and
 * records buffered in memory that must be on disk before a checkpoint.
 * Two callbacks:
 *   "scratch", registered first: closes the scratch file before the
 *       checkpoint and opens a new one after;
 *   "flush", registered second, so its part before gocr_checkpoint() runs
 *       first and its part after runs last: writes the buffered records to
 *       RESULT_PATH.flushed before.
 * MODE is what the checkpoint must end in: "continue" (dump
 * --leave-running), "restarted" (dump, then restore), "hang": one
 * callback that is not ready until SIGTERM, long after the dump gave up, so
 * its gocr_checkpoint() must then answer -1 with ECANCELED, "stopped":
 * a dump while the process was stopped must not have asked it at all, or
 * "abandoned": gocr dies after the callbacks were ready, so libgocr must
 * find out by itself and answer -1 with ECANCELED. The target also
 * reads its callbacks page to check gocr itself sent the answer (not
 * libgocr guessing it after gocr went away).
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include "gocr.h"
#include "protocol.h"

#define SCRATCH_FD 40
#define NRECORDS 100

static char dir[4096];
static char pending[NRECORDS * 16];
static size_t npending;

static int verdict[2] = { -2, -2 }; /* per callback: what gocr_checkpoint() said */
static int verdict_errno[2];
static char order[8][24];
static int norder;
static int runs[2];
static volatile int done; /* written by the helper thread, read by main */

static void log_step(const char *step)
{
	if (norder < 8)
		snprintf(order[norder++], sizeof(order[0]), "%s", step);
}

/* open_scratch opens a new deleted file at SCRATCH_FD holding text. */
static int open_scratch(const char *text)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	if (fd != SCRATCH_FD) {
		if (dup3(fd, SCRATCH_FD, O_CLOEXEC) < 0)
			return -1;
		close(fd);
	}
	tgt_write_all(SCRATCH_FD, text, strlen(text));
	return 0;
}

static int scratch_cb(void *arg)
{
	(void)arg;
	runs[0]++;
	log_step("scratch-before");
	close(SCRATCH_FD);
	verdict[0] = gocr_checkpoint();
	verdict_errno[0] = errno;
	log_step("scratch-after");
	open_scratch("scratch after\n");
	return 0;
}

static int flush_cb(void *arg)
{
	char path[4096 + 16];
	int fd;

	(void)arg;
	runs[1]++;
	log_step("flush-before");
	snprintf(path, sizeof(path), "%s.flushed", tgt_result_path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		tgt_write_all(fd, pending, npending);
		fsync(fd);
		close(fd);
	}
	verdict[1] = gocr_checkpoint();
	verdict_errno[1] = errno;
	log_step("flush-after");
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	return 0;
}

static int hang_cb(void *arg)
{
	(void)arg;
	runs[0]++;
	log_step("hang-before");
	while (!got_term) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	verdict[0] = gocr_checkpoint();
	verdict_errno[0] = errno;
	log_step("hang-after");
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	return 0;
}

/* last_request reads the request word gocr last wrote in this process's
 * callbacks page, found in /proc/self/maps. */
static uint32_t last_request(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long start = 0;

	if (!f)
		tgt_fail("open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "/memfd:" GOCR_CB_MEMFD_NAME " (deleted)")) {
			start = strtoul(line, NULL, 16);
			break;
		}
	}
	fclose(f);
	if (!start)
		tgt_fail("no callbacks page in /proc/self/maps");
	return __atomic_load_n(&((struct gocr_cb_page *)start)->request, __ATOMIC_ACQUIRE);
}

static void wait_done(void)
{
	for (int i = 0; i < 1000 && !__atomic_load_n(&done, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		tgt_fail("the callbacks did not finish within 10 s of SIGTERM (ran %d and %d times; steps: %d)",
			 runs[0], runs[1], norder);
}

static void check_order(const char *const *want, int n)
{
	if (norder != n)
		tgt_fail("%d callback steps, want %d (first: %s)", norder, n, norder ? order[0] : "none");
	for (int i = 0; i < n; i++)
		if (strcmp(order[i], want[i]) != 0)
			tgt_fail("callback step %d is %s, want %s", i + 1, order[i], want[i]);
}

static void check_files(void)
{
	char path[4096 + 16], buf[sizeof(pending) + 1];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s.flushed", tgt_result_path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != (ssize_t)npending || memcmp(buf, pending, npending) != 0)
		tgt_fail("%s holds %zd bytes, not the %zu buffered before the checkpoint", path, n, npending);

	if (fstat(SCRATCH_FD, &st) < 0)
		tgt_fail("the scratch file was not reopened: fstat fd %d: %s", SCRATCH_FD, strerror(errno));
	if (st.st_nlink != 0 || !S_ISREG(st.st_mode))
		tgt_fail("fd %d is not a deleted scratch file (nlink %lu)", SCRATCH_FD, (unsigned long)st.st_nlink);
	n = pread(SCRATCH_FD, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		tgt_fail("read the scratch file: %s", strerror(errno));
	buf[n] = 0;
	if (strcmp(buf, "scratch after\n") != 0)
		tgt_fail("the scratch file holds %s, not what the callback wrote after the checkpoint", buf);
}

int main(int argc, char **argv)
{
	const char *mode;
	char *slash;
	int want, want_req;

	tgt_init(argc, argv);
	if (argc != 3)
		tgt_fail("usage: callbacks RESULT_PATH continue|restarted|hang");
	mode = argv[2];
	snprintf(dir, sizeof(dir), "%s", tgt_result_path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;

	for (int i = 1; i <= NRECORDS; i++)
		npending += (size_t)snprintf(pending + npending, sizeof(pending) - npending, "record %d\n", i);

	/* The calls that must be refused. */
	if (gocr_checkpoint() != -1 || errno != EINVAL)
		tgt_fail("gocr_checkpoint() outside a callback did not fail with EINVAL");
	if (gocr_register_callback(flush_cb, NULL, GOCR_CALLBACK_SIGNAL) != -1 || errno != ENOTSUP)
		tgt_fail("GOCR_CALLBACK_SIGNAL was not refused with ENOTSUP");
	if (gocr_register_callback(NULL, NULL, GOCR_CALLBACK_THREAD) != -1 || errno != EINVAL)
		tgt_fail("a NULL callback was not refused with EINVAL");

	if (strcmp(mode, "hang") == 0) {
		if (gocr_register_callback(hang_cb, NULL, GOCR_CALLBACK_THREAD) != 0)
			tgt_fail("gocr_register_callback: %s", strerror(errno));
	} else {
		if (open_scratch("scratch before\n") < 0)
			tgt_fail("open a deleted scratch file in %s: %s", dir, strerror(errno));
		if (gocr_register_callback(scratch_cb, NULL, GOCR_CALLBACK_THREAD) != 0)
			tgt_fail("gocr_register_callback(scratch): %s", strerror(errno));
		if (gocr_register_callback(flush_cb, NULL, 0) != 1)
			tgt_fail("gocr_register_callback(flush): %s", strerror(errno));
	}

	tgt_ready();
	tgt_wait();

	if (strcmp(mode, "stopped") == 0) {
		char buf[64];
		ssize_t n = pread(SCRATCH_FD, buf, sizeof(buf) - 1, 0);

		if (norder != 0 || runs[0] != 0 || runs[1] != 0)
			tgt_fail("the callbacks ran (%d steps) though the dump gave up on the stopped process", norder);
		if (last_request() != 0)
			tgt_fail("gocr sent request %#x to a stopped process", last_request());
		if (n < 0 || (buf[n] = 0, strcmp(buf, "scratch before\n") != 0))
			tgt_fail("the scratch file changed though no callback ran");
		tgt_pass();
	}
	wait_done();

	if (strcmp(mode, "hang") == 0) {
		static const char *const steps[] = { "hang-before", "hang-after" };

		check_order(steps, 2);
		if (verdict[0] != -1 || verdict_errno[0] != ECANCELED)
			tgt_fail("gocr_checkpoint() after the dump gave up returned %d (%s), want -1 (ECANCELED)",
				 verdict[0], strerror(verdict_errno[0]));
		if ((last_request() & GOCR_CB_CODE_MASK) != GOCR_CB_REQ_FAILED)
			tgt_fail("gocr's last request is %#x, not FAILED", last_request());
		tgt_pass();
	}

	if (strcmp(mode, "continue") == 0) {
		want = GOCR_CONTINUE;
		want_req = GOCR_CB_REQ_CONTINUE;
	} else if (strcmp(mode, "restarted") == 0) {
		want = GOCR_RESTARTED;
		want_req = GOCR_CB_REQ_RESTARTED;
	} else if (strcmp(mode, "abandoned") == 0) {
		want = -1;
		want_req = GOCR_CB_REQ_CHECKPOINT; /* no answer came */
	} else {
		tgt_fail("unknown mode %s", mode);
	}
	{
		static const char *const steps[] = { "flush-before", "scratch-before", "scratch-after", "flush-after" };

		check_order(steps, 4);
	}
	if (runs[0] != 1 || runs[1] != 1)
		tgt_fail("the callbacks ran %d and %d times, want once each", runs[0], runs[1]);
	for (int i = 0; i < 2; i++)
		if (verdict[i] != want || (want < 0 && verdict_errno[i] != ECANCELED))
			tgt_fail("callback %d: gocr_checkpoint() returned %d (%s), want %d (%s)", i, verdict[i],
				 strerror(verdict_errno[i]), want, mode);
	if ((last_request() & GOCR_CB_CODE_MASK) != (uint32_t)want_req)
		tgt_fail("gocr's last request is %#x, want code %d: gocr did not send the answer", last_request(), want_req);
	check_files();
	tgt_pass();
}
