/*
 * attrsrefused: one process or thread attribute gocr does not restore,
 * which a dump must refuse in one line; the process runs on and passes if
 * it still has it. The mode (second argument):
 *   keyring        the process joins a session keyring of its own
 *   threadkeyring  a thread has a thread keyring
 *   mbind          a mapping has a NUMA policy of its own
 *   threadpolicy   a thread has a NUMA policy other than its process's
 *   anonname       a named anonymous mapping (PR_SET_VMA_ANON_NAME)
 *   speculation    PR_SET_SPECULATION_CTRL
 *   cpuid          ARCH_SET_CPUID 0
 *   sud            syscall user dispatch on; the process checks it is still
 *                  on after the refused dump
 */
#include "target.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* include/uapi/linux/mempolicy.h, include/uapi/linux/prctl.h,
 * include/uapi/linux/keyctl.h, arch/x86/include/uapi/asm/prctl.h */
#define MPOL_BIND 2
#define MPOL_PREFERRED 1
#define TGT_PR_SET_VMA 0x53564d41
#define TGT_PR_SET_VMA_ANON_NAME 0
#define TGT_PR_SET_SYSCALL_USER_DISPATCH 59
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEY_SPEC_THREAD_KEYRING -1
#define ARCH_SET_CPUID 0x1012

static volatile int thread_ready;

static void *pause_main(void *arg)
{
	(void)arg;
	unsigned long node0 = 1;
	if (syscall(SYS_set_mempolicy, MPOL_PREFERRED, &node0, 64 + 1) < 0)
		tgt_fail("set_mempolicy in a thread: %s", strerror(errno));
	__atomic_store_n(&thread_ready, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

/* A thread with a thread keyring of its own (created on first use:
 * KEYCTL_GET_KEYRING_ID with create set, man 2 keyctl). */
static void *keyring_main(void *arg)
{
	(void)arg;
	if (syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 1) < 0)
		tgt_fail("keyctl: create a thread keyring: %s", strerror(errno));
	__atomic_store_n(&thread_ready, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

/* Syscall user dispatch: with the selector at BLOCK a system call raises
 * SIGSYS instead (man 2 PR_SET_SYSCALL_USER_DISPATCH); the handler sets
 * it back to ALLOW before its rt_sigreturn, which would trap too. */
static volatile char sud_selector;
static volatile sig_atomic_t sud_trapped;

static void on_sigsys(int sig)
{
	(void)sig;
	sud_selector = 0;
	sud_trapped = 1;
}

static void check_sud(const char *when)
{
	sud_trapped = 0;
	sud_selector = 1;
	syscall(SYS_getppid);
	sud_selector = 0;
	if (!sud_trapped)
		tgt_fail("%s: syscall user dispatch is off", when);
}

/* One thing a dump must refuse; the process runs on and passes if it is
 * still as it set it up. */
static void refused(const char *what)
{
	if (strcmp(what, "keyring") == 0) {
		if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "gocr-test") < 0)
			tgt_fail("keyctl join: %s", strerror(errno));
	} else if (strcmp(what, "threadkeyring") == 0) {
		pthread_t th;
		if (pthread_create(&th, NULL, keyring_main, NULL) != 0)
			tgt_fail("pthread_create");
		while (!__atomic_load_n(&thread_ready, __ATOMIC_ACQUIRE))
			usleep(1000);
	} else if (strcmp(what, "mbind") == 0) {
		void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long node0 = 1;
		if (m == MAP_FAILED || syscall(SYS_mbind, m, 1 << 20, MPOL_BIND, &node0, 64 + 1, 0) < 0)
			tgt_fail("mbind: %s", strerror(errno));
	} else if (strcmp(what, "threadpolicy") == 0) {
		pthread_t th;
		if (pthread_create(&th, NULL, pause_main, NULL) != 0)
			tgt_fail("pthread_create");
		while (!__atomic_load_n(&thread_ready, __ATOMIC_ACQUIRE))
			usleep(1000);
	} else if (strcmp(what, "anonname") == 0) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED ||
		    prctl(TGT_PR_SET_VMA, TGT_PR_SET_VMA_ANON_NAME, (unsigned long)m, 4096, (unsigned long)"gocr") < 0)
			tgt_fail("PR_SET_VMA_ANON_NAME: %s", strerror(errno));
	} else if (strcmp(what, "speculation") == 0) {
		if (prctl(PR_SET_SPECULATION_CTRL, PR_SPEC_STORE_BYPASS, PR_SPEC_DISABLE, 0, 0) < 0)
			tgt_fail("PR_SET_SPECULATION_CTRL: %s", strerror(errno));
	} else if (strcmp(what, "sud") == 0) {
		/* Dispatch on, every call allowed by the selector
		 * (SYSCALL_DISPATCH_FILTER_ALLOW): the process runs as before. */
		struct sigaction sa = { .sa_handler = on_sigsys };
		if (sigaction(SIGSYS, &sa, NULL) < 0 ||
		    prctl(TGT_PR_SET_SYSCALL_USER_DISPATCH, 1UL, 0UL, 0UL, (unsigned long)&sud_selector) < 0)
			tgt_fail("PR_SET_SYSCALL_USER_DISPATCH: %s", strerror(errno));
		check_sud("before the dump");
		tgt_ready();
		tgt_wait();
		check_sud("after the refused dump");
		tgt_pass();
	} else if (strcmp(what, "cpuid") == 0) {
		if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) < 0)
			tgt_fail("ARCH_SET_CPUID: %s", strerror(errno));
	} else {
		tgt_fail("unknown mode %s", what);
	}
	tgt_ready();
	tgt_wait();
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: attrsrefused RESULT_PATH MODE");
	refused(argv[2]);
}
