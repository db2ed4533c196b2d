/* stall READY_PATH MIB: MIB MiB of private anonymous memory, filled, then
 * written without pause, one word per page in turn, reading the clock
 * after each page: the longest gap between two readings is the longest
 * the process was kept from running. SIGUSR1 starts a measurement (the
 * longest gap so far is forgotten; READY_PATH.armed appears once it is),
 * SIGUSR2 ends it: the longest gap since, in ns, is written to
 * READY_PATH.gap, and READY_PATH.gaps lists the first MAX_GAPS gaps of a
 * millisecond or more, a line each: when it began (ns since the
 * measurement started) and how long it was (ns). Where the dump froze the
 * job is one of them; the others are the job kept from running before or
 * after (the scheduler, the host, page faults).
 *
 * stall READY_PATH MIB fork: the limit instead: fill MIB MiB the same way,
 * then time one fork(2) of the process (the child exits at once), write
 * the ns it took to READY_PATH.fork, and wait to be killed. A copy-on-write
 * snapshot cannot cost less than this copy of the page tables.
 *
 * stall READY_PATH MIB copy=PATH: as the first form, and SIGHUP forks a
 * copy of the process that writes the memory to PATH and exits: the limit
 * of any copy-on-write snapshot that is written out while the job runs
 * on (the fork, the job's copy-on-write faults, the copy's writing,
 * side by side on the machine's CPUs). READY_PATH.copied appears, with
 * the ns the copy took, once the job has reaped it; the measurement
 * goes on until SIGUSR2 as ever.
 *
 * With "hugepage" last, the memory is 2 MiB-aligned and madvised
 * MADV_HUGEPAGE before it is filled, so that it is faulted in transparent
 * huge pages where the machine's THP mode is madvise or always: a fork
 * then copies one page-table entry per 2 MiB (the bench checks
 * AnonHugePages). */
#include "bench.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t arm, report, copy;

#define MAX_GAPS 32
#define LONG_GAP_NS 1000000ULL

static struct gap {
	uint64_t at, len;
} gaps[MAX_GAPS];
static int ngaps;

/* write_gaps writes the long gaps to READY_PATH.gaps, with one write(2)
 * after O_TRUNC as write_number does, ending in an empty line. */
static void write_gaps(const char *ready, uint64_t armed)
{
	char path[4096], text[MAX_GAPS * 48 + 2];
	size_t n = 0;
	for (int i = 0; i < ngaps; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%llu %llu\n",
				      (unsigned long long)(gaps[i].at - armed), (unsigned long long)gaps[i].len);
	text[n++] = '\n';
	snprintf(path, sizeof(path), "%s.gaps", ready);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create gaps file");
	if (write(fd, text, n) != (ssize_t)n)
		die("write gaps file");
	close(fd);
}

static void on_usr1(int sig) { (void)sig; arm = 1; }
static void on_usr2(int sig) { (void)sig; report = 1; }
static void on_hup(int sig) { (void)sig; copy = 1; }

/* write_copy is the forked copy's work: the memory to path, 2 MiB (a
 * huge page) at a time, each dropped once written, as a dump's snapshot
 * drops what it wrote (parasite/c/parasite.c release), so that the job's
 * later writes there need no copy; then _exit. It runs off job_cpu,
 * the CPU the job ran on at the fork, where another is allowed, as a
 * dump's snapshot does (dump/offcpus.go): beside the job on one CPU,
 * the two would take turns. */
static void write_copy(const char *path, const char *mem, size_t len, int job_cpu, pid_t job)
{
	/* Ends with the job: a bench that kills the job on an error leaves
	 * no copy writing gigabytes after the file was removed (man 2
	 * PR_SET_PDEATHSIG; the job may have died before the call). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != job)
		_exit(1);
	cpu_set_t cpus;
	if (job_cpu >= 0 && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1) {
		CPU_CLR(job_cpu, &cpus);
		sched_setaffinity(0, sizeof(cpus), &cpus);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(1);
	for (size_t off = 0; off < len;) {
		size_t n = len - off < (2UL << 20) ? len - off : (2UL << 20);
		for (size_t done = 0; done < n;) {
			ssize_t w = write(fd, mem + off + done, n - done);
			if (w <= 0)
				_exit(1);
			done += (size_t)w;
		}
		if (madvise((void *)(mem + off), n, MADV_DONTNEED) != 0)
			_exit(1);
		off += n;
	}
	_exit(close(fd) == 0 ? 0 : 1);
}

int main(int argc, char **argv)
{
	int fork_limit = 0, huge = 0;
	const char *copy_path = NULL;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "fork") == 0)
			fork_limit = 1;
		else if (strcmp(argv[i], "hugepage") == 0)
			huge = 1;
		else if (strncmp(argv[i], "copy=", 5) == 0 && argv[i][5] != '\0')
			copy_path = argv[i] + 5;
		else
			argc = 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: stall READY_PATH MIB [fork | copy=PATH] [hugepage]\n");
		return 2;
	}
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	const size_t huge_size = 2UL << 20;
	char *raw = mmap(NULL, len + (huge ? huge_size : 0), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	uint64_t *p = (uint64_t *)raw;
	if (huge) {
		p = (uint64_t *)(((uintptr_t)raw + huge_size - 1) & ~(huge_size - 1));
		if (madvise(p, len, MADV_HUGEPAGE) != 0)
			die("madvise MADV_HUGEPAGE");
	}
	fill(p, len, 0x9E3779B97F4A7C15ULL);
	if (fork_limit) {
		uint64_t t0 = now();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		uint64_t t1 = now();
		if (pid < 0)
			die("fork");
		waitpid(pid, NULL, 0);
		write_number(argv[1], "fork", t1 - t0);
		ready(argv[1]);
		wait_forever();
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	if (copy_path) {
		sa.sa_handler = on_hup;
		sigaction(SIGHUP, &sa, NULL);
	}
	ready(argv[1]);

	size_t pages = len / 4096, i = 0;
	uint64_t last = now(), longest = 0, v = 1, armed = last, copy_start = 0;
	pid_t copier = 0;
	for (;;) {
		p[i * 512] = v++;
		if (++i == pages)
			i = 0;
		if (copier > 0 && i % 4096 == 0) {
			/* One waitpid per 16 MiB written: the copy's end is
			 * seen within a millisecond or so, at no cost to the
			 * gaps measured. */
			int status;
			if (waitpid(copier, &status, WNOHANG) == copier) {
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
					fprintf(stderr, "stall: the copy to %s failed\n", copy_path);
					exit(1);
				}
				copier = 0;
				write_number(argv[1], "copied", now() - copy_start);
			}
		}
		uint64_t t = now();
		if (t - last > longest)
			longest = t - last;
		if (t - last >= LONG_GAP_NS && ngaps < MAX_GAPS)
			gaps[ngaps++] = (struct gap){last, t - last};
		last = t;
		if (arm) {
			arm = 0;
			longest = 0;
			ngaps = 0;
			write_number(argv[1], "armed", 1);
			last = armed = now();
		}
		if (copy) {
			copy = 0;
			copy_start = now();
			int job_cpu = sched_getcpu();
			pid_t job = getpid();
			if (copier == 0 && (copier = fork()) == 0)
				write_copy(copy_path, (const char *)p, len, job_cpu, job);
			if (copier < 0)
				die("fork the copy");
		}
		if (report) {
			report = 0;
			write_gaps(argv[1], armed);
			write_number(argv[1], "gap", longest);
		}
	}
}
