/*
 * peercred.c: the peer-credentials agent (abi.h, restorer/peercred.go),
 * included by restorer.c, whose syscall layer and message structs it uses.
 *
 * The kernel records a unix socket's peer credentials from the process
 * making the call: socketpair(2) gives both ends the caller's, listen(2)
 * the listener, connect(2) the new server-side socket, while the
 * connecting one copies the listener's (net/unix/af_unix.c
 * unix_socketpair, unix_listen, unix_stream_connect: init_peercred takes
 * current's thread group pid and credentials, copy_peercred the
 * listener's). Nothing sets them afterwards. SO_PEERCRED reads the pid as
 * a number in the reader's namespace (net/core/sock.c cred_to_ucred,
 * pid_vnr), which stays the same once that process is gone: so a process
 * cloned with set_tid on the dumped pid and the dumped effective ids,
 * making the call and exiting, leaves exactly the dumped credentials, and
 * its pid free for the restored process that owns it.
 */

#define __NR_connect 42
#define __NR_pidfd_open 434
#define __NR_pidfd_getfd 438
#define __NR_recvmsg 47
#define __NR_listen 50
#define __NR_socketpair 53
#define __NR_geteuid 107
#define __NR_getegid 108
#define AF_UNIX 1
#define SOCK_CLOEXEC 02000000
#define MSG_CMSG_CLOEXEC 0x40000000
#define PR_SET_SECUREBITS 28

/* struct cmsghdr with two fds (include/linux/socket.h): CMSG_LEN(8). */
struct kcmsg_fd2 {
	u64 len;
	s32 level;
	s32 type;
	s32 fd[2];
};

static void peercred_reply(struct rst_peercred_reply *r, s32 *fds, int nfds)
{
	struct kiovec iov = { r, sizeof(*r) };
	struct kcmsg_fd2 c = { 16 + 4 * (u64)nfds, SOL_SOCKET, SCM_RIGHTS, { -1, -1 } };
	struct kmsghdr m = { .iov = &iov, .iovlen = 1 };
	if (nfds > 0) {
		c.fd[0] = fds[0];
		c.fd[1] = fds[1];
		m.control = &c;
		m.controllen = sizeof(c);
	}
	sys3(__NR_sendmsg, RST_PEERCRED_FD, &m, 0);
}

static __attribute__((noreturn)) void peercred_fail(u32 step, long err)
{
	struct rst_peercred_reply r = { .err = (s32)err, .step = step };
	peercred_reply(&r, NULL, 0);
	for (;;)
		sys1(__NR_exit_group, 1);
}

static int peercred_same_groups(struct rst_peercred_req *q)
{
	u32 cur[RST_PEERCRED_MAX_GROUPS];
	long n = sys2(__NR_getgroups, RST_PEERCRED_MAX_GROUPS, cur);
	if (n < 0 || (u64)n != q->nr_groups)
		return 0;
	for (long i = 0; i < n; i++)
		if (cur[i] != q->groups[i])
			return 0;
	return 1;
}

/* The call's process: the dumped groups and effective ids, each set only
 * where it differs (a restore by an ordinary user holds no CAP_SETGID, and
 * may only name its own), keeping gocr's capabilities across the uid
 * change (SECBIT_NO_SETUID_FIXUP; security/commoncap.c
 * cap_emulate_setxuid would clear the effective set) so that a connect(2)
 * to a socket file not given its dumped owner and mode yet is allowed;
 * SO_PEERCRED shows only the effective ids (cred_to_ucred). */
static __attribute__((noreturn)) void peercred_call(struct rst_peercred_req *q, s32 fd)
{
	long r;
	if (q->nr_groups > RST_PEERCRED_MAX_GROUPS)
		peercred_fail(RST_PEERCRED_STEP_GROUPS, -EINVAL);
	if (!peercred_same_groups(q) && (r = sys2(__NR_setgroups, q->nr_groups, q->groups)) < 0)
		peercred_fail(RST_PEERCRED_STEP_GROUPS, r);
	if ((u32)sys0(__NR_getegid) != q->gid && (r = sys3(__NR_setresgid, -1, q->gid, -1)) < 0)
		peercred_fail(RST_PEERCRED_STEP_GID, r);
	if ((u32)sys0(__NR_geteuid) != q->uid) {
		long secure = sys1(__NR_prctl, PR_GET_SECUREBITS);
		if (secure >= 0 && !(secure & SECBIT_NO_SETUID_FIXUP))
			sys2(__NR_prctl, PR_SET_SECUREBITS, secure | SECBIT_NO_SETUID_FIXUP);
		if ((r = sys3(__NR_setresuid, -1, q->uid, -1)) < 0)
			peercred_fail(RST_PEERCRED_STEP_UID, r);
	}
	s32 sv[2] = { -1, -1 };
	switch (q->op) {
	case RST_PEERCRED_SOCKETPAIR:
		r = sys4(__NR_socketpair, AF_UNIX, q->arg | SOCK_CLOEXEC, 0, sv);
		break;
	case RST_PEERCRED_LISTEN:
		r = sys2(__NR_listen, fd, q->arg);
		break;
	case RST_PEERCRED_CONNECT:
		r = q->addr_len <= sizeof(q->addr) ? sys3(__NR_connect, fd, q->addr, q->addr_len) : -EINVAL;
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0)
		peercred_fail(RST_PEERCRED_STEP_CALL, r);
	struct rst_peercred_reply ok = { 0 };
	peercred_reply(&ok, sv, q->op == RST_PEERCRED_SOCKETPAIR ? 2 : 0);
	for (;;)
		sys1(__NR_exit_group, 0);
}

