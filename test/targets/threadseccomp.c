/*
 * threadseccomp: a second thread puts itself under an allow-all seccomp
 * filter (filters are per thread, man 2 seccomp); the leader is not. A dump
 * must refuse the process, naming the thread, and leave it running.
 */
#include "target.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>

static volatile int filtered;

static void *run(void *arg)
{
	(void)arg;
	struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { .len = 1, .filter = allow };
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		tgt_fail("seccomp: %s", strerror(errno));
	filtered = 1;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	/* no_new_privs for every thread alike (a filter needs it without
	 * CAP_SYS_ADMIN), so only the filter sets the thread apart. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		tgt_fail("no_new_privs: %s", strerror(errno));
	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL) != 0)
		tgt_fail("pthread_create");
	while (!filtered)
		usleep(1000);
	tgt_ready();
	tgt_wait();
	tgt_pass();
}
