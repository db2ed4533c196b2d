/*
 * threads: 50 threads, each in a different state when the process is
 * dumped, in groups:
 *
 *   spin   running a loop that increments its own counter, and checks the
 *          counter in memory against its own copy on every iteration;
 *   mutex  blocked in pthread_mutex_lock on a mutex the main thread holds
 *          (even threads: a normal mutex, futex wait; odd threads: a
 *          priority-inheritance mutex, FUTEX_LOCK_PI, which the kernel
 *          ties to the owner's TID in the futex word);
 *   cond   waiting on a condition variable;
 *   sleep  sleeping in a nanosleep loop; never EINTR, never short;
 *   pipe   blocked in read() on a pipe whose both ends are in this process
 *          (argument "nopipe" turns these into sleep threads);
 *   epoll  blocked in epoll_wait on its own epoll instance watching its own
 *          eventfd.
 *
 * Every thread also has its own signal mask (pthread_sigmask, a distinct
 * set per thread, SIGTERM always blocked so only the main thread takes it),
 * its own __thread values, its own name (pthread_setname_np), its own
 * alternate signal stack (a distinct size per thread), and records its TID
 * and its clear_child_tid address (prctl PR_GET_TID_ADDRESS, which
 * pthread_join relies on).
 *
 * Before ready the main thread waits until every blocked thread is in the
 * system call of its group (/proc/self/task/TID/syscall). After SIGTERM it
 * checks that /proc/self/task lists exactly the recorded TIDs, that the
 * blocked threads are again in their system calls, that every spinner is
 * still counting and every sleeper still completes sleeps; then it
 * releases the mutexes (their unlock must succeed: the PI unlock fails with
 * EPERM unless the futex word still names this thread's TID), broadcasts
 * the condition variable, writes every pipe and eventfd, and joins every
 * thread. Each thread, once released, verifies its group's outcome, then
 * its TID, name, TLS values and signal mask, and leaves a verdict.
 *
 * Usage: threads RESULT_PATH [nopipe]
 */
#include "target.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

enum { G_SPIN, G_MUTEX, G_COND, G_SLEEP, G_PIPE, G_EPOLL, NGROUPS };
static const char *const group_name[NGROUPS] = { "spin", "mutex", "cond", "sleep", "pipe", "epoll" };
/* Thread i belongs to group_of[i % 10]: 5 spinners, 9 of every other group. */
static const int group_of[10] = { G_SPIN, G_MUTEX, G_COND, G_SLEEP, G_PIPE, G_EPOLL,
				  G_MUTEX, G_COND, G_SLEEP, G_PIPE };

#define NTHREADS 50
#define VERDICT_LEN 512

struct thr {
	int idx, group;
	pthread_t pt;
	pid_t tid;
	char name[16];
	sigset_t mask;
	_Atomic unsigned long counter; /* spin: iterations; sleep: completed sleeps */
	unsigned long at_ready;
	int pipefd[2];
	int efd, epfd;
	long sleep_ns;
	atomic_int arrived; /* about to enter its blocking call */
	atomic_int done;    /* verdict is final */
	char verdict[VERDICT_LEN]; /* empty: passed */
	void *tid_address;
};

static struct thr thr[NTHREADS];
#define ALTSTACK_MAX (16 * 1024)
static char altstacks[NTHREADS][ALTSTACK_MAX];
static size_t altstack_size(int idx) { return 8192 + 128 * (size_t)idx; }
static atomic_int released; /* set by main just before it releases anyone */
static atomic_int stop;     /* spinners and sleepers end their loops */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mtx_pi;
static pthread_mutex_t cv_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cv_go;
static int use_pipes = 1;

static __thread unsigned long tls_pattern[4];
static __thread int tls_init = 0x5eed; /* .tdata: a non-zero initial image */

static unsigned long tls_want(int idx, int k)
{
	return 0x7715000000000000UL | ((unsigned long)idx << 16) | (unsigned long)k * 0x1111;
}

