/*
 * The parasite: runs inside a stopped target on its own stack, in a region
 * gocr mapped there, and serves gocr's commands until gocr interrupts it
 * with ptrace and removes it. It only reads the target's state; it never
 * changes anything the target could observe after the cure.
 */
#include "../../nolibc/nolibc.h"
#include "../../nolibc/crc32c.h"
#include "abi.h"

/* stack_t (include/uapi/asm-generic/signal.h); SS_ONSTACK in ss_flags
 * is a report, not a setting (include/uapi/linux/signal.h). */
struct kernel_stack_t {
	u64 ss_sp;
	s32 ss_flags;
	s32 pad;
	u64 ss_size;
};
#define SS_FLAGS_OFF 8
BUILD_BUG_ON_OFFSET(struct kernel_stack_t, ss_flags, SS_FLAGS_OFF);
#define SS_ONSTACK 1

struct kernel_itimerval {
	s64 it_interval_sec, it_interval_usec;
	s64 it_value_sec, it_value_usec;
};

/* struct itimerspec as timer_gettime writes it (include/uapi/linux/time.h,
 * 64-bit time_t on x86-64). */
struct kernel_itimerspec {
	s64 interval_sec, interval_nsec;
	s64 value_sec, value_nsec;
};

#define __NR_getsockopt 55
#define SOL_SOCKET_PEERCRED 1 /* SOL_SOCKET */
#define SO_PEERCRED 17

static long peer_pids(s32 *fds, u64 n)
{
	if (n > PARASITE_DATA_SIZE / sizeof(*fds))
		return -EINVAL;
	for (u64 i = 0; i < n; i++) {
		struct {
			s32 pid;
			u32 uid, gid;
		} uc = { 0, 0, 0 };
		u32 len = sizeof(uc);
		long ret = sys5(__NR_getsockopt, fds[i], SOL_SOCKET_PEERCRED, SO_PEERCRED, &uc, &len);
		fds[i] = ret < 0 ? (s32)ret : uc.pid;
	}
	return 0;
}

static long posix_timers(struct parasite_posix_timer *t, u64 n)
{
	if (n > PARASITE_DATA_SIZE / sizeof(*t))
		return -EINVAL;
	for (u64 i = 0; i < n; i++) {
		struct kernel_itimerspec spec;
		long ret = sys2(__NR_timer_gettime, t[i].id, &spec);
		if (ret < 0)
			return ret;
		t[i].interval_sec = spec.interval_sec;
		t[i].interval_nsec = spec.interval_nsec;
		t[i].value_sec = spec.value_sec;
		t[i].value_nsec = spec.value_nsec;
		ret = sys1(__NR_timer_getoverrun, t[i].id);
		if (ret < 0)
			return ret;
		t[i].overrun = (s32)ret;
	}
	return 0;
}

static long dump_state(struct parasite_state *st)
{
	long ret;

	for (int sig = 1; sig <= PARASITE_NSIG; sig++) {
		/* Reading SIGKILL/SIGSTOP is allowed; only setting them is
		 * refused (kernel/signal.c do_sigaction). sigsetsize is 8
		 * (man 2 rt_sigaction). */
		ret = sys4(__NR_rt_sigaction, sig, NULL, &st->sigactions[sig - 1], 8);
		if (ret < 0)
			return ret;
	}

	struct kernel_stack_t ss;
	ret = sys2(__NR_sigaltstack, NULL, &ss);
	if (ret < 0)
		return ret;
	st->altstack_sp = ss.ss_sp;
	st->altstack_flags = ss.ss_flags;
	st->altstack_size = ss.ss_size;

	for (int which = 0; which < 3; which++) {
		struct kernel_itimerval it;
		ret = sys2(__NR_getitimer, which, &it);
		if (ret < 0)
			return ret;
		st->itimers[which].interval_sec = it.it_interval_sec;
		st->itimers[which].interval_usec = it.it_interval_usec;
		st->itimers[which].value_sec = it.it_value_sec;
		st->itimers[which].value_usec = it.it_value_usec;
	}

	/* PR_GET_TID_ADDRESS needs CONFIG_CHECKPOINT_RESTORE (man 2 prctl). */
	ret = sys2(__NR_prctl, PR_GET_TID_ADDRESS, &st->tid_address);
	if (ret < 0)
		return ret;
	ret = sys1(__NR_prctl, PR_GET_DUMPABLE);
	if (ret < 0)
		return ret;
	st->dumpable = (s32)ret;
	ret = sys2(__NR_prctl, PR_GET_PDEATHSIG, &st->pdeathsig);
	if (ret < 0)
		return ret;
	ret = sys2(__NR_prctl, PR_GET_CHILD_SUBREAPER, &st->child_subreaper);
	if (ret < 0)
		return ret;
	ret = sys1(__NR_prctl, PR_GET_NO_NEW_PRIVS);
	if (ret < 0)
		return ret;
	st->no_new_privs = (s32)ret;
	ret = sys1(__NR_prctl, PR_GET_SECUREBITS);
	if (ret < 0)
		return ret;
	st->securebits = (s32)ret;
	/* Reading the mm's LDT into NULL returns 0 where it has none and
	 * EFAULT, truncated to an unsigned int, where it has one
	 * (arch/x86/kernel/ldt.c read_ldt, sys_modify_ldt); ENOSYS without
	 * CONFIG_MODIFY_LDT_SYSCALL, where no process can have one. */
	st->ldt = (s32)sys3(__NR_modify_ldt, 0, 0, 1);
	return 0;
}

