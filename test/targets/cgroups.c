/*
 * cgroups: a child in cgroups of its own comes back in them. The target
 * forks a child that moves itself into each cgroup directory DIR
 * (cgroup.procs) given after RESULT_PATH, and checks after the restore
 * that the child's /proc/PID/cgroup is as before the dump (with no DIR,
 * that it stayed where it was).
 */
#include "target.h"

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		tgt_fail("write %s to %s: %s", text, path, strerror(errno));
	close(fd);
}

static void read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, cap - 1);
	if (fd >= 0)
		close(fd);
	if (n < 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
}

/* The child moves itself into each cgroup, then waits; the parent checks
 * the child's /proc/PID/cgroup from outside, before and after. */
static void cgroups(int n, char **dirs)
{
	int ready[2];
	if (pipe(ready) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (child == 0) {
		close(ready[0]);
		for (int i = 0; i < n; i++) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/cgroup.procs", dirs[i]);
			write_text(path, "0");
		}
		close(ready[1]);
		for (;;)
			pause();
	}
	close(ready[1]);
	char b;
	if (read(ready[0], &b, 1) != 0)
		tgt_fail("the child did not move into its cgroups");
	close(ready[0]);
	char path[64], before[4096], after[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)child);
	read_file(path, before, sizeof(before));
	for (int i = 0; i < n; i++) {
		const char *leaf = strrchr(dirs[i], '/');
		char want[512];
		snprintf(want, sizeof(want), "%s\n", leaf);
		if (!strstr(before, want))
			tgt_fail("before the dump: the child's cgroups do not end in %s:\n%s", leaf, before);
	}
	tgt_ready();
	tgt_wait();
	read_file(path, after, sizeof(after));
	kill(child, SIGKILL);
	if (strcmp(before, after) != 0)
		tgt_fail("the child's cgroups are\n%swant\n%s", after, before);
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	cgroups(argc - 2, argv + 2);
}