static uint64_t epoll_data(int idx) { return 0xe90110000000000UL + (uint64_t)idx * 0x10001; }
static uint64_t efd_value(int idx) { return 1000 + (uint64_t)idx; }

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 2, 3)))
static void set_verdict(struct thr *t, const char *fmt, ...)
{
	va_list ap;

	if (t->verdict[0])
		return; /* keep the first failure */
	va_start(ap, fmt);
	vsnprintf(t->verdict, VERDICT_LEN, fmt, ap);
	va_end(ap);
	if (!t->verdict[0])
		strcpy(t->verdict, "?");
}

/* Reads a small /proc file into buf without a trailing newline. */
static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	return 0;
}

/* The mask thread idx blocks: SIGTERM always; SIGRTMIN+b for every bit b
 * of idx+1 (distinct for every thread); one more real-time signal and
 * SIGUSR1/SIGUSR2 by idx. */
static void thread_mask(int idx, sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGTERM);
	for (int b = 0; b < 6; b++)
		if ((idx + 1) >> b & 1)
			sigaddset(s, SIGRTMIN + b);
	sigaddset(s, SIGRTMIN + 6 + idx % 20);
	if (idx % 2)
		sigaddset(s, SIGUSR1);
	if (idx % 3 == 0)
		sigaddset(s, SIGUSR2);
}

static void main_mask(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGUSR2);
	sigaddset(s, SIGRTMIN + 29);
}

/* Compares the calling thread's blocked mask with want; returns a message
 * or NULL. glibc's internal signals 32 and 33 are left out. */
static const char *mask_diff(const sigset_t *want, char *buf, size_t cap)
{
	sigset_t cur;

	if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
		return "pthread_sigmask(SIG_BLOCK, NULL) failed";
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		if (sig == 32 || sig == 33)
			continue;
		if (sigismember(&cur, sig) != sigismember(want, sig)) {
			snprintf(buf, cap, "signal mask: signal %d is %s, want %s", sig,
				 sigismember(&cur, sig) ? "blocked" : "unblocked",
				 sigismember(want, sig) ? "blocked" : "unblocked");
			return buf;
		}
	}
	return NULL;
}

/* The checks every thread makes once released. */
static void common_checks(struct thr *t)
{
	char path[64], comm[64], name[32], buf[256];
	const char *m;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (tid != t->tid)
		set_verdict(t, "gettid() is %d, was %d", tid, t->tid);
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", t->tid);
	if (read_small(path, comm, sizeof(comm)) < 0)
		set_verdict(t, "read %s: %s", path, strerror(errno));
	else if (strcmp(comm, t->name) != 0)
		set_verdict(t, "comm is %s, want %s", comm, t->name);
	if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0)
		set_verdict(t, "pthread_getname_np failed");
	else if (strcmp(name, t->name) != 0)
		set_verdict(t, "pthread_getname_np is %s, want %s", name, t->name);
	for (int k = 0; k < 4; k++)
		if (tls_pattern[k] != tls_want(t->idx, k))
			set_verdict(t, "TLS value %d is %#lx, want %#lx", k, tls_pattern[k], tls_want(t->idx, k));
	if (tls_init != 0x5eed + t->idx)
		set_verdict(t, "TLS tls_init is %#x, want %#x", tls_init, 0x5eed + t->idx);
	if ((m = mask_diff(&t->mask, buf, sizeof(buf))) != NULL)
		set_verdict(t, "%s", m);
	stack_t ss;
	if (sigaltstack(NULL, &ss) < 0)
		set_verdict(t, "sigaltstack: %s", strerror(errno));
	else if (ss.ss_sp != altstacks[t->idx] || ss.ss_size != altstack_size(t->idx) || ss.ss_flags != 0)
		set_verdict(t, "sigaltstack is %p+%zu flags %d, want %p+%zu flags 0", ss.ss_sp, ss.ss_size,
			    ss.ss_flags, (void *)altstacks[t->idx], altstack_size(t->idx));
	void *addr = NULL;
	if (prctl(PR_GET_TID_ADDRESS, &addr) < 0)
		set_verdict(t, "PR_GET_TID_ADDRESS: %s", strerror(errno));
	else if (addr != t->tid_address)
		set_verdict(t, "clear_child_tid address is %p, want %p", addr, t->tid_address);
}

