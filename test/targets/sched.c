/*
 * sched: each thread's scheduling comes back as it was: nice, policy with
 * its RT priority and SCHED_FLAG_RESET_ON_FORK, and CPU affinity.
 *
 *   main:  SCHED_OTHER, nice 5, bound to one CPU (CPU 0 if allowed)
 *   batch: SCHED_BATCH, nice 10, bound to another allowed CPU (CPU 1 on a
 *          machine with two; the same one if only one is allowed)
 *   fifo:  nice 3, then SCHED_FIFO priority 10 with
 *          SCHED_FLAG_RESET_ON_FORK; the nice stays for a return to a
 *          fair policy; all the CPUs the process had
 *
 * The main thread checks every thread from outside it (sched_getattr,
 * getpriority and sched_getaffinity on its TID) before it reports ready,
 * so the check is known good, and again after the restore.
 *
 * With "deadline" as its second argument it instead runs one thread under
 * SCHED_DEADLINE, which a dump must refuse.
 */
#include "target.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* struct sched_attr, include/uapi/linux/sched/types.h (SCHED_ATTR_SIZE_VER0) */
struct tgt_sched_attr {
	unsigned int size;
	unsigned int sched_policy;
	unsigned long long sched_flags;
	int sched_nice;
	unsigned int sched_priority;
	unsigned long long sched_runtime, sched_deadline, sched_period;
};
#define TGT_SCHED_FLAG_RESET_ON_FORK 0x01

struct want {
	const char *name;
	volatile pid_t tid;
	int policy, nice, prio;
	unsigned long long flags;
	cpu_set_t cpus;
};
static struct want want[3];
static volatile int setup_done, setup_failed;
static char setup_err[256];

static int set_attr(int policy, int nice, int prio, unsigned long long flags)
{
	struct tgt_sched_attr a = { .size = sizeof(a), .sched_policy = (unsigned)policy,
				    .sched_flags = flags, .sched_nice = nice, .sched_priority = (unsigned)prio };
	return (int)syscall(SYS_sched_setattr, 0, &a, 0);
}

/* Sets the calling thread as w says, reporting a failure to main. */
static void apply(struct want *w)
{
	w->tid = (pid_t)syscall(SYS_gettid);
	if (setpriority(PRIO_PROCESS, 0, w->nice) < 0 ||
	    (w->policy != SCHED_OTHER && set_attr(w->policy, w->nice, w->prio, w->flags) < 0) ||
	    sched_setaffinity(0, sizeof(w->cpus), &w->cpus) < 0) {
		snprintf(setup_err, sizeof(setup_err), "%s: set scheduling: %s", w->name, strerror(errno));
		setup_failed = 1;
	}
}

static void *thread_main(void *arg)
{
	struct want *w = arg;
	apply(w);
	__atomic_add_fetch(&setup_done, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

static void check(const char *when)
{
	for (int i = 0; i < 3; i++) {
		struct want *w = &want[i];
		struct tgt_sched_attr a;
		memset(&a, 0, sizeof(a));
		if (syscall(SYS_sched_getattr, w->tid, &a, sizeof(a), 0) < 0)
			tgt_fail("%s: %s: sched_getattr: %s", when, w->name, strerror(errno));
		if ((int)a.sched_policy != w->policy || (int)a.sched_priority != w->prio ||
		    a.sched_flags != w->flags)
			tgt_fail("%s: %s has policy %u priority %u flags %#llx, want %d %d %#llx", when, w->name,
				 a.sched_policy, a.sched_priority, a.sched_flags, w->policy, w->prio, w->flags);
		errno = 0;
		int nice = getpriority(PRIO_PROCESS, (id_t)w->tid);
		if (errno != 0)
			tgt_fail("%s: %s: getpriority: %s", when, w->name, strerror(errno));
		if (nice != w->nice)
			tgt_fail("%s: %s has nice %d, want %d", when, w->name, nice, w->nice);
		cpu_set_t got;
		if (sched_getaffinity(w->tid, sizeof(got), &got) < 0)
			tgt_fail("%s: %s: sched_getaffinity: %s", when, w->name, strerror(errno));
		if (!CPU_EQUAL(&got, &w->cpus))
			tgt_fail("%s: %s may run on %d CPUs (CPU 0: %d, CPU 1: %d), want %d (CPU 0: %d, CPU 1: %d)",
				 when, w->name, CPU_COUNT(&got), CPU_ISSET(0, &got), CPU_ISSET(1, &got),
				 CPU_COUNT(&w->cpus), CPU_ISSET(0, &w->cpus), CPU_ISSET(1, &w->cpus));
	}
}

#define TGT_SCHED_DEADLINE 6

static void *deadline_main(void *arg)
{
	(void)arg;
	struct tgt_sched_attr a = { .size = sizeof(a), .sched_policy = TGT_SCHED_DEADLINE,
				    .sched_runtime = 1000000, .sched_deadline = 100000000,
				    .sched_period = 100000000 };
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) {
		snprintf(setup_err, sizeof(setup_err), "SCHED_DEADLINE: %s", strerror(errno));
		setup_failed = 1;
	}
	__atomic_add_fetch(&setup_done, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc > 2 && strcmp(argv[2], "deadline") == 0) {
		pthread_t th;
		if (pthread_create(&th, NULL, deadline_main, NULL) != 0)
			tgt_fail("pthread_create");
		while (__atomic_load_n(&setup_done, __ATOMIC_ACQUIRE) < 1)
			usleep(1000);
		if (setup_failed)
			tgt_fail("%s", setup_err);
		tgt_ready();
		tgt_wait();
		tgt_pass();
	}
	cpu_set_t all;
	if (sched_getaffinity(0, sizeof(all), &all) < 0)
		tgt_fail("sched_getaffinity: %s", strerror(errno));
	int first = -1, second = -1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		if (first < 0)
			first = cpu;
		else if (second < 0)
			second = cpu;
	}
	if (second < 0)
		second = first;
	tgt_log("sched: %d CPUs allowed; main on CPU %d, batch on CPU %d\n", CPU_COUNT(&all), first, second);

	want[0] = (struct want){ .name = "main", .policy = SCHED_OTHER, .nice = 5 };
	CPU_SET(first, &want[0].cpus);
	want[1] = (struct want){ .name = "batch", .policy = SCHED_BATCH, .nice = 10 };
	CPU_SET(second, &want[1].cpus);
	want[2] = (struct want){ .name = "fifo", .policy = SCHED_FIFO, .nice = 3, .prio = 10,
				 .flags = TGT_SCHED_FLAG_RESET_ON_FORK, .cpus = all };

	pthread_t th;
	for (int i = 1; i < 3; i++)
		if (pthread_create(&th, NULL, thread_main, &want[i]) != 0)
			tgt_fail("pthread_create");
	apply(&want[0]);
	while (__atomic_load_n(&setup_done, __ATOMIC_ACQUIRE) < 2)
		usleep(1000);
	if (setup_failed)
		tgt_fail("%s", setup_err);
	check("before the dump");
	tgt_ready();
	tgt_wait();
	check("after the restore");
	tgt_pass();
}
