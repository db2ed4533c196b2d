/*
 * signals: dispositions with distinct flags and masks, an alternate signal
 * stack, a blocked mask, and pending signals of both queues (a standard
 * signal pending on the thread, queued real-time signals with payloads
 * pending on the process). After restore all of it must read back the
 * same, and unblocking must deliver every pending signal exactly once with
 * its payload, in the kernel's order: lowest signal number first, queued
 * instances of one real-time signal in the order they were sent
 * (signal(7), "Real-time signals").
 */
#include "target.h"

#include <stdint.h>

#define ALTSTACK_SIZE (64 * 1024)

static char altstack[ALTSTACK_SIZE];

static volatile sig_atomic_t usr1_count, usr2_on_altstack = -1, hup_mask_ok = -1;
static volatile int deliveries[16][2]; /* (signo, payload) in arrival order */
static volatile sig_atomic_t ndeliveries;
static volatile int bad_rt_info;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	usr1_count++;
	if (ndeliveries < 16) {
		deliveries[ndeliveries][0] = sig;
		deliveries[ndeliveries][1] = 0;
		ndeliveries++;
	}
}

static void on_usr2(int sig)
{
	char here;

	(void)sig;
	usr2_on_altstack = (&here >= altstack && &here < altstack + ALTSTACK_SIZE);
}

static void on_hup(int sig)
{
	sigset_t cur;

	(void)sig;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	hup_mask_ok = sigismember(&cur, SIGINT) == 1 && sigismember(&cur, SIGQUIT) == 1;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code != SI_QUEUE || si->si_pid != getpid())
		bad_rt_info = 1;
	if (ndeliveries < 16) {
		deliveries[ndeliveries][0] = sig;
		deliveries[ndeliveries][1] = si->si_value.sival_int;
		ndeliveries++;
	}
}

static struct sigaction saved[NSIG];
static int have_saved[NSIG];

static void install(int sig, void *handler, int flags, const int *mask_sigs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	sa.sa_flags = flags;
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = handler;
	else
		sa.sa_handler = handler;
	if (sigaction(sig, &sa, NULL) < 0)
		tgt_fail("sigaction(%d): %s", sig, strerror(errno));
}

/* glibc copies only the kernel's 8-byte mask into struct sigaction, so the
 * structs are zeroed first and masks compared signal by signal. */
static int get_action(int sig, struct sigaction *sa)
{
	memset(sa, 0, sizeof(*sa));
	return sigaction(sig, NULL, sa);
}

static void mask_str(const sigset_t *s, char *out, size_t cap)
{
	size_t n = 0;
	int sig;

	out[0] = 0;
	for (sig = 1; sig < NSIG && n + 8 < cap; sig++)
		if (sigismember(s, sig) == 1)
			n += (size_t)snprintf(out + n, cap - n, "%d ", sig);
}

