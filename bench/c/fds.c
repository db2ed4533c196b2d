/* fds READY_PATH N FILE: N open fds, each its own open file description of
 * the regular file FILE, at distinct offsets. RLIMIT_NOFILE is raised to
 * fit, within the hard limit. */
#include "bench.h"
#include <sys/resource.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fds READY_PATH N FILE\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("getrlimit");
	if (rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = (rlim_t)n + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) {
			fprintf(stderr, "need %ld fds, hard limit is %lu\n", n + 64, (unsigned long)rl.rlim_max);
			return 1;
		}
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			die("setrlimit");
	}
	for (long i = 0; i < n; i++) {
		int fd = open(argv[3], O_RDONLY);
		if (fd < 0)
			die("open");
		if (lseek(fd, i, SEEK_SET) < 0)
			die("lseek");
	}
	ready(argv[1]);
	wait_forever();
}