static __attribute__((noreturn)) void agent_reaper(s32 ctl, s32 gocr_pidfd);

/* RST_PEERCRED_REAPER: takes over gocr's fds listed in the memfd gocr
 * holds at q->fd_list, the i-th at fd 3 + i, as the restorer would be
 * given them (restorer/launch.go), with pidfd_getfd(2) (the same open
 * file description, close-on-exec, which does not matter to a process
 * that never execs); then becomes the reaper (restorer.c agent_reaper).
 * Its own two fds move above them first. */
static __attribute__((noreturn)) void peercred_become_reaper(struct rst_peercred_req *q, s32 pidfd)
{
	u32 high = 3 + q->nr_fds;
	long ctl = sys3(__NR_fcntl, RST_PEERCRED_FD, F_DUPFD_CLOEXEC, high);
	if (ctl < 0)
		for (;;)
			sys1(__NR_exit_group, 111);
	sys1(__NR_close, RST_PEERCRED_FD);
	long r = pidfd < 0 ? -EINVAL : sys3(__NR_fcntl, pidfd, F_DUPFD_CLOEXEC, high);
	if (pidfd >= 0)
		sys1(__NR_close, pidfd);
	long list = r < 0 ? r : sys3(__NR_pidfd_getfd, r, q->fd_list, 0);
	u64 size = (u64)q->nr_fds * 4;
	long m = list < 0 ? list : sys6(__NR_mmap, 0, size ? size : 1, PROT_READ, MAP_SHARED, list, 0);
	if (list >= 0)
		sys1(__NR_close, list);
	if (m < 0 && m > -4096)
		r = m;
	for (u32 i = 0; r >= 0 && i < q->nr_fds; i++) {
		long g = sys3(__NR_pidfd_getfd, r, ((s32 *)m)[i], 0);
		if (g >= 0 && g != (long)(3 + i)) {
			long d = sys3(__NR_dup3, g, 3 + i, 0);
			sys1(__NR_close, g);
			g = d;
		}
		if (g < 0) {
			sys1(__NR_close, r);
			r = g;
		}
	}
	if (r < 0) {
		struct rst_peercred_reply f = { .err = (s32)r, .step = RST_PEERCRED_STEP_REAPER, .done = 1 };
		struct kiovec iov = { &f, sizeof(f) };
		struct kmsghdr msg = { .iov = &iov, .iovlen = 1 };
		sys3(__NR_sendmsg, ctl, &msg, 0);
		for (;;)
			sys1(__NR_exit_group, 1);
	}
	sys2(__NR_munmap, m, size ? size : 1);
	agent_reaper((s32)ctl, (s32)r);
}

/* The agent: one request at a time, until gocr closes its end. */
static __attribute__((noreturn)) void peercred_main(void)
{
	for (;;) {
		struct rst_peercred_req q;
		struct kiovec iov = { &q, sizeof(q) };
		struct kcmsg_fd c = { 0 };
		struct kmsghdr m = { .iov = &iov, .iovlen = 1, .control = &c, .controllen = sizeof(c) };
		long n = sys3(__NR_recvmsg, RST_PEERCRED_FD, &m, MSG_CMSG_CLOEXEC);
		if (n == 0)
			for (;;)
				sys1(__NR_exit_group, 0);
		if (n != (long)sizeof(q))
			for (;;)
				sys1(__NR_exit_group, 110);
		s32 fd = (m.controllen >= CMSG_LEN_FD && c.level == SOL_SOCKET && c.type == SCM_RIGHTS) ? c.fd : -1;
		if (q.op == RST_PEERCRED_REAPER)
			peercred_become_reaper(&q, fd);
		/* pid 0: any pid (a call recording no credentials). In a new
		 * PID namespace, the agent's (its PID 1), set_tid names the
		 * PID there only (man 2 clone3). */
		s32 tid = q.pid;
		struct clone_args ca = {
			.exit_signal = SIGCHLD,
			.set_tid = tid ? (u64)&tid : 0,
			.set_tid_size = tid ? 1 : 0,
		};
		/* Without CLONE_VM and with no new stack, the child runs on a
		 * copy of this stack, like fork(2) (man 2 clone3). */
		long pid = sys2(__NR_clone3, &ca, sizeof(ca));
		if (pid == 0)
			peercred_call(&q, fd);
		if (fd >= 0)
			sys1(__NR_close, fd);
		struct rst_peercred_reply r = { .done = 1 };
		if (pid < 0) {
			r.err = (s32)pid;
			r.step = RST_PEERCRED_STEP_CLONE;
		} else {
			int status = 0;
			long w;
			do
				w = sys4(__NR_wait4, pid, &status, __WALL, NULL);
			while (w == -EINTR);
			r.status = status;
			if (w < 0) {
				r.err = (s32)w;
				r.step = RST_PEERCRED_STEP_EXIT;
			}
		}
		peercred_reply(&r, NULL, 0);
	}
}