/* What PCMD_ATTRS and the thread-state stub read: include/uapi/linux/prctl.h,
 * include/uapi/linux/keyctl.h, arch/x86/include/uapi/asm/prctl.h,
 * arch/x86/entry/syscalls/syscall_64.tbl. */
#define __NR_arch_prctl 158
#define __NR_keyctl 250
#define __NR_get_mempolicy 239
#define __NR_membarrier 324
#define PR_GET_TIMERSLACK 30
#define PR_GET_TSC 25
#define PR_MCE_KILL_GET 34
#define PR_GET_SPECULATION_CTRL 52
#define PR_SPEC_L1D_FLUSH 2
#define PR_GET_THP_DISABLE 42
#define PR_GET_MEMORY_MERGE 68
#define PR_FUTEX_HASH 78
#define PR_GET_MDWE 66
#define PR_FUTEX_HASH_GET_SLOTS 2
#define ARCH_GET_CPUID 0x1011
#define KEYCTL_GET_KEYRING_ID 0
#define KEY_SPEC_THREAD_KEYRING -1
#define KEY_SPEC_PROCESS_KEYRING -2
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_SESSION_KEYRING -5
/* include/uapi/linux/membarrier.h: each private expedited command, then
 * the command that registers for it; GET_REGISTRATIONS is Linux 6.3. */
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ (1 << 8)
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

/* Each is recorded as the call returned it; gocr decides what a missing
 * call (-EINVAL, -ENOSYS) means. get_mempolicy wants maxnode at least the
 * kernel's node count (mm/mempolicy.c kernel_get_mempolicy). */