static void run_spin(struct thr *t)
{
	unsigned long local = atomic_load(&t->counter);

	atomic_store(&t->arrived, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned long v = atomic_load_explicit(&t->counter, memory_order_relaxed);
		if (v != local) {
			set_verdict(t, "spin counter is %lu in memory, %lu in the thread's own copy", v, local);
			return;
		}
		local++;
		atomic_store_explicit(&t->counter, local, memory_order_relaxed);
	}
}

static void run_mutex(struct thr *t)
{
	pthread_mutex_t *m = t->idx % 2 ? &mtx_pi : &mtx;
	int e;

	atomic_store(&t->arrived, 1);
	e = pthread_mutex_lock(m);
	if (e != 0) {
		set_verdict(t, "pthread_mutex_lock: %s", strerror(e));
		return;
	}
	if (!atomic_load(&released))
		set_verdict(t, "acquired the mutex before main released it");
	if ((e = pthread_mutex_unlock(m)) != 0)
		set_verdict(t, "pthread_mutex_unlock: %s", strerror(e));
}

static void run_cond(struct thr *t)
{
	int e;

	pthread_mutex_lock(&cv_mtx);
	atomic_store(&t->arrived, 1);
	while (!cv_go) {
		if ((e = pthread_cond_wait(&cv, &cv_mtx)) != 0) {
			set_verdict(t, "pthread_cond_wait: %s", strerror(e));
			break;
		}
	}
	pthread_mutex_unlock(&cv_mtx);
	if (!atomic_load(&released))
		set_verdict(t, "woke from the condition variable before main released it");
}

static void run_sleep(struct thr *t)
{
	struct timespec req = { 0, t->sleep_ns };

	atomic_store(&t->arrived, 1);
	while (!atomic_load(&stop)) {
		double start = mono(), elapsed;
		int r = nanosleep(&req, NULL), err = errno;

		elapsed = mono() - start;
		if (r < 0) {
			set_verdict(t, "nanosleep %lu returned %s after %.3f s",
				    atomic_load(&t->counter) + 1, strerror(err), elapsed);
			return;
		}
		if (elapsed < (double)t->sleep_ns / 1e9) {
			set_verdict(t, "nanosleep %lu returned 0 after %.6f s, want >= %.3f s",
				    atomic_load(&t->counter) + 1, elapsed, (double)t->sleep_ns / 1e9);
			return;
		}
		atomic_fetch_add(&t->counter, 1);
	}
}

static void run_pipe(struct thr *t)
{
	char buf[64], want[32];
	ssize_t n;

	snprintf(want, sizeof(want), "message for thread %02d\n", t->idx);
	atomic_store(&t->arrived, 1);
	n = read(t->pipefd[0], buf, sizeof(buf) - 1);
	if (n < 0) {
		set_verdict(t, "read(pipe) failed: %s", strerror(errno));
		return;
	}
	if (!atomic_load(&released))
		set_verdict(t, "read(pipe) returned %zd before main wrote", n);
	buf[n] = 0;
	if (strcmp(buf, want) != 0)
		set_verdict(t, "read(pipe) got %zd bytes %.*s, want %s", n, (int)n, buf, want);
}

