/*
 * seccomp_exec PROGRAM ARGS...: run PROGRAM under a seccomp filter that
 * allows every call (Seccomp: 2 in /proc/PID/status; a filter survives
 * execve, man 2 seccomp), so a test can check that gocr refuses to dump
 * a process whose filter it could not restore.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
	struct sock_fprog prog = {.len = 1, .filter = allow};

	if (argc < 2) {
		fprintf(stderr, "usage: seccomp_exec PROGRAM ARGS...\n");
		return 2;
	}
	/* Without CAP_SYS_ADMIN a filter needs no_new_privs; set it anyway
	 * so the wrapper behaves the same for every user. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("seccomp_exec: install filter");
		return 1;
	}
	execvp(argv[1], argv + 1);
	perror("seccomp_exec: exec");
	return 127;
}