static long dump_attrs(struct parasite_attrs *at)
{
	at->thp_disable = sys1(__NR_prctl, PR_GET_THP_DISABLE);
	at->memory_merge = sys1(__NR_prctl, PR_GET_MEMORY_MERGE);
	at->futex_slots = sys2(__NR_prctl, PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS);
	static const long which[3] = {KEY_SPEC_THREAD_KEYRING, KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING};
	for (int i = 0; i < 3; i++)
		at->keyrings[i] = sys3(__NR_keyctl, KEYCTL_GET_KEYRING_ID, which[i], 0);
	at->user_session = sys3(__NR_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_SESSION_KEYRING, 0);
	s32 mode = 0;
	at->mempolicy_ret = sys5(__NR_get_mempolicy, &mode, at->mempolicy_nodes, PARASITE_NODE_WORDS * 64, 0, 0);
	at->mempolicy_mode = mode;
	at->timer_slack = sys1(__NR_prctl, PR_GET_TIMERSLACK);
	s32 tsc = 0;
	at->tsc_ret = sys2(__NR_prctl, PR_GET_TSC, &tsc);
	at->tsc = tsc;
	at->cpuid = sys1(__NR_arch_prctl, ARCH_GET_CPUID);
	at->mce_kill = sys1(__NR_prctl, PR_MCE_KILL_GET);
	at->l1d_flush = sys2(__NR_prctl, PR_GET_SPECULATION_CTRL, PR_SPEC_L1D_FLUSH);
	/* Every other argument must be 0 (kernel/sys.c prctl_get_mdwe). */
	at->mdwe = sys5(__NR_prctl, PR_GET_MDWE, 0, 0, 0, 0);
	/* The registrations are the mm's (kernel/sched/membarrier.c
	 * membarrier_get_registrations): only a thread of the process can
	 * ask. */
	at->membarrier = sys3(__NR_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	/* A kernel before 6.3 does not have it (EINVAL), but a private
	 * expedited command fails with EPERM in a process not registered
	 * for it (kernel/sched/membarrier.c membarrier_private_expedited):
	 * each is tried. The barrier reaches only CPUs running a thread of
	 * the process, and every one is stopped, so it does nothing else. */
	at->membarrier_probed = 0;
	if (at->membarrier == -EINVAL) {
		static const long probe[3][2] = {
			{MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED},
			{MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE},
			{MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ},
		};
		for (int i = 0; i < 3; i++)
			if (sys3(__NR_membarrier, probe[i][0], 0, 0) == 0)
				at->membarrier_probed |= probe[i][1];
	}
	return 0;
}

/* UIO_MAXIOV: include/uapi/linux/uio.h */
#define UIO_MAXIOV 1024

/* iov_advance drops done bytes from the front of an iovec array (a short
 * vmsplice or pwritev), returning the new front and updating *n. */
static struct parasite_iovec *iov_advance(struct parasite_iovec *iov, u64 *n, u64 done)
{
	while (done > 0 && *n > 0) {
		if (done >= iov->len) {
			done -= iov->len;
			iov++;
			(*n)--;
		} else {
			iov->base += done;
			iov->len -= done;
			done = 0;
		}
	}
	return iov;
}

static long dump_pages(const s32 fds[2], struct parasite_iovec *iov, u64 n, u64 chunk)
{
	u64 left = chunk;
	int p = 0;
	if (chunk == 0)
		return -EINVAL;
	while (n > 0) {
		/* The iovecs that fit in what is left of this chunk, the last
		 * one cut short if needed (and restored after the call). */
		u64 k = 0, sum = 0, saved = 0;
		struct parasite_iovec *cut = NULL;
		while (k < n && k < UIO_MAXIOV && sum + iov[k].len <= left) {
			sum += iov[k].len;
			k++;
		}
		if (k < n && k < UIO_MAXIOV && sum < left) {
			cut = &iov[k];
			saved = cut->len;
			cut->len = left - sum;
			k++;
		}
		/* Without SPLICE_F_GIFT the pipe takes references to the
		 * target's pages (fs/splice.c vmsplice_to_pipe): no copy here;
		 * gocr splices them into the page image. */
		long ret = sys4(__NR_vmsplice, fds[p], iov, k, 0);
		if (cut)
			cut->len = saved;
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		if (ret == 0)
			return -EINVAL;
		u64 done = (u64)ret;
		left -= done;
		iov = iov_advance(iov, &n, done);
		if (left == 0) {
			p ^= 1;
			left = chunk;
		}
	}
	return 0;
}

#define __NR_recvmsg 47
#define __NR_pwritev 296

/* struct msghdr and struct cmsghdr on x86-64 (include/linux/socket.h). */
struct kmsghdr {
	void *name;
	s32 namelen;
	s32 pad;
	void *iov;
	u64 iovlen;
	void *control;
	u64 controllen;
	s32 flags;
	s32 pad2;
};

struct kcmsg_fd {
	u64 len;
	s32 level;
	s32 type;
	s32 fd;
	s32 pad;
};

/* recv_record receives one record on sock, its control data into
 * control (len bytes, cleared first), and returns recvmsg's result;
 * *controllen and *msg_flags are what the kernel reports of it
 * (struct msghdr, man 2 recvmsg). */
static long recv_record(int sock, void *control, u64 len, int flags, u64 *controllen, s32 *msg_flags)
{
	char byte;
	struct parasite_iovec iov = {(u64)&byte, 1};
	struct kmsghdr msg = {
		.iov = &iov,
		.iovlen = 1,
		.control = control,
		.controllen = len,
	};
	nl_memset(control, 0, len);
	long ret = sys3(__NR_recvmsg, sock, &msg, flags);
	*controllen = msg.controllen;
	*msg_flags = msg.flags;
	return ret;
}

static long recv_fd(int sock)
{
	struct kcmsg_fd cm;
	u64 clen;
	s32 mflags;
	long ret = recv_record(sock, &cm, sizeof(cm), 0, &clen, &mflags);
	if (ret < 0)
		return ret;
	/* SOL_SOCKET 1, SCM_RIGHTS 1; cmsg_len = CMSG_LEN(sizeof(int)) = 20
	 * (include/uapi/asm-generic/socket.h, include/linux/socket.h). */
	if (clen < 20 || cm.level != 1 || cm.type != 1)
		return -EINVAL;
	return cm.fd;
}

/* One PCMD_WRITE_STREAMS command: the region, and what its checksums
 * need (abi.h): the chunk size (0: no sums), the lane length and the two
 * shift tables. */
struct sum_ctx {
	u8 *base;
	u64 chunk;
	struct crc_lanes lanes;
};

/* crc_iov updates crc with the first done bytes the iovecs name, but for
 * those of an iovec whose skip byte is set (skip: the first iovec's). */
static u32 crc_iov(u32 crc, const struct parasite_iovec *iov, const u8 *skip, u64 done, const struct sum_ctx *sc)
{
	for (; done > 0; iov++) {
		u64 k = iov->len < done ? iov->len : done;
		if (!skip || !*skip)
			crc = crc_lanes(crc, (const u8 *)iov->base, k, &sc->lanes);
		if (skip)
			skip++;
		done -= k;
	}
	return crc;
}

/* write_pages writes the n iovecs' memory to fd from off on. With sums,
 * it also stores there the CRC32-C of each piece, the pieces cut at cut
 * and every sc->chunk bytes after it (abi.h PCMD_WRITE_STREAMS): each
 * pwritev then ends at the next cut at the latest, and what it wrote is
 * summed at once. */
static long write_pages(int fd, struct parasite_iovec *iov, u64 n, u64 off, u32 *sums, u64 cut,
			const u8 *skip, const struct sum_ctx *sc)
{
	const struct parasite_iovec *first = iov;
	u32 crc = ~0u;
	int begun = 0; /* a piece is begun and not stored */
	while (n > 0) {
		u64 k = 0, saved = 0;
		struct parasite_iovec *short_iov = NULL;
		if (sums) {
			u64 left = cut - off, sum = 0;
			while (k < n && k < UIO_MAXIOV && sum + iov[k].len <= left) {
				sum += iov[k].len;
				k++;
			}
			if (k < n && k < UIO_MAXIOV && sum < left) {
				short_iov = &iov[k];
				saved = short_iov->len;
				short_iov->len = left - sum;
				k++;
			}
		} else {
			k = n < UIO_MAXIOV ? n : UIO_MAXIOV;
		}
		long ret = sys6(__NR_pwritev, fd, iov, k, off, 0, 0);
		if (short_iov)
			short_iov->len = saved;
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		if (ret == 0)
			return -EINVAL;
		u64 done = (u64)ret;
		if (sums) {
			crc = crc_iov(crc, iov, skip ? skip + (iov - first) : NULL, done, sc);
			begun = 1;
		}
		off += done;
		iov = iov_advance(iov, &n, done);
		if (sums && off == cut) {
			*sums++ = ~crc;
			crc = ~0u;
			begun = 0;
			cut += sc->chunk;
		}
	}
	if (begun)
		*sums = ~crc;
	return 0;
}

/* write_stream writes stream s of the command sc. */
static long write_stream(struct parasite_stream *s, const struct sum_ctx *sc)
{
	u32 *sums = sc->chunk && s->sums_off ? (u32 *)(sc->base + s->sums_off) : NULL;
	const u8 *skip = sums && s->skip_off ? sc->base + s->skip_off : NULL;
	return write_pages(s->fd, (struct parasite_iovec *)(sc->base + s->iov_off), s->nr_iov, s->file_off, sums,
			   s->sum_cut, skip, sc);
}

/* A helper thread's whole life: write one stream, then exit the thread
 * only (exit, not exit_group). */
static __attribute__((noreturn, used)) void stream_thread(struct parasite_stream *s, const struct sum_ctx *sc)
{
	/* sc is on the parasite thread's stack, which outlives every helper
	 * (write_streams waits for them). */
	s->ret = (s32)write_stream(s, sc);
	for (;;)
		sys1(__NR_exit, 0);
}

/* clone_run starts a task running fn(a, b) whose stack ends at stack_top
 * and returns its TID or -errno. Raw clone, x86-64 argument order (flags,
 * stack, parent_tid, child_tid, tls; man 2 clone, NOTES). The child starts
 * on the new stack with every register but rax and rsp as the parent's,
 * so it finds its function and arguments on that stack; fn never
 * returns. Flags without an exit signal: a child that is not a thread
 * reports to its parent with no signal, and only a wait with __WALL or
 * __WCLONE sees it (man 2 wait). */
static long clone_run(u64 flags, u8 *stack_top, s32 *ptid, u32 *ctid, void *fn, void *a, void *b)
{
	u64 *sp = (u64 *)stack_top;
	*--sp = (u64)b;
	*--sp = (u64)a;
	*--sp = (u64)fn;
	long ret;
	register long r10 __asm__("r10") = (long)ctid;
	register long r8 __asm__("r8") = 0;
	__asm__ volatile("syscall\n"
			 "test %%rax, %%rax\n"
			 "jnz 1f\n"
			 "pop %%rax\n"
			 "pop %%rdi\n"
			 "pop %%rsi\n"
			 "andq $-16, %%rsp\n"
			 "call *%%rax\n"
			 "ud2\n"
			 "1:\n"
			 : "=a"(ret)
			 : "a"(__NR_clone), "D"(flags), "S"(sp), "d"(ptid), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

/* start_stream_thread runs stream_thread(s, sc) on a new thread of the
 * process whose stack ends at stack_top, and returns its TID or -errno.
 * It inherits the parasite thread's mask, which blocks every signal (gocr
 * set it), so no handler of the target's ever runs on it; with CLONE_VM
 * it gets no alternate signal stack and no rseq registration
 * (kernel/fork.c copy_process, kernel/rseq.c). No CLONE_SYSVSEM: with it
 * the kernel gives the process a System V semaphore undo list if it had
 * none (ipc/sem.c copy_semundo), which would outlive the dump, and which
 * a later dump cannot tell from one holding adjustments
 * (dump/sysvipc.go checkSemUndo). CLONE_THREAD does not need it (man 2
 * clone). */
static long start_stream_thread(struct parasite_stream *s, const struct sum_ctx *sc, u8 *stack_top)
{
	s->running = 1;
	long ret = clone_run(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				     CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID,
			     stack_top, &s->tid, &s->running, (void *)stream_thread, s, (void *)sc);
	if (ret < 0)
		s->running = 0;
	return ret;
}

static int iovecs_inside_data(u64 off, u64 n)
{
	return off >= PARASITE_DATA_OFF && off <= PARASITE_DATA_OFF + PARASITE_DATA_SIZE &&
	       n <= (PARASITE_DATA_OFF + PARASITE_DATA_SIZE - off) / sizeof(struct parasite_iovec);
}

/* sums_inside checks a stream's sums array: the most pieces it can have
 * (a piece per chunk its bytes span, plus one) inside the data area. */
static int sums_inside(const u8 *base, const struct parasite_stream *s, u64 chunk)
{
	const struct parasite_iovec *iov = (const struct parasite_iovec *)(base + s->iov_off);
	u64 bytes = 0;
	for (u64 i = 0; i < s->nr_iov; i++) {
		if (iov[i].len > (1UL << 62) - bytes)
			return 0;
		bytes += iov[i].len;
	}
	if (s->sum_cut <= s->file_off || s->sum_cut - s->file_off > chunk)
		return 0;
	u64 pieces = bytes / chunk + 2;
	return s->sums_off >= PARASITE_DATA_OFF && s->sums_off % 4 == 0 &&
	       s->sums_off <= PARASITE_DATA_OFF + PARASITE_DATA_SIZE &&
	       pieces <= (PARASITE_DATA_OFF + PARASITE_DATA_SIZE - s->sums_off) / 4;
}

static long write_streams(u8 *base, u64 n, u64 chunk, u64 tables_off, u64 lane)
{
	struct parasite_stream *st = (struct parasite_stream *)(base + PARASITE_STREAMS_OFF);
	struct sum_ctx sc = {.base = base, .chunk = chunk, .lanes = {.lane = lane}};
	if (n == 0 || n > PARASITE_STREAMS_MAX)
		return -EINVAL;
	if (chunk) {
		/* Two tables of 4 * 256 u32 inside the data area, lanes of
		 * whole u64s. */
		if (lane == 0 || lane % 8 || lane > (1UL << 30) || tables_off < PARASITE_DATA_OFF || tables_off % 4 ||
		    tables_off > PARASITE_DATA_OFF + PARASITE_DATA_SIZE - 2 * 4096)
			return -EINVAL;
		sc.lanes.shift1 = (const u32 *)(base + tables_off);
		sc.lanes.shift2 = sc.lanes.shift1 + 4 * 256;
	}
	for (u64 i = 0; i < n; i++) {
		if (!iovecs_inside_data(st[i].iov_off, st[i].nr_iov))
			return -EINVAL;
		if (chunk && st[i].sums_off && !sums_inside(base, &st[i], chunk))
			return -EINVAL;
		if (chunk && st[i].skip_off &&
		    (st[i].skip_off < PARASITE_DATA_OFF || st[i].skip_off > PARASITE_DATA_OFF + PARASITE_DATA_SIZE ||
		     st[i].nr_iov > PARASITE_DATA_OFF + PARASITE_DATA_SIZE - st[i].skip_off))
			return -EINVAL;
	}
	for (u64 i = 1; i < n; i++) {
		u8 *top = base + PARASITE_HELPER_STACK_OFF + (i + 1) * PARASITE_HELPER_STACK_SIZE;
		/* No thread to be had (RLIMIT_NPROC, a seccomp filter):
		 * this thread writes the stream after its own (ret 1 marks
		 * it; a helper only ever stores 0 or -errno). */
		st[i].ret = 0;
		if (start_stream_thread(&st[i], &sc, top) < 0)
			st[i].ret = 1;
	}
	long ret = write_stream(&st[0], &sc);
	for (u64 i = 1; i < n; i++) {
		if (st[i].ret == 1)
			st[i].ret = (s32)write_stream(&st[i], &sc);
		u32 v;
		while ((v = __atomic_load_n(&st[i].running, __ATOMIC_ACQUIRE)) != 0)
			futex_wait(&st[i].running, v);
		if (ret == 0)
			ret = st[i].ret;
	}
	return ret;
}

#define __NR_wait4 61
#define __NR_setsid 112
#define __NR_kill 62
#define SIGKILL 9
#define CLONE_UNTRACED 0x00800000UL
#define __WALL 0x40000000
#define MADV_DONTNEED 4
#define ECHILD 10

static __attribute__((noreturn)) void serve(struct parasite_ctl *ctl, u8 *base, u32 seen, int snapshot);

/* The snapshot process's life: put back the rseq area the fork child's
 * kernel exits may have changed (abi.h PCMD_SNAPSHOT), then serve
 * gocr's commands. Its first command comes only after the parasite has
 * reaped the fork child, whose rseq registration it was. */
static __attribute__((noreturn, used)) void snapshot_main(struct parasite_ctl *ctl, u8 *base)
{
	struct parasite_snapshot *s = (struct parasite_snapshot *)(base + PARASITE_SNAPSHOT_OFF);
	serve(ctl, base, s->seq, 1);
}

/* close_all_but closes every fd of the calling process but a and b
 * (close_range(2)). */
static long close_all_but(u32 a, u32 b)
{
	u32 lo = a < b ? a : b, hi = a < b ? b : a;
	long ret = 0;
	if (lo > 0)
		ret = sys3(__NR_close_range, 0, lo - 1, 0);
	if (ret >= 0 && hi > lo + 1)
		ret = sys3(__NR_close_range, lo + 1, hi - 1, 0);
	if (ret >= 0)
		ret = sys3(__NR_close_range, hi + 1, ~0U, 0);
	return ret;
}

/* The fork child: a copy of the job made by fork, which only makes the
 * snapshot process and goes. setsid first, so that neither it nor the
 * snapshot is in the job's process group or session: a signal to the
 * job's group never reaches them, and their exits never count for the
 * job's group being orphaned (kernel/exit.c kill_orphaned_pgrp). The
 * job's fds go, so that a pipe or socket the job closes is closed (the
 * command pipe and the file socket stay: gocr's way in). The snapshot
 * shares this process's memory (CLONE_VM), so it costs no second copy
 * of the page tables; this process's exit then leaves it an orphan,
 * adopted by the job's nearest subreaper or init (kernel/exit.c
 * find_new_reaper), never by the job. */
static __attribute__((noreturn, used)) void fork_child(struct parasite_ctl *ctl, u8 *base)
{
	struct parasite_snapshot *s = (struct parasite_snapshot *)(base + PARASITE_SNAPSHOT_OFF);
	static const char name[16] = "gocr-snapshot";
	long ret = sys0(__NR_setsid);
	if (ret >= 0)
		ret = close_all_but((u32)ctl->cmd_fd, (u32)ctl->sock);
	if (ret >= 0)
		ret = sys2(__NR_prctl, PR_SET_NAME, name);
	if (ret >= 0)
		ret = clone_run(CLONE_VM | CLONE_UNTRACED | CLONE_PARENT_SETTID, base + PARASITE_SNAPSHOT_STACK_TOP,
				&s->pid, NULL, (void *)snapshot_main, ctl, base);
	s->err = ret < 0 ? (s32)ret : 0;
	for (;;)
		sys1(__NR_exit, 0);
}

/* take_snapshot forks the job (abi.h PCMD_SNAPSHOT) and returns the
 * snapshot process's PID. The fork child is reaped here, before gocr lets
 * the job run: the job never has it as a child to see or wait for. */
static long take_snapshot(struct parasite_ctl *ctl, u8 *base, u32 seq, u64 rseq_addr, u64 rseq_len)
{
	struct parasite_snapshot *s = (struct parasite_snapshot *)(base + PARASITE_SNAPSHOT_OFF);
	s->seq = seq;
	if (rseq_len > PARASITE_SNAPSHOT_RSEQ_MAX)
		rseq_len = PARASITE_SNAPSHOT_RSEQ_MAX;
	s->pid = 0;
	s->err = -ECHILD;
	s->rseq_addr = rseq_addr;
	s->rseq_len = rseq_addr ? rseq_len : 0;
	if (s->rseq_len)
		nl_memcpy(s->rseq, (void *)rseq_addr, s->rseq_len);
	long child = clone_run(CLONE_UNTRACED, base + PARASITE_FORK_STACK_TOP, NULL, NULL, (void *)fork_child, ctl,
			       base);
	if (child < 0)
		return child;
	s32 status;
	long ret;
	do
		ret = sys4(__NR_wait4, child, &status, __WALL, NULL);
	while (ret == -EINTR);
	if (ret < 0) {
		/* A snapshot the command does not answer must not live on
		 * to read the commands meant for this parasite. */
		if (s->pid > 0)
			sys2(__NR_kill, s->pid, SIGKILL);
		return ret;
	}
	if (s->err < 0)
		return s->err;
	if (s->pid <= 0)
		return -ECHILD;
	return s->pid;
}

/* release drops the snapshot's pages once written (abi.h PCMD_RELEASE). */
static long release(struct parasite_iovec *iov, u64 n)
{
	for (u64 i = 0; i < n; i++) {
		long ret = sys3(__NR_madvise, iov[i].base, iov[i].len, MADV_DONTNEED);
		if (ret < 0)
			return ret;
	}
	return 0;
}

#define __NR_rt_sigreturn 15

/* The fds PCMD_RECV_FD put in the process, to close if gocr goes. Kept
 * on the parasite's stack, not in the blob: under PR_SET_MDWE the blob's
 * pages are mapped read and execute only (parasite/infect.go mapRegion),
 * so the blob has no data or bss of its own (checked by the Makefile). */
struct received {
	s32 fds[8];
	int n;
};

/* gocr is gone: close everything injected and return the thread to its
 * own code the way an injected system call does (abi.h cure_rip): that
 * call unmaps the region, unless a thread-state stub may still run in it
 * (abi.h stubs), and rt_sigreturn through the thread's own frame on its
 * stack puts back its registers, extended state and signal mask. The
 * lifeline stays open then too: a stub that has not reached its read()
 * yet must not read another file that took the number. */
static __attribute__((noreturn)) void self_cure(struct parasite_ctl *ctl, u8 *base, const struct received *rcv)
{
	int stubs = __atomic_load_n(&ctl->stubs, __ATOMIC_ACQUIRE) != 0;
	for (int i = 0; i < 2; i++)
		sys1(__NR_close, ctl->data_fd[i]);
	for (int i = 0; i < rcv->n; i++)
		sys1(__NR_close, rcv->fds[i]);
	sys1(__NR_close, ctl->sock);
	sys1(__NR_close, ctl->cmd_fd);
	if (ctl->uffd >= 0)
		sys1(__NR_close, ctl->uffd);
	if (!stubs && ctl->life >= 0)
		sys1(__NR_close, ctl->life);
	u64 nr = stubs ? __NR_getpid : __NR_munmap;
	u64 rip = ctl->cure_rip, sp = ctl->cure_sp;
	/* Nothing of the region is touched after the jump: the registers
	 * hold all the call needs. */
	__asm__ volatile("mov %1, %%rsp\n"
			 "jmp *%0\n"
			 :
			 : "r"(rip), "r"(sp), "a"(nr), "D"(base), "S"((u64)PARASITE_REGION_SIZE)
			 : "memory");
	__builtin_unreachable();
}

#define __NR_userfaultfd 323
#define MSG_CTRUNC 0x8
#define MSG_CMSG_CLOEXEC 0x40000000
#define EMFILE 24

/* The setup's record from gocr's socket: SCM_RIGHTS with up to four fds
 * (struct cmsghdr, include/linux/socket.h: CMSG_LEN(4 * sizeof(int)) is
 * 32). */
struct kcmsg_fds {
	u64 len;
	s32 level;
	s32 type;
	s32 fds[4];
};

/* setup is the blob's setup (abi.h PCMD_SETUP). The memfd and gocr's
 * socket end go first: whatever fails after, they are closed. A record
 * that brought fewer fds than it carried (at RLIMIT_NOFILE the kernel
 * drops the rest and sets MSG_CTRUNC, net/core/scm.c scm_detach_fds)
 * fails with EMFILE, the fds that came closed. */
static long setup(struct parasite_ctl *ctl)
{
	sys1(__NR_close, ctl->memfd);
	sys1(__NR_close, ctl->moved);
	if (ctl->uffd_flags)
		ctl->uffd = (s32)sys1(__NR_userfaultfd, ctl->uffd_flags);
	u32 n = ctl->setup_fds;
	if (n < 3 || n > 4)
		return -EINVAL;
	struct kcmsg_fds cm;
	u64 clen;
	s32 mflags;
	long ret = recv_record(ctl->sock, &cm, sizeof(cm), MSG_CMSG_CLOEXEC, &clen, &mflags);
	if (ret < 0)
		return ret;
	/* SOL_SOCKET 1, SCM_RIGHTS 1 (include/uapi/asm-generic/socket.h,
	 * include/linux/socket.h). */
	u32 got = 0;
	if (clen >= 16 && cm.level == 1 && cm.type == 1 && cm.len >= 16)
		got = (u32)((cm.len - 16) / 4);
	if (got > 4)
		got = 4;
	if (got != n || (mflags & MSG_CTRUNC)) {
		for (u32 i = 0; i < got; i++)
			sys1(__NR_close, cm.fds[i]);
		return -EMFILE;
	}
	ctl->data_fd[0] = cm.fds[0];
	ctl->data_fd[1] = cm.fds[1];
	ctl->cmd_fd = cm.fds[2];
	ctl->life = n == 4 ? cm.fds[3] : -1;
	return 0;
}

/* The blob's entry: the setup, then commands. A failed setup has no
 * command pipe: the parasite waits on the socket instead, whose EOF is
 * gocr gone too, for gocr to cure it. */
void parasite_main(struct parasite_ctl *ctl)
{
	u8 *base = (u8 *)ctl - PARASITE_CTL_OFF;
	long ret = setup(ctl);
	__atomic_store_n(&ctl->setup_ret, (s32)ret, __ATOMIC_RELEASE);
	futex_wake((u32 *)&ctl->setup_ret);
	if (ret < 0) {
		__atomic_store_n(&ctl->done_seq, PARASITE_SETUP_FAILED, __ATOMIC_RELEASE);
		futex_wake(&ctl->done_seq);
		struct received none = {.n = 0};
		for (;;) {
			char b;
			if (sys3(__NR_read, ctl->sock, &b, 1) == 0)
				self_cure(ctl, base, &none);
		}
	}
	serve(ctl, base, 0, 0);
}

/* serve runs commands until gocr stops the thread (the parasite) or says
 * PCMD_FINI (the snapshot process). At the command pipe's EOF gocr is
 * gone: the parasite cures itself, the snapshot process exits. */
static __attribute__((noreturn)) void serve(struct parasite_ctl *ctl, u8 *base, u32 seen, int snapshot)
{
	struct received rcv = {.n = 0};
	for (;;) {
		u32 seq = __atomic_load_n(&ctl->cmd_seq, __ATOMIC_ACQUIRE);
		if (seq == seen) {
			char b;
			long r = sys3(__NR_read, ctl->cmd_fd, &b, 1);
			if (r == 0 && snapshot)
				for (;;)
					sys1(__NR_exit_group, 0);
			if (r == 0)
				self_cure(ctl, base, &rcv);
			continue;
		}
		seen = seq;
		if (snapshot) {
			struct parasite_snapshot *s = (struct parasite_snapshot *)(base + PARASITE_SNAPSHOT_OFF);
			if (s->rseq_len) {
				nl_memcpy((void *)s->rseq_addr, s->rseq, s->rseq_len);
				s->rseq_len = 0;
			}
		}

		/* Read once: once answered, gocr may write the next. */
		u32 cmd = ctl->cmd;
		long ret;
		switch (cmd) {
		case PCMD_DUMP_STATE:
			ret = snapshot ? -EINVAL : dump_state((struct parasite_state *)(base + PARASITE_DATA_OFF));
			if (ret >= 0)
				ret = dump_attrs((struct parasite_attrs *)(base + PARASITE_DATA_OFF + PARASITE_STATE_ATTRS_OFF));
			break;
		case PCMD_DUMP_PAGES:
			if (!iovecs_inside_data(ctl->args[0], ctl->args[1])) {
				ret = -EINVAL;
				break;
			}
			ret = dump_pages(ctl->data_fd, (struct parasite_iovec *)(base + ctl->args[0]),
					 ctl->args[1], ctl->args[2]);
			break;
		case PCMD_RECV_FD:
			ret = recv_fd((int)ctl->args[0]);
			/* The snapshot's fds go with it: only the parasite
			 * must close what it received when it cures itself. */
			if (ret >= 0 && !snapshot && rcv.n < 8)
				rcv.fds[rcv.n++] = (s32)ret;
			break;
		case PCMD_WRITE_STREAMS:
			ret = write_streams(base, ctl->args[0], ctl->args[1], ctl->args[2], ctl->args[3]);
			break;
		case PCMD_POSIX_TIMERS:
			ret = snapshot ? -EINVAL
				       : posix_timers((struct parasite_posix_timer *)(base + PARASITE_DATA_OFF), ctl->args[0]);
			break;
		case PCMD_SNAPSHOT:
			ret = snapshot ? -EINVAL : take_snapshot(ctl, base, seq, ctl->args[0], ctl->args[1]);
			break;
		case PCMD_RELEASE:
			if (!snapshot || !iovecs_inside_data(ctl->args[0], ctl->args[1])) {
				ret = -EINVAL;
				break;
			}
			ret = release((struct parasite_iovec *)(base + ctl->args[0]), ctl->args[1]);
			break;
		case PCMD_ATTRS:
			ret = snapshot ? -EINVAL : dump_attrs((struct parasite_attrs *)(base + PARASITE_DATA_OFF));
			break;
		case PCMD_PEER_PIDS:
			ret = snapshot ? -EINVAL : peer_pids((s32 *)(base + PARASITE_DATA_OFF), ctl->args[0]);
			break;
		case PCMD_FINI:
			ret = 0;
			break;
		default:
			ret = -EINVAL;
		}
		ctl->ret = (s32)ret;
		__atomic_store_n(&ctl->done_seq, seq, __ATOMIC_RELEASE);
		futex_wake(&ctl->done_seq);
		if (snapshot && cmd == PCMD_FINI)
			for (;;)
				sys1(__NR_exit_group, 0);
	}
}

/* gocr starts the blob here with rdi = the control block and rsp = the top
 * of the parasite stack. The SysV ABI wants rsp 16-byte aligned before a
 * call (x86-64 psABI 3.2.2). The thread-state stub follows at a fixed
 * offset (abi.h); it is assembly because it runs on the thread's own
 * stack, which it must not touch, and its offsets are struct
 * parasite_thread_state's (named here, asserted against the struct) and
 * the rt_sigframe's (abi.h, built by parasite/sigframe_amd64.go). Syscall
 * numbers come from nolibc.h (arch/x86/entry/syscalls/syscall_64.tbl). */
#define XSTR(x) #x
#define STR(x) XSTR(x)
#define TS_ALTSTACK_RET 24
#define TS_TID_ADDRESS 32
#define TS_TID_ADDRESS_RET 40
#define TS_SECUREBITS 48
#define TS_TIMER_SLACK 56
#define TS_TSC_RET 64
#define TS_TSC 72
#define TS_CPUID 80
#define TS_MCE_KILL 88
#define TS_L1D_FLUSH 96
#define TS_THREAD_KEYRING 104
#define TS_SCRATCH 112 /* the byte right after the struct: read()'s buffer */
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, altstack_ret, TS_ALTSTACK_RET);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tid_address, TS_TID_ADDRESS);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tid_address_ret, TS_TID_ADDRESS_RET);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, securebits, TS_SECUREBITS);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, timer_slack, TS_TIMER_SLACK);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tsc_ret, TS_TSC_RET);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tsc, TS_TSC);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, cpuid, TS_CPUID);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, mce_kill, TS_MCE_KILL);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, l1d_flush, TS_L1D_FLUSH);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, thread_keyring, TS_THREAD_KEYRING);
_Static_assert(sizeof(struct parasite_thread_state) == TS_SCRATCH, "the stub's scratch byte follows its state");
#define FUTEX_WAKE_ALL 0x7fffffff /* INT_MAX waiters */
__asm__(".section .text.entry,\"ax\",@progbits\n"
	".globl parasite_entry\n"
	"parasite_entry:\n"
	"	andq $-16, %rsp\n"
	"	call parasite_main\n"
	"	ud2\n"
	"	.org " STR(PARASITE_THREAD_STUB_OFF) "\n"
	".globl parasite_thread_state\n"
	"parasite_thread_state:\n"
	"	mov %rdi, %r12\n"
	"	mov %rsi, %r13\n"
	"	mov %rdx, %r14\n"
	"	mov %r8, %r15\n"
	/* sigaltstack(NULL, &state->altstack_sp) */
	"	mov $" STR(__NR_sigaltstack) ", %eax\n"
	"	xor %edi, %edi\n"
	"	mov %r12, %rsi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_ALTSTACK_RET) "(%r12)\n"
	/* prctl(PR_GET_TID_ADDRESS, &state->tid_address) */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_GET_TID_ADDRESS) ", %edi\n"
	"	lea " STR(TS_TID_ADDRESS) "(%r12), %rsi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_TID_ADDRESS_RET) "(%r12)\n"
	/* prctl(PR_GET_SECUREBITS): the bits, or -errno, in rax */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_GET_SECUREBITS) ", %edi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_SECUREBITS) "(%r12)\n"
	/* prctl(PR_GET_TIMERSLACK): nanoseconds, or -errno */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_GET_TIMERSLACK) ", %edi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_TIMER_SLACK) "(%r12)\n"
	/* prctl(PR_GET_TSC, &state->tsc): the stub zeroed nothing, gocr did */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_GET_TSC) ", %edi\n"
	"	lea " STR(TS_TSC) "(%r12), %rsi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_TSC_RET) "(%r12)\n"
	/* arch_prctl(ARCH_GET_CPUID) */
	"	mov $" STR(__NR_arch_prctl) ", %eax\n"
	"	mov $" STR(ARCH_GET_CPUID) ", %edi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_CPUID) "(%r12)\n"
	/* prctl(PR_MCE_KILL_GET) */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_MCE_KILL_GET) ", %edi\n"
	"	xor %esi, %esi\n"
	"	xor %edx, %edx\n"
	"	xor %r10d, %r10d\n"
	"	xor %r8d, %r8d\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_MCE_KILL) "(%r12)\n"
	/* prctl(PR_GET_SPECULATION_CTRL, PR_SPEC_L1D_FLUSH, 0, 0, 0): the
	 * other arguments are still 0 */
	"	mov $" STR(__NR_prctl) ", %eax\n"
	"	mov $" STR(PR_GET_SPECULATION_CTRL) ", %edi\n"
	"	mov $" STR(PR_SPEC_L1D_FLUSH) ", %esi\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_L1D_FLUSH) "(%r12)\n"
	/* keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0):
	 * -ENOKEY when it has none */
	"	mov $" STR(__NR_keyctl) ", %eax\n"
	"	mov $" STR(KEYCTL_GET_KEYRING_ID) ", %edi\n"
	"	mov $" STR(KEY_SPEC_THREAD_KEYRING) ", %rsi\n"
	"	xor %edx, %edx\n"
	"	syscall\n"
	"	mov %rax, " STR(TS_THREAD_KEYRING) "(%r12)\n"
	/* count this thread done, futex(counter, FUTEX_WAKE, all) */
	"	lock incl (%r13)\n"
	"	mov $" STR(__NR_futex) ", %eax\n"
	"	mov %r13, %rdi\n"
	"	mov $" STR(FUTEX_WAKE) ", %esi\n"
	"	mov $" STR(FUTEX_WAKE_ALL) ", %edx\n"
	"	syscall\n"
	/* read(lifeline, scratch byte, 1): gocr never writes it. __NR_read
	 * is 0. */
	"	xor %eax, %eax\n"
	"	mov %r14, %rdi\n"
	"	lea " STR(TS_SCRATCH) "(%r12), %rsi\n"
	"	mov $1, %edx\n"
	"	syscall\n"
	/* gocr is gone: uc_stack = the current alternate stack without
	 * SS_ONSTACK, then rt_sigreturn with rsp at the ucontext. */
	"	mov $" STR(__NR_sigaltstack) ", %eax\n"
	"	xor %edi, %edi\n"
	"	lea " STR(PARASITE_SIGFRAME_UC_STACK) "(%r15), %rsi\n"
	"	syscall\n"
	"	andl $~" STR(SS_ONSTACK) ", " STR(PARASITE_SIGFRAME_UC_STACK) "+" STR(SS_FLAGS_OFF) "(%r15)\n"
	"	lea " STR(PARASITE_SIGFRAME_UC) "(%r15), %rsp\n"
	"	mov $" STR(__NR_rt_sigreturn) ", %eax\n"
	"	syscall\n"
	"	ud2\n"
	".previous\n");