static void run_epoll(struct thr *t)
{
	struct epoll_event ev[4];
	uint64_t v;
	int n, eintr = 0;

	atomic_store(&t->arrived, 1);
	for (;;) {
		n = epoll_wait(t->epfd, ev, 4, -1);
		/* epoll_wait fails with EINTR whenever the thread is stopped,
		 * by a debugger or a freeze, even without a handler (signal(7)):
		 * applications retry, and so does this one. */
		if (n < 0 && errno == EINTR) {
			eintr++;
			continue;
		}
		break;
	}
	if (n < 0) {
		set_verdict(t, "epoll_wait failed: %s", strerror(errno));
		return;
	}
	if (!atomic_load(&released))
		set_verdict(t, "epoll_wait returned %d before main wrote the eventfd", n);
	if (n != 1) {
		set_verdict(t, "epoll_wait returned %d events, want 1", n);
		return;
	}
	if (ev[0].data.u64 != epoll_data(t->idx) || ev[0].events != EPOLLIN)
		set_verdict(t, "epoll_wait event data %#llx events %#x, want data %#llx events EPOLLIN",
			    (unsigned long long)ev[0].data.u64, ev[0].events,
			    (unsigned long long)epoll_data(t->idx));
	if (read(t->efd, &v, sizeof(v)) != sizeof(v))
		set_verdict(t, "read(eventfd): %s", strerror(errno));
	else if (v != efd_value(t->idx))
		set_verdict(t, "eventfd read %llu, want %llu", (unsigned long long)v,
			    (unsigned long long)efd_value(t->idx));
	if (eintr)
		tgt_log("thread %02d: epoll_wait was interrupted %d times (EINTR)\n", t->idx, eintr);
}

static void *worker(void *arg)
{
	struct thr *t = arg;
	int e;

	t->tid = (pid_t)syscall(SYS_gettid);
	snprintf(t->name, sizeof(t->name), "t%02d-%s", t->idx, group_name[t->group]);
	if ((e = pthread_setname_np(pthread_self(), t->name)) != 0)
		set_verdict(t, "pthread_setname_np: %s", strerror(e));
	thread_mask(t->idx, &t->mask);
	if ((e = pthread_sigmask(SIG_SETMASK, &t->mask, NULL)) != 0)
		set_verdict(t, "pthread_sigmask: %s", strerror(e));
	stack_t ss = {.ss_sp = altstacks[t->idx], .ss_size = altstack_size(t->idx)};
	if (sigaltstack(&ss, NULL) < 0)
		set_verdict(t, "sigaltstack: %s", strerror(errno));
	if (prctl(PR_GET_TID_ADDRESS, &t->tid_address) < 0)
		set_verdict(t, "PR_GET_TID_ADDRESS: %s", strerror(errno));
	if (tls_init != 0x5eed)
		set_verdict(t, "TLS tls_init starts as %#x, want 0x5eed", tls_init);
	tls_init = 0x5eed + t->idx;
	for (int k = 0; k < 4; k++)
		tls_pattern[k] = tls_want(t->idx, k);

	if (!t->verdict[0]) {
		switch (t->group) {
		case G_SPIN: run_spin(t); break;
		case G_MUTEX: run_mutex(t); break;
		case G_COND: run_cond(t); break;
		case G_SLEEP: run_sleep(t); break;
		case G_PIPE: run_pipe(t); break;
		case G_EPOLL: run_epoll(t); break;
		}
	}
	/* Nothing to check for a thread that failed before it was released:
	 * its verdict is kept as is. */
	if (!t->verdict[0])
		common_checks(t);
	atomic_store(&t->done, 1);
	return NULL;
}

/* Reports the first thread that has already given up. */
static void fail_if_thread_failed(void)
{
	for (int i = 0; i < NTHREADS; i++)
		if (atomic_load(&thr[i].done) && thr[i].verdict[0])
			tgt_fail("thread %02d (%s, tid %d): %s", i, group_name[thr[i].group], thr[i].tid,
				 thr[i].verdict);
}

/* The system call a blocked thread of group g sits in, or -1 for none. */
static int syscall_ok(int g, long nr)
{
	switch (g) {
	case G_MUTEX:
	case G_COND:
		return nr == SYS_futex;
	case G_SLEEP:
		/* glibc's nanosleep is clock_nanosleep; a sleep interrupted
		 * by a stop continues in restart_syscall. */
		return nr == SYS_clock_nanosleep || nr == SYS_nanosleep || nr == SYS_restart_syscall;
	case G_PIPE:
		return nr == SYS_read;
	case G_EPOLL:
		return nr == SYS_epoll_wait || nr == SYS_epoll_pwait;
	}
	return 1;
}

