/*
 * libgocr: checkpoint callbacks (gocr.h), speaking the protocol of
 * protocol.h with gocr (docs/CALLBACKS.md).
 *
 * The first registration maps the shared page and starts a helper thread
 * that waits, on a futex in the page, for gocr's requests and runs the
 * callbacks. Everything it leaves in the process is state gocr restores: a
 * memfd mapping, a thread with every signal blocked that waits in futex().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gocr.h"
#include "protocol.h"

/* Built with -fvisibility=hidden: only gocr.h's functions are exported. */
#define GOCR_API __attribute__((visibility("default")))

struct callback {
	gocr_callback_t fn;
	void *arg;
};

/* Fixed arrays: libgocr never allocates memory, so the helper thread
 * takes no malloc arena of its own. */
#define MAX_CALLBACKS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct callback callbacks[MAX_CALLBACKS]; /* under lock */
static int ncallbacks;                            /* under lock */
static struct gocr_cb_page *page;                 /* set once, under lock */

/* One checkpoint, as the helper thread runs it. */
struct run {
	struct callback list[MAX_CALLBACKS]; /* a copy: a callback may register another */
	char called[MAX_CALLBACKS]; /* called[i]: callback i called gocr_checkpoint() */
	int n;
	int depth;     /* the callback running now; -1 when none */
	int verdict;   /* gocr_checkpoint()'s answer, once there is one */
	uint32_t req;  /* the request the verdict came with (or the CHECKPOINT) */
};
static struct run run; /* the helper thread's */

/* Only the helper thread has a run, and only while it runs callbacks. */
static __thread struct run *current;

/* What a restore changes of this process (its start time, and the boot if
 * it moved to another machine), to tell a restart by itself when the gocr
 * that restored it died before saying so. Helper thread only. */
struct identity {
	unsigned long long start;
	char boot[40];
};
static struct identity self;

static uint32_t load(const uint32_t *w) { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }

static void store(uint32_t *w, uint32_t v) { __atomic_store_n(w, v, __ATOMIC_RELEASE); }

static uint32_t seq_of(uint32_t w) { return w >> GOCR_CB_SEQ_SHIFT; }

static uint32_t code_of(uint32_t w) { return w & GOCR_CB_CODE_MASK; }

/* Shared futexes: gocr waits and wakes on the same words from its own
 * mapping of the page (man 2 futex). A wait with no timeout is restarted
 * after a checkpoint's ptrace stop as any interrupted call is. */
static void futex_wait(uint32_t *w, uint32_t val, const struct timespec *timeout)
{
	syscall(SYS_futex, w, FUTEX_WAIT, val, timeout, NULL, 0);
}

static void futex_wake(uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

static void set_status(uint32_t seq, uint32_t code)
{
	store(&page->status, seq << GOCR_CB_SEQ_SHIFT | code);
	futex_wake(&page->status);
}

/* read_start reads field 22 of /proc/PID/stat (pid 0: this process), the
 * start time in clock ticks after boot (man 5 proc_pid_stat). The command
 * name, field 2, is in parentheses and may hold spaces and ')', so fields
 * are counted from the last ')'. */
static int read_start(pid_t pid, unsigned long long *start)
{
	char path[64], buf[1024];
	char *p, *end;
	ssize_t n;
	int fd, field;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	else
		strcpy(path, "/proc/self/stat");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* p + 1 is the space before field 3. */
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	*start = strtoull(p + 1, &end, 10);
	return end == p + 1 ? -1 : 0;
}

static void read_identity(struct identity *id)
{
	int fd;
	ssize_t n;

	memset(id, 0, sizeof(*id));
	read_start(0, &id->start);
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, id->boot, sizeof(id->boot) - 1);
		if (n < 0)
			id->boot[0] = 0;
		close(fd);
	}
}

/* restarted_by_itself: this process is a restored one since the last look. */
static int restarted_by_itself(void)
{
	struct identity now;

	read_identity(&now);
	if (now.start == self.start && strcmp(now.boot, self.boot) == 0)
		return 0;
	self = now;
	return 1;
}

/* gocr_gone: the gocr that sent the request no longer runs. */
static int gocr_gone(void)
{
	unsigned long long start;
	pid_t pid = (pid_t)__atomic_load_n(&page->gocr_pid, __ATOMIC_ACQUIRE);

	if (pid <= 0 || read_start(pid, &start) < 0)
		return 1;
	return start != page->gocr_start;
}

/* wait_verdict: every callback is ready; tell gocr and wait until it says
 * how the checkpoint ended. Bounded by gocr's life: once a second, this
 * looks whether the process was restored (its start time changed) or the
 * gocr that asked died. */
static int wait_verdict(struct run *r)
{
	uint32_t seq = seq_of(r->req);

	set_status(seq, GOCR_CB_READY);
	for (;;) {
		uint32_t req = load(&page->request);
		struct timespec second = { 1, 0 };

		if (seq_of(req) != seq) {
			r->req = req;
			switch (code_of(req)) {
			case GOCR_CB_REQ_CONTINUE:
				r->verdict = GOCR_CONTINUE;
				break;
			case GOCR_CB_REQ_RESTARTED:
				r->verdict = GOCR_RESTARTED;
				read_identity(&self);
				break;
			default:
				r->verdict = -1;
			}
			break;
		}
		futex_wait(&page->request, req, &second);
		if (load(&page->request) != req)
			continue;
		if (restarted_by_itself()) {
			r->verdict = GOCR_RESTARTED;
			break;
		}
		if (gocr_gone()) {
			r->verdict = -1;
			break;
		}
	}
	set_status(seq_of(r->req), GOCR_CB_AFTER);
	return r->verdict;
}