static int same_mask(const sigset_t *a, const sigset_t *b)
{
	int sig;

	for (sig = 1; sig < NSIG; sig++)
		if (sigismember(a, sig) != sigismember(b, sig))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	sigset_t block, blocked_before, pending_before, cur;
	stack_t ss, ss_before;
	char s1[512], s2[512];
	int sig, rt2, rt3, i;

	tgt_init(argc, argv);
	rt2 = SIGRTMIN + 2;
	rt3 = SIGRTMIN + 3;
	{
		/* Each queued signal's handler blocks the others, so handlers
		 * run one after another in dequeue order instead of nesting. */
		int usr1_mask[] = { rt2, rt3, 0 };
		int rt_mask[] = { SIGUSR1, rt2, rt3, 0 };
		int hup_mask[] = { SIGINT, SIGQUIT, 0 };

		install(SIGUSR1, on_usr1, SA_RESTART | SA_SIGINFO, usr1_mask);
		install(SIGUSR2, on_usr2, SA_ONSTACK, NULL);
		install(SIGPIPE, SIG_IGN, 0, NULL);
		install(SIGHUP, on_hup, 0, hup_mask);
		install(rt2, on_rt, SA_SIGINFO, rt_mask);
		install(rt3, on_rt, SA_SIGINFO | SA_NODEFER, rt_mask);
	}

	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) < 0)
		tgt_fail("sigaltstack: %s", strerror(errno));

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, rt2);
	sigaddset(&block, rt3);
	sigaddset(&block, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		tgt_fail("sigprocmask: %s", strerror(errno));

	if (raise(SIGUSR1) != 0)
		tgt_fail("raise(SIGUSR1): %s", strerror(errno));
	for (i = 1; i <= 3; i++) {
		union sigval v = { .sival_int = 11 * i };
		if (sigqueue(getpid(), rt2, v) < 0)
			tgt_fail("sigqueue(SIGRTMIN+2, %d): %s", 11 * i, strerror(errno));
	}
	{
		union sigval v = { .sival_int = 44 };
		if (sigqueue(getpid(), rt3, v) < 0)
			tgt_fail("sigqueue(SIGRTMIN+3): %s", strerror(errno));
	}

	/* Record every disposition, including the untouched defaults. */
	for (sig = 1; sig < NSIG; sig++)
		have_saved[sig] = get_action(sig, &saved[sig]) == 0;
	sigprocmask(SIG_BLOCK, NULL, &blocked_before);
	sigpending(&pending_before);
	sigaltstack(NULL, &ss_before);

	tgt_ready();
	tgt_wait();

	for (sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		int ok = get_action(sig, &sa) == 0;

		if (ok != have_saved[sig])
			tgt_fail("sigaction(%d) %s after restore", sig,
				 ok ? "now succeeds" : "now fails");
		if (!ok)
			continue;
		if ((void *)sa.sa_handler != (void *)saved[sig].sa_handler)
			tgt_fail("signal %d handler is %p, want %p", sig,
				 (void *)sa.sa_handler, (void *)saved[sig].sa_handler);
		if (sa.sa_flags != saved[sig].sa_flags)
			tgt_fail("signal %d sa_flags is %#x, want %#x", sig,
				 sa.sa_flags, saved[sig].sa_flags);
		if ((void *)sa.sa_restorer != (void *)saved[sig].sa_restorer)
			tgt_fail("signal %d sa_restorer is %p, want %p", sig,
				 (void *)sa.sa_restorer, (void *)saved[sig].sa_restorer);
		if (!same_mask(&sa.sa_mask, &saved[sig].sa_mask)) {
			mask_str(&sa.sa_mask, s1, sizeof(s1));
			mask_str(&saved[sig].sa_mask, s2, sizeof(s2));
			tgt_fail("signal %d sa_mask is {%s}, want {%s}", sig, s1, s2);
		}
	}

	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (!same_mask(&cur, &blocked_before)) {
		mask_str(&cur, s1, sizeof(s1));
		mask_str(&blocked_before, s2, sizeof(s2));
		tgt_fail("blocked mask is {%s}, want {%s}", s1, s2);
	}
	sigpending(&cur);
	if (!same_mask(&cur, &pending_before)) {
		mask_str(&cur, s1, sizeof(s1));
		mask_str(&pending_before, s2, sizeof(s2));
		tgt_fail("pending set is {%s}, want {%s}", s1, s2);
	}
	if (sigaltstack(NULL, &ss) < 0)
		tgt_fail("sigaltstack: %s", strerror(errno));
	if (ss.ss_sp != ss_before.ss_sp || ss.ss_size != ss_before.ss_size ||
	    ss.ss_flags != ss_before.ss_flags)
		tgt_fail("sigaltstack is {sp %p size %zu flags %#x}, want {sp %p size %zu flags %#x}",
			 ss.ss_sp, ss.ss_size, ss.ss_flags, ss_before.ss_sp,
			 ss_before.ss_size, ss_before.ss_flags);

	if (ndeliveries != 0)
		tgt_fail("%d blocked signals were delivered before unblocking", (int)ndeliveries);
	if (sigprocmask(SIG_UNBLOCK, &block, NULL) < 0)
		tgt_fail("sigprocmask unblock: %s", strerror(errno));
	{
		const int want[][2] = { { SIGUSR1, 0 }, { rt2, 11 }, { rt2, 22 },
					{ rt2, 33 }, { rt3, 44 } };
		int nwant = 5;

		if (bad_rt_info)
			tgt_fail("a queued signal arrived without SI_QUEUE from this pid");
		if (usr1_count != 1)
			tgt_fail("SIGUSR1 handler ran %d times, want 1", (int)usr1_count);
		for (i = 0; i < nwant || i < ndeliveries; i++) {
			if (i >= ndeliveries)
				tgt_fail("delivery %d missing: want signal %d payload %d "
					 "(%d delivered)", i, want[i][0], want[i][1], (int)ndeliveries);
			if (i >= nwant)
				tgt_fail("extra delivery %d: signal %d payload %d", i,
					 deliveries[i][0], deliveries[i][1]);
			if (deliveries[i][0] != want[i][0] || deliveries[i][1] != want[i][1])
				tgt_fail("delivery %d was signal %d payload %d, want signal %d payload %d",
					 i, deliveries[i][0], deliveries[i][1], want[i][0], want[i][1]);
		}
	}
	sigpending(&cur);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGTERM && sigismember(&cur, sig) == 1)
			tgt_fail("signal %d still pending after unblocking", sig);

	raise(SIGUSR2);
	if (usr2_on_altstack != 1)
		tgt_fail("SIGUSR2 (SA_ONSTACK) handler %s", usr2_on_altstack < 0 ?
			 "did not run" : "did not run on the alternate stack");
	raise(SIGHUP);
	if (hup_mask_ok != 1)
		tgt_fail("SIGHUP handler %s", hup_mask_ok < 0 ? "did not run" :
			 "ran without SIGINT and SIGQUIT blocked");
	tgt_pass();
}