/* Waits until every blocked thread is inside its group's system call. */
static void wait_blocked(const char *when)
{
	char path[64], buf[256];
	double deadline = mono() + 5;

	for (int i = 0; i < NTHREADS; i++) {
		struct thr *t = &thr[i];
		long nr = -2;

		if (t->group == G_SPIN)
			continue;
		for (;;) {
			fail_if_thread_failed();
			snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", t->tid);
			if (read_small(path, buf, sizeof(buf)) < 0)
				tgt_fail("%s: read %s: %s", when, path, strerror(errno));
			nr = strcmp(buf, "running") == 0 ? -1 : strtol(buf, NULL, 10);
			if (syscall_ok(t->group, nr))
				break;
			if (mono() > deadline)
				tgt_fail("%s: thread %02d (%s, tid %d) is in system call %s, not its group's",
					 when, i, group_name[t->group], t->tid, buf);
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
}

/* /proc/self/task must list the main thread and exactly the recorded TIDs. */
static void check_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!d)
		tgt_fail("opendir /proc/self/task: %s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		int tid, found;

		if (de->d_name[0] == '.')
			continue;
		tid = atoi(de->d_name);
		found = tid == getpid();
		for (int i = 0; i < NTHREADS && !found; i++)
			found = thr[i].tid == tid;
		if (!found)
			tgt_fail("/proc/self/task lists tid %d, which is not one of this process's threads", tid);
		n++;
	}
	closedir(d);
	if (n != NTHREADS + 1)
		tgt_fail("/proc/self/task lists %d tasks, want %d", n, NTHREADS + 1);
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t ma;
	sigset_t s, mmask;
	char early[1024] = "", buf[256];
	unsigned long last[NTHREADS] = { 0 };
	const char *m;
	int e;

	tgt_init(argc, argv);
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "nopipe") == 0)
			use_pipes = 0;
		else
			tgt_fail("unknown argument %s", argv[i]);
	}
	tgt_log("threads: pid %d, pipes %s\n", getpid(), use_pipes ? "on" : "off");

	pthread_mutexattr_init(&ma);
	if ((e = pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT)) != 0)
		tgt_fail("pthread_mutexattr_setprotocol: %s", strerror(e));
	if ((e = pthread_mutex_init(&mtx_pi, &ma)) != 0)
		tgt_fail("pthread_mutex_init(PI): %s", strerror(e));
	pthread_mutex_lock(&mtx);
	if ((e = pthread_mutex_lock(&mtx_pi)) != 0)
		tgt_fail("pthread_mutex_lock(PI): %s", strerror(e));

	/* No thread may take SIGTERM before it has blocked it. */
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		struct thr *t = &thr[i];

		t->idx = i;
		t->group = group_of[i % 10];
		if (t->group == G_PIPE && !use_pipes)
			t->group = G_SLEEP;
		t->sleep_ns = (100 + 7 * (long)i) * 1000 * 1000;
		t->pipefd[0] = t->pipefd[1] = t->efd = t->epfd = -1;
		if (t->group == G_PIPE && pipe2(t->pipefd, O_CLOEXEC) < 0)
			tgt_fail("pipe2: %s", strerror(errno));
		if (t->group == G_EPOLL) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = epoll_data(i) };

			t->efd = eventfd(0, EFD_CLOEXEC);
			t->epfd = epoll_create1(EPOLL_CLOEXEC);
			if (t->efd < 0 || t->epfd < 0)
				tgt_fail("eventfd/epoll_create1: %s", strerror(errno));
			if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->efd, &ev) < 0)
				tgt_fail("epoll_ctl: %s", strerror(errno));
		}
		if ((e = pthread_create(&t->pt, NULL, worker, t)) != 0)
			tgt_fail("pthread_create %d: %s", i, strerror(e));
	}
	main_mask(&mmask);
	pthread_sigmask(SIG_SETMASK, &mmask, NULL);

	for (int i = 0; i < NTHREADS; i++) {
		double deadline = mono() + 5;

		while (!atomic_load(&thr[i].arrived)) {
			fail_if_thread_failed();
			if (mono() > deadline)
				tgt_fail("thread %02d did not start", i);
			sched_yield();
		}
	}
	wait_blocked("before ready");
	for (int i = 0; i < NTHREADS; i++)
		last[i] = thr[i].at_ready = atomic_load(&thr[i].counter);
	tgt_ready();

	/* While waiting, spinner counters must never go backwards. */
	while (!got_term) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		for (int i = 0; i < NTHREADS; i++) {
			unsigned long v = atomic_load(&thr[i].counter);

			if (thr[i].group == G_SPIN && v < last[i] && !early[0])
				snprintf(early, sizeof(early), "thread %02d: spin counter went backwards from %lu to %lu",
					 i, last[i], v);
			last[i] = v;
		}
	}

	/* Verification. */
	fail_if_thread_failed();
	if (early[0])
		tgt_fail("%s", early);
	if ((pid_t)syscall(SYS_gettid) != getpid())
		tgt_fail("main thread's tid %ld is not the pid %d", (long)syscall(SYS_gettid), getpid());
	if ((m = mask_diff(&mmask, buf, sizeof(buf))) != NULL)
		tgt_fail("main thread: %s", m);
	check_tasks();
	wait_blocked("after SIGTERM");

	/* Spinners keep counting, sleepers keep completing sleeps. */
	{
		unsigned long at_term[NTHREADS];
		double deadline = mono() + 5;

		for (int i = 0; i < NTHREADS; i++)
			at_term[i] = atomic_load(&thr[i].counter);
		for (int i = 0; i < NTHREADS; i++) {
			struct thr *t = &thr[i];

			if (t->group == G_SPIN && at_term[i] <= t->at_ready)
				tgt_fail("thread %02d: spin counter %lu at SIGTERM, %lu at ready: it did not run",
					 i, at_term[i], t->at_ready);
			if (t->group != G_SPIN && t->group != G_SLEEP)
				continue;
			while (atomic_load(&t->counter) <= at_term[i]) {
				struct timespec ts = { 0, 2 * 1000 * 1000 };

				fail_if_thread_failed();
				if (mono() > deadline)
					tgt_fail("thread %02d (%s): counter stuck at %lu after SIGTERM", i,
						 group_name[t->group], at_term[i]);
				nanosleep(&ts, NULL);
			}
		}
	}

	/* Release everyone. */
	atomic_store(&released, 1);
	atomic_store(&stop, 1);
	if ((e = pthread_mutex_unlock(&mtx)) != 0)
		tgt_fail("unlock the mutex: %s", strerror(e));
	if ((e = pthread_mutex_unlock(&mtx_pi)) != 0)
		tgt_fail("unlock the priority-inheritance mutex: %s", strerror(e));
	pthread_mutex_lock(&cv_mtx);
	cv_go = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&cv_mtx);
	for (int i = 0; i < NTHREADS; i++) {
		struct thr *t = &thr[i];

		if (t->group == G_PIPE) {
			char msg[32];

			snprintf(msg, sizeof(msg), "message for thread %02d\n", i);
			if (write(t->pipefd[1], msg, strlen(msg)) != (ssize_t)strlen(msg))
				tgt_fail("write pipe of thread %02d: %s", i, strerror(errno));
		}
		if (t->group == G_EPOLL) {
			uint64_t v = efd_value(i);

			if (write(t->efd, &v, sizeof(v)) != sizeof(v))
				tgt_fail("write eventfd of thread %02d: %s", i, strerror(errno));
		}
	}
	for (int i = 0; i < NTHREADS; i++) {
		struct thr *t = &thr[i];
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if ((e = pthread_timedjoin_np(t->pt, NULL, &ts)) != 0)
			tgt_fail("thread %02d (%s, tid %d) did not finish after its release: %s", i,
				 group_name[t->group], t->tid, strerror(e));
		if (t->verdict[0])
			tgt_fail("thread %02d (%s, tid %d): %s", i, group_name[t->group], t->tid, t->verdict);
	}
	tgt_pass();
}