/* run_from runs callback i, and the ones below it unless it called
 * gocr_checkpoint() itself (which runs them). Callback 0's
 * gocr_checkpoint() waits for the verdict. */
static void run_from(struct run *r, int i)
{
	if (i < 0) {
		wait_verdict(r);
		return;
	}
	r->depth = i;
	r->called[i] = 0;
	r->list[i].fn(r->list[i].arg);
	if (!r->called[i]) {
		r->called[i] = 1;
		run_from(r, i - 1);
	}
	r->depth = i + 1 < r->n ? i + 1 : -1;
}

GOCR_API int gocr_checkpoint(void)
{
	struct run *r = current;
	int i;

	if (!r || r->depth < 0) {
		errno = EINVAL;
		return -1;
	}
	i = r->depth;
	if (!r->called[i]) {
		r->called[i] = 1;
		run_from(r, i - 1);
		r->depth = i;
	}
	if (r->verdict < 0)
		errno = ECANCELED;
	return r->verdict;
}

/* run_checkpoint runs every callback for request req and returns the
 * last request it consumed. */
static uint32_t run_checkpoint(uint32_t req)
{
	struct run *r = &run;

	set_status(seq_of(req), GOCR_CB_BUSY);
	r->depth = -1;
	r->verdict = -1;
	r->req = req;
	pthread_mutex_lock(&lock);
	r->n = ncallbacks;
	memcpy(r->list, callbacks, sizeof(r->list[0]) * (size_t)r->n);
	pthread_mutex_unlock(&lock);
	current = r;
	run_from(r, r->n - 1);
	current = NULL;
	return r->req;
}

static void *helper_main(void *unused)
{
	uint32_t seen;

	(void)unused;
	prctl(PR_SET_NAME, GOCR_CB_MEMFD_NAME);
	read_identity(&self);
	/* Read before the page is published (start_helper waits for the tid),
	 * so no request can come before it. */
	seen = load(&page->request);
	store(&page->tid, (uint32_t)syscall(SYS_gettid));
	futex_wake(&page->tid);
	for (;;) {
		uint32_t req = load(&page->request);

		if (req == seen) {
			futex_wait(&page->request, seen, NULL);
			continue;
		}
		seen = req;
		/* A verdict with no checkpoint running (one this thread ended
		 * by itself) is only acknowledged. */
		if (code_of(req) == GOCR_CB_REQ_CHECKPOINT)
			seen = run_checkpoint(req);
		set_status(seq_of(seen), GOCR_CB_IDLE);
	}
	return NULL;
}

/* In a child of fork() only the forking thread exists: no helper, and the
 * page is not there either (MADV_DONTFORK). It starts afresh, even if a
 * callback forked it: gocr_checkpoint() in the child fails with EINVAL. */
static void child_after_fork(void)
{
	current = NULL;
	pthread_mutex_init(&lock, NULL);
	ncallbacks = 0;
	page = NULL;
}

/* start_helper maps the page and starts the helper; called under lock. */
static int start_helper(void)
{
	static int atfork_set;
	struct gocr_cb_page *p;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	int fd, err;

	if (!atfork_set) {
		if ((err = pthread_atfork(NULL, NULL, child_after_fork)) != 0) {
			errno = err;
			return -1;
		}
		atfork_set = 1;
	}
	fd = memfd_create(GOCR_CB_MEMFD_NAME, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, GOCR_CB_PAGE_SIZE) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	p = mmap(NULL, GOCR_CB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	close(fd);
	if (p == MAP_FAILED) {
		errno = err;
		return -1;
	}
	madvise(p, GOCR_CB_PAGE_SIZE, MADV_DONTFORK);
	p->version = GOCR_CB_VERSION;
	p->pid = (uint32_t)getpid();
	page = p;

	/* The helper starts with every signal blocked, so it never takes a
	 * signal meant for the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&thread, &attr, helper_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		page = NULL;
		munmap(p, GOCR_CB_PAGE_SIZE);
		errno = err;
		return -1;
	}
	while (load(&p->tid) == 0)
		futex_wait(&p->tid, 0, NULL);
	/* Complete: from now on gocr runs the callbacks before a checkpoint. */
	store(&p->magic, GOCR_CB_MAGIC);
	return 0;
}

GOCR_API int gocr_register_callback(gocr_callback_t fn, void *arg, int flags)
{
	int id;

	if (!fn || (flags & ~(GOCR_CALLBACK_THREAD | GOCR_CALLBACK_SIGNAL))) {
		errno = EINVAL;
		return -1;
	}
	if (flags & GOCR_CALLBACK_SIGNAL) {
		errno = ENOTSUP;
		return -1;
	}
	pthread_mutex_lock(&lock);
	if (ncallbacks == MAX_CALLBACKS) {
		pthread_mutex_unlock(&lock);
		errno = ENOSPC;
		return -1;
	}
	if (!page && start_helper() < 0) {
		int err = errno;

		pthread_mutex_unlock(&lock);
		errno = err;
		return -1;
	}
	callbacks[ncallbacks].fn = fn;
	callbacks[ncallbacks].arg = arg;
	id = ncallbacks++;
	pthread_mutex_unlock(&lock);
	return id;
}
