// Target for the ptrace package tests. One mode per argv[1]; each prints
// READY when its state is set up, then blocks in the syscall under test and
// prints what the syscall returned, so the test can tell whether gocr's
// stop/inject/restore left it as if nothing had happened.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static volatile sig_atomic_t handled;
static volatile int last_pid, last_code;

struct got { int sig; long val; };
static struct got got[16];
static volatile int ngot;

static void on_sig(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	handled++;
	last_pid = si->si_pid;
	last_code = si->si_code;
	if (ngot < 16) {
		got[ngot].sig = sig;
		got[ngot].val = (long)si->si_value.sival_ptr;
		ngot++;
	}
}

static void install(int sig) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO; // no SA_RESTART: pause/read must report EINTR
	sigfillset(&sa.sa_mask);  // one handler at a time, in dequeue order
	sigaction(sig, &sa, NULL);
}

static void ready(void) {
	printf("READY\n");
	fflush(stdout);
}

static int mode_nanosleep(void) {
	struct timespec ts = {2, 0};
	ready();
	int r = nanosleep(&ts, NULL);
	if (r == 0)
		printf("OK\n");
	else
		printf("FAIL errno %d\n", errno);
	return 0;
}

// unmap_vdso unmaps [vdso], [vvar] and [vvar_vclock], as a process that
// wants every clock read to be a system call does; nothing here calls
// into the vDSO afterwards (nanosleep is a system call in glibc).
static int unmap_vdso(void) {
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	unsigned long lo[8], hi[8];
	int n = 0;
	char line[512];
	while (n < 8 && fgets(line, sizeof line, f)) {
		if (strstr(line, "[vdso]") || strstr(line, "[vvar]") || strstr(line, "[vvar_vclock]")) {
			if (sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
				n++;
		}
	}
	fclose(f);
	for (int i = 0; i < n; i++)
		if (munmap((void *)lo[i], hi[i] - lo[i]))
			return -1;
	return n;
}

static int mode_novdso_nanosleep(void) {
	if (unmap_vdso() < 1) {
		printf("FAIL unmap vdso\n");
		return 1;
	}
	return mode_nanosleep();
}

static int mode_read(void);

static int mode_novdso_read(void) {
	if (unmap_vdso() < 1) {
		printf("FAIL unmap vdso\n");
		return 1;
	}
	return mode_read();
}

static int mode_read(void) {
	char buf[64];
	ready();
	ssize_t n = read(0, buf, sizeof buf - 1);
	if (n < 0) {
		printf("FAIL errno %d\n", errno);
		return 0;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("READ %zd %s\n", n, buf);
	return 0;
}

static int mode_pause(void) {
	install(SIGUSR1);
	ready();
	int r = pause();
	printf("PAUSE %d %d %d\n", r, errno, (int)handled);
	return 0;
}

// ioperm: I/O port 0x80 permitted ("READY ioperm ok"), or why not
// ("READY ioperm ENOSYS" on a kernel without CONFIG_X86_IOPL_IOPERM).
static int mode_ioperm(void) {
	int r = syscall(SYS_ioperm, 0x80UL, 1UL, 1);
	printf("READY ioperm %s\n", r == 0 ? "ok" : errno == ENOSYS ? "ENOSYS" : strerror(errno));
	fflush(stdout);
	pause();
	return 0;
}

static int mode_handler(void) {
	install(SIGUSR1);
	ready();
	for (;;) {
		pause();
		printf("HANDLED %d pid=%d code=%d\n", (int)handled, last_pid, last_code);
		fflush(stdout);
	}
	return 0;
}

static int mode_xmm(void) {
	uint64_t in[4] = {0x1122334455667788ULL, 0x99aabbccddeeff00ULL,
			  0x0123456789abcdefULL, 0xfedcba9876543210ULL};
	uint64_t out[4];
	uint32_t lo, hi;
	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	printf("READY xcr0=%llx\n", (unsigned long long)hi << 32 | lo);
	fflush(stdout);
	// Nothing but these instructions touches ymm0 until the tracer changes
	// its low quadword.
	asm volatile(
		"vmovdqu (%[in]), %%ymm0\n\t"
		"vmovq %%xmm0, %%rcx\n\t"
		"1: pause\n\t"
		"vmovq %%xmm0, %%rax\n\t"
		"cmpq %%rax, %%rcx\n\t"
		"je 1b\n\t"
		"vmovdqu %%ymm0, (%[out])\n\t"
		"vzeroupper\n\t"
		:
		: [in] "r"(in), [out] "r"(out)
		: "rax", "rcx", "xmm0", "memory", "cc");
	printf("YMM0 %016llx %016llx %016llx %016llx\n",
	       (unsigned long long)out[0], (unsigned long long)out[1],
	       (unsigned long long)out[2], (unsigned long long)out[3]);
	return 0;
}

static int mode_sigqueue(void) {
	sigset_t set, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	install(SIGUSR1);
	install(SIGUSR2);
	install(SIGRTMIN);
	for (long v = 1; v <= 3; v++) {
		union sigval sv = {.sival_ptr = (void *)v};
		sigqueue(getpid(), SIGRTMIN, sv); // process-wide queue
	}
	kill(getpid(), SIGUSR1);                        // process-wide queue
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2); // this thread's queue
	printf("READY sigrtmin=%d\n", SIGRTMIN);
	fflush(stdout);
	char buf[16];
	if (read(0, buf, sizeof buf) <= 0) {
		printf("FAIL read errno %d\n", errno);
		return 0;
	}
	sigpending(&pend);
	printf("PENDING %d %d %d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGUSR2),
	       sigismember(&pend, SIGRTMIN));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	for (int i = 0; i < ngot; i++)
		printf("GOT %d %ld\n", got[i].sig, got[i].val);
	printf("DONE\n");
	return 0;
}

// vfork: the parent waits in vfork (state D, no signal wakes it) until
// the child, which says READY with raw writes (it shares the parent's
// memory, stdio's buffers included), reads a line and exits. Then the
// parent says PARENT.
static int mode_vfork(void) {
	pid_t pid = vfork();
	if (pid == 0) {
		char c;
		write(1, "READY\n", 6);
		while (read(0, &c, 1) == 1 && c != '\n')
			;
		_exit(0);
	}
	printf("PARENT %d\n", pid > 0);
	for (;;)
		pause();
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	if (!strcmp(m, "nanosleep")) return mode_nanosleep();
	if (!strcmp(m, "novdso-nanosleep")) return mode_novdso_nanosleep();
	if (!strcmp(m, "novdso-read")) return mode_novdso_read();
	if (!strcmp(m, "read")) return mode_read();
	if (!strcmp(m, "pause")) return mode_pause();
	if (!strcmp(m, "handler")) return mode_handler();
	if (!strcmp(m, "xmm")) return mode_xmm();
	if (!strcmp(m, "sigqueue")) return mode_sigqueue();
	if (!strcmp(m, "vfork")) return mode_vfork();
	if (!strcmp(m, "ioperm")) return mode_ioperm();
	return 2;
}
