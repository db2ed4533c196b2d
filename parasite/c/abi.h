/*
 * abi.h: the interface between gocr (Go, parasite/abi.go) and the parasite
 * blob. Fixed-width fields with explicit padding; every offset is asserted
 * here with _Static_assert and in Go by parasite/abi_test.go, which reads
 * the asserts of this file.
 *
 * The parasite lives in one shared region (a memfd mapped both in the
 * target and in gocr):
 *   [0, BLOB_MAX)          the blob (code, data, bss)
 *   [CTL_OFF, +4K)         struct parasite_ctl
 *   [STACK_OFF, +STACK)    the parasite's own stack (never the target's)
 *   [DATA_OFF, +DATA)      command arguments and results
 *   [HELPER_STACK_OFF, ...) one stack per page-stream helper thread
 */
#ifndef GOCR_PARASITE_ABI_H
#define GOCR_PARASITE_ABI_H

#define PARASITE_BLOB_MAX 0x10000
#define PARASITE_CTL_OFF 0x10000
#define PARASITE_STACK_OFF 0x11000
#define PARASITE_STACK_SIZE 0x10000
#define PARASITE_DATA_OFF 0x21000
#define PARASITE_DATA_SIZE 0x100000
#define PARASITE_HELPER_STACK_OFF 0x121000
#define PARASITE_HELPER_STACK_SIZE 0x4000
#define PARASITE_STREAMS_MAX 4
#define PARASITE_REGION_SIZE 0x131000

/* Signals are 1..PARASITE_NSIG: _NSIG (arch/x86/include/asm/signal.h). */
#define PARASITE_NSIG 64

#define PCMD_DUMP_STATE 1
#define PCMD_DUMP_PAGES 2
#define PCMD_FINI 3
#define PCMD_RECV_FD 4
#define PCMD_WRITE_STREAMS 5
#define PCMD_POSIX_TIMERS 6
#define PCMD_SNAPSHOT 7
#define PCMD_RELEASE 8
#define PCMD_SETUP 9 /* the setup, below: not a command gocr sends */
#define PCMD_ATTRS 16
#define PCMD_PEER_PIDS 17

#define PARASITE_NR_ARGS 4

/* Control block. gocr writes cmd/args, bumps cmd_seq and writes a byte to
 * the command pipe; the parasite answers in ret, then sets done_seq =
 * cmd_seq and wakes it (futex). The parasite waits in a plain read(): an
 * untimed wait, so an interruption never replaces the thread's restart
 * block (a timed futex or poll would, kernel/futex/waitwait.c), and the
 * pipe's EOF tells it gocr died.
 *
 * Before the first command the blob sets itself up, from fields gocr
 * writes before it starts it (PCMD_SETUP names what it does; it is never
 * sent): it closes the region's memfd and the target's copy of gocr's
 * socket end (memfd, moved), takes its pipes from the socket in one
 * recvmsg (setup_fds of them: the two page pipes' write ends, the command
 * pipe's read end and, with setup_fds = 4, the threads' lifeline's read
 * end, into data_fd, cmd_fd and life), and, with uffd_flags nonzero,
 * makes a userfaultfd with those flags (uffd: its fd or -errno). Each of
 * these in the blob is a system call of the thread's own, where injected
 * it would be two ptrace stops. setup_ret is PARASITE_SETUP_PENDING until
 * the setup is done, then 0 or -errno (woken as a futex); gocr need not
 * wait for it: its first command waits in the command pipe, written
 * before the blob has taken the pipe, and is answered only after a
 * setup that worked. A failed setup sets done_seq to
 * PARASITE_SETUP_FAILED and wakes it, so that a command's waiter learns
 * of it. */
#define PARASITE_SETUP_PENDING 1
#define PARASITE_SETUP_FAILED 0xffffffffU
struct parasite_ctl {
	u32 cmd_seq;
	u32 done_seq;
	u32 cmd;
	s32 ret;
	u64 args[PARASITE_NR_ARGS];
	s32 data_fd[2]; /* write ends of the two page pipes, in the target's fd table */
	s32 sock;       /* the target's end of gocr's socket, for passing files */
	s32 cmd_fd;     /* read end of the command pipe: a byte per command, EOF when gocr is gone */
	u64 cure_rip;   /* where an injected system call starts (ptrace.Injection), */
	u64 cure_sp;    /* and its rsp: the thread's own signal frame on its stack */
	s32 memfd;      /* the region's memfd, closed by the setup */
	s32 moved;      /* the target's copy of gocr's socket end, closed by the setup */
	s32 life;       /* read end of the threads' lifeline, or -1 */
	s32 uffd;       /* the setup's userfaultfd, or -errno; -1 when none was asked for */
	u32 stubs;      /* nonzero while a thread-state stub may run in the region */
	s32 setup_ret;  /* PARASITE_SETUP_PENDING, then the setup's 0 or -errno */
	u32 setup_fds;  /* how many fds the setup takes from the socket: 3 or 4 */
	u32 pad;
	u64 uffd_flags; /* the setup's userfaultfd flags; 0: none */
};
BUILD_BUG_ON_OFFSET(struct parasite_ctl, cmd_seq, 0);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, done_seq, 4);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, cmd, 8);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, ret, 12);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, args, 16);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, data_fd, 48);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, sock, 56);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, cmd_fd, 60);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, cure_rip, 64);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, cure_sp, 72);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, memfd, 80);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, moved, 84);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, life, 88);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, uffd, 92);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, stubs, 96);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, setup_ret, 100);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, setup_fds, 104);
BUILD_BUG_ON_OFFSET(struct parasite_ctl, uffd_flags, 112);
_Static_assert(sizeof(struct parasite_ctl) == 120, "parasite_ctl size");

/* If gocr dies while the parasite runs (the command pipe reaches EOF),
 * nobody else knows the thread's registers. The parasite closes what was
 * injected and leaves the way an injected system call does: at cure_rip
 * with rsp = cure_sp, that call's code runs one system call (rax, rdi,
 * rsi) and then rt_sigreturn through the frame gocr wrote on the thread's
 * stack, which puts back the thread as gocr found it. The call is munmap
 * of the whole region: the code doing it is outside the region, so the
 * region goes too. While a thread-state stub may run in the region
 * (stubs), it stays mapped and the call is getpid. A thread-state stub
 * uses a frame in the region instead (parasite_thread_state below); the
 * parasite reaches into it here: rt_sigreturn wants rsp at the frame's
 * struct ucontext, right after pretcode (arch/x86/kernel/signal_64.c
 * rt_sigreturn: frame = sp - sizeof(long)), and the stub fills in
 * uc_stack, after uc_flags and uc_link
 * (arch/x86/include/uapi/asm/ucontext.h). */
#define PARASITE_SIGFRAME_UC 8
#define PARASITE_SIGFRAME_UC_STACK 24

/* struct sigaction as the kernel's rt_sigaction takes it
 * (arch/x86/include/uapi/asm/signal.h, no SA_RESTORER reshuffling). */
struct parasite_sigaction {
	u64 handler;
	u64 flags;
	u64 restorer;
	u64 mask;
};
_Static_assert(sizeof(struct parasite_sigaction) == 32, "parasite_sigaction size");

struct parasite_itimer {
	s64 interval_sec;
	s64 interval_usec;
	s64 value_sec;
	s64 value_usec;
};
_Static_assert(sizeof(struct parasite_itimer) == 32, "parasite_itimer size");

/* PCMD_DUMP_STATE result, at DATA_OFF; with it, the PCMD_ATTRS result at
 * DATA_OFF + PARASITE_STATE_ATTRS_OFF: one round trip for both. */
#define PARASITE_STATE_ATTRS_OFF 0x1000
struct parasite_state {
	struct parasite_sigaction sigactions[PARASITE_NSIG]; /* index = signo - 1 */
	u64 altstack_sp;
	s32 altstack_flags;
	u32 pad0;
	u64 altstack_size;
	struct parasite_itimer itimers[3]; /* ITIMER_REAL, _VIRTUAL, _PROF */
	u64 tid_address;
	s32 dumpable;
	s32 pdeathsig;
	s32 child_subreaper;
	s32 no_new_privs;
	s32 securebits; /* PR_GET_SECUREBITS: only the thread itself can read them */
	s32 ldt;	/* modify_ldt(0, NULL, 1): 0 without an LDT (dump_state) */
};
BUILD_BUG_ON_OFFSET(struct parasite_state, sigactions, 0);
BUILD_BUG_ON_OFFSET(struct parasite_state, altstack_sp, 2048);
BUILD_BUG_ON_OFFSET(struct parasite_state, altstack_flags, 2056);
BUILD_BUG_ON_OFFSET(struct parasite_state, altstack_size, 2064);
BUILD_BUG_ON_OFFSET(struct parasite_state, itimers, 2072);
BUILD_BUG_ON_OFFSET(struct parasite_state, tid_address, 2168);
BUILD_BUG_ON_OFFSET(struct parasite_state, dumpable, 2176);
BUILD_BUG_ON_OFFSET(struct parasite_state, pdeathsig, 2180);
BUILD_BUG_ON_OFFSET(struct parasite_state, child_subreaper, 2184);
BUILD_BUG_ON_OFFSET(struct parasite_state, no_new_privs, 2188);
BUILD_BUG_ON_OFFSET(struct parasite_state, securebits, 2192);
BUILD_BUG_ON_OFFSET(struct parasite_state, ldt, 2196);
_Static_assert(sizeof(struct parasite_state) == 2200, "parasite_state size");

/* PCMD_POSIX_TIMERS: args[0] = how many; at DATA_OFF one struct
 * parasite_posix_timer per timer with its id, the rest filled in by the
 * parasite: a timer's time left and interval (timer_gettime) and the
 * overrun of its last signal (timer_getoverrun) only the process can read
 * (man 2 timer_gettime, man 2 timer_getoverrun). */
struct parasite_posix_timer {
	s32 id;
	s32 overrun;
	s64 interval_sec;
	s64 interval_nsec;
	s64 value_sec;
	s64 value_nsec;
};
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, id, 0);
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, overrun, 4);
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, interval_sec, 8);
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, interval_nsec, 16);
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, value_sec, 24);
BUILD_BUG_ON_OFFSET(struct parasite_posix_timer, value_nsec, 32);
_Static_assert(sizeof(struct parasite_posix_timer) == 40, "parasite_posix_timer size");

/* PCMD_PEER_PIDS: args[0] = how many; at DATA_OFF one s32 fd each, which
 * the parasite replaces with the pid SO_PEERCRED gives on it, numbered as
 * the process's PID namespace numbers it (net/core/sock.c cred_to_ucred,
 * pid_vnr), or with -errno. */

/* PCMD_RECV_FD: args[0] = a unix socket in the target; receives one fd
 * sent with SCM_RIGHTS and returns its number.
 * PCMD_DUMP_PAGES: args[0] = offset of an iovec array inside the region,
 * args[1] = number of iovecs, args[2] = chunk size in bytes. Each iovec
 * names target memory. The data goes out in chunks alternating between the
 * two pipes (chunk 0 to data_fd[0], chunk 1 to data_fd[1], ...), so gocr
 * copies one pipe's chunk into the image while the other fills. */
struct parasite_iovec {
	u64 base;
	u64 len;
};
BUILD_BUG_ON_OFFSET(struct parasite_iovec, base, 0);
BUILD_BUG_ON_OFFSET(struct parasite_iovec, len, 8);
_Static_assert(sizeof(struct parasite_iovec) == 16, "parasite_iovec size");

/* PCMD_WRITE_STREAMS: args[0] = number of streams (1..STREAMS_MAX),
 * described at STREAMS_OFF. Each stream's memory is written with pwritev
 * to its own file (from PCMD_RECV_FD) from file_off on, one copy from the
 * target's pages into the image. Stream 0 is written by the parasite
 * thread itself, every other one by a helper thread it starts for the
 * command (on its own stack at HELPER_STACK_OFF + i * HELPER_STACK_SIZE),
 * so several cores copy at once; the command answers after every helper
 * has exited. Separate files, because a file system serializes writers of
 * one file on its inode lock (mm/shmem.c shmem_file_write_iter,
 * fs/ext4/file.c ext4_buffered_write_iter).
 *
 * running is 1 while stream i's helper lives: the kernel zeroes it and
 * wakes its futex when the thread is gone from user space
 * (CLONE_CHILD_CLEARTID, man 2 clone; kernel/fork.c mm_release), which is
 * also how gocr knows, before it unmaps the region, that no helper still
 * runs code or uses a stack in it. tid is the helper's (CLONE_PARENT_SETTID).
 *
 * Checksums: with args[1] (a chunk size) not 0, each stream whose
 * sums_off is not 0 also stores at sums_off the CRC32-C of what it wrote,
 * one u32 per piece: the pieces are cut at file offset sum_cut and every
 * args[1] bytes after it, and each is summed right after its pwritev, while
 * its bytes are still in the CPU's cache, and only once the kernel has read
 * them. The thread does not read an iovec whose byte in the array at
 * skip_off (one per iovec, if skip_off is not 0) is not 0: gocr knows the
 * sums of the pieces it touches are not to be used. Three lanes of
 * args[3] bytes each are summed side by side (the crc32 instruction's
 * latency is three times its throughput, Intel SDM "CRC32") and joined with
 * the tables at args[2]: Shift(c, lane) then Shift(c, 2 * lane), each four
 * tables of 256 u32 (internal/crc32c ShiftTable). gocr asks for sums only
 * on a CPU with SSE4.2. */
#define PARASITE_STREAMS_OFF 0x10100
struct parasite_stream {
	u64 iov_off; /* offset of the stream's iovec array inside the region */
	u64 nr_iov;
	u64 file_off;
	s32 fd;
	s32 ret; /* the stream's result: 0 or -errno */
	u32 running;
	s32 tid;
	u64 sums_off; /* offset of its u32 sums inside the region, or 0 */
	u64 sum_cut;  /* the first piece ends here (file offset > file_off) */
	u64 skip_off; /* offset of its iovecs' skip bytes, or 0 */
};
BUILD_BUG_ON_OFFSET(struct parasite_stream, iov_off, 0);
BUILD_BUG_ON_OFFSET(struct parasite_stream, nr_iov, 8);
BUILD_BUG_ON_OFFSET(struct parasite_stream, file_off, 16);
BUILD_BUG_ON_OFFSET(struct parasite_stream, fd, 24);
BUILD_BUG_ON_OFFSET(struct parasite_stream, ret, 28);
BUILD_BUG_ON_OFFSET(struct parasite_stream, running, 32);
BUILD_BUG_ON_OFFSET(struct parasite_stream, tid, 36);
BUILD_BUG_ON_OFFSET(struct parasite_stream, sums_off, 40);
BUILD_BUG_ON_OFFSET(struct parasite_stream, sum_cut, 48);
BUILD_BUG_ON_OFFSET(struct parasite_stream, skip_off, 56);
_Static_assert(sizeof(struct parasite_stream) == 64, "parasite_stream size");
_Static_assert(PARASITE_STREAMS_OFF + PARASITE_STREAMS_MAX * 64 <= PARASITE_STACK_OFF, "streams fit the control page");
_Static_assert(PARASITE_HELPER_STACK_OFF + PARASITE_STREAMS_MAX * PARASITE_HELPER_STACK_SIZE == PARASITE_REGION_SIZE,
	       "helper stacks end the region");

/* PCMD_SNAPSHOT: args[0] = the address of the parasite thread's rseq
 * area (0 if none), args[1] = its length (at most
 * PARASITE_SNAPSHOT_RSEQ_MAX bytes are kept). The parasite's thread forks
 * a process ("the fork child", exit signal 0, untraced) on its own stack
 * at PARASITE_FORK_STACK_TOP; the fork child leaves the job's session,
 * closes every fd but the command pipe and the file socket, names itself,
 * and clones the snapshot process sharing its memory (CLONE_VM, on the
 * stack at PARASITE_SNAPSHOT_STACK_TOP), then exits. The parasite reaps
 * it, so that no process is left in the job's tree, and answers the
 * snapshot process's PID: its memory is the job's at the fork, copy on
 * write (man 2 fork), and it serves the same commands as the parasite on
 * the same control block once gocr has cured the job. It ends at
 * PCMD_FINI or at the command pipe's EOF (exit_group).
 *
 * The kernel updates the rseq area of the forking thread in the fork
 * child's memory, which the snapshot shares (cpu ids, and it clears
 * rseq_cs outside a critical section: kernel/rseq.c): the area is saved
 * here before the fork and written back by the snapshot process before
 * its first command, when the fork child is gone.
 *
 * PCMD_RELEASE (the snapshot process only): args[0] = offset of an iovec
 * array inside the region, args[1] = how many: madvise(MADV_DONTNEED) of
 * each, once written, so that a page the job writes afterwards is its own
 * again and costs no copy (mm/memory.c wp_can_reuse_anon_folio). */
#define PARASITE_SNAPSHOT_OFF 0x10200
#define PARASITE_SNAPSHOT_RSEQ_MAX 32
/* The fork child's stack is the last 4 KiB of the data area, which no
 * command's data reaches (parasite/pages.go dataUsable); the snapshot
 * process's is the first helper stack, which no page stream uses (stream
 * i > 0 has stack i). */
#define PARASITE_FORK_STACK_TOP 0x121000
#define PARASITE_SNAPSHOT_STACK_TOP 0x125000
_Static_assert(PARASITE_FORK_STACK_TOP == PARASITE_DATA_OFF + PARASITE_DATA_SIZE, "fork child stack ends the data area");
_Static_assert(PARASITE_SNAPSHOT_STACK_TOP == PARASITE_HELPER_STACK_OFF + PARASITE_HELPER_STACK_SIZE,
	       "snapshot stack is helper stack 0");
struct parasite_snapshot {
	s32 pid;        /* the snapshot process (CLONE_PARENT_SETTID) */
	s32 err;        /* the fork child's failure: -errno, or 0 */
	u64 rseq_addr;
	u64 rseq_len;
	u8 rseq[PARASITE_SNAPSHOT_RSEQ_MAX];
	u32 seq;        /* the PCMD_SNAPSHOT command's cmd_seq: the snapshot
			 * process serves the commands after it, however
			 * late it first runs */
	u32 pad;
};
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, pid, 0);
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, err, 4);
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, rseq_addr, 8);
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, rseq_len, 16);
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, rseq, 24);
BUILD_BUG_ON_OFFSET(struct parasite_snapshot, seq, 56);
_Static_assert(sizeof(struct parasite_snapshot) == 64, "parasite_snapshot size");
_Static_assert(PARASITE_STREAMS_OFF + PARASITE_STREAMS_MAX * 64 <= PARASITE_SNAPSHOT_OFF &&
		       PARASITE_SNAPSHOT_OFF + 64 <= PARASITE_STACK_OFF,
	       "the snapshot block fits the control page");

/* The thread-state stub, at PARASITE_THREAD_STUB_OFF in the blob: gocr
 * points every other thread of the process at it at once (rdi = its
 * struct parasite_thread_state, rsi = a u32 counter, rdx = the read end of
 * a lifeline pipe only gocr writes, r8 = an rt_sigframe gocr built of the
 * thread as it found it), with every signal blocked. It reads the thread's
 * sigaltstack, clear_child_tid address, securebits, timer slack, TSC mode
 * and CPUID faulting (only readable by the thread itself: man 2
 * sigaltstack, PR_GET_TID_ADDRESS, PR_GET_SECUREBITS, PR_GET_TIMERSLACK
 * PR_GET_TSC, PR_MCE_KILL_GET and PR_GET_SPECULATION_CTRL in man 2 prctl, ARCH_GET_CPUID in man 2
 * arch_prctl) and thread keyring (man 2 keyctl),
 * counts itself done and wakes the counter's futex, then waits in read()
 * on the lifeline until gocr interrupts it and puts its registers back.
 * If read() returns at all, gocr is gone (EOF): the thread puts its own
 * alternate stack into the frame and rt_sigreturns through it (the
 * region stays mapped: see stubs in struct parasite_ctl). read() on a pipe, untimed,
 * never replaces the thread's restart block. */
#define PARASITE_THREAD_STUB_OFF 0x40
/* One per thread, 64-byte aligned; gocr puts the thread's rt_sigframe 128
 * bytes after it, and the byte right after the struct is the stub's read
 * buffer. */
struct parasite_thread_state {
	u64 altstack_sp;
	s32 altstack_flags;
	s32 pad;
	u64 altstack_size;
	s64 altstack_ret; /* sigaltstack's return: 0 or -errno */
	u64 tid_address;
	s64 tid_address_ret;
	s64 securebits; /* PR_GET_SECUREBITS's return: the bits, or -errno */
	s64 timer_slack; /* PR_GET_TIMERSLACK's return: nanoseconds, or -errno */
	s64 tsc_ret;     /* PR_GET_TSC's return: 0 or -errno */
	s64 tsc;         /* what PR_GET_TSC wrote: PR_TSC_ENABLE or PR_TSC_SIGSEGV */
	s64 cpuid;       /* ARCH_GET_CPUID's return: 1 enabled, 0 faulting, or -errno */
	s64 mce_kill;    /* PR_MCE_KILL_GET's return: PR_MCE_KILL_LATE, _EARLY, _DEFAULT, or -errno */
	s64 l1d_flush;   /* PR_GET_SPECULATION_CTRL(PR_SPEC_L1D_FLUSH)'s return */
	s64 thread_keyring; /* keyctl(KEYCTL_GET_KEYRING_ID, the thread keyring, create 0) */
};
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, altstack_sp, 0);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, altstack_flags, 8);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, altstack_size, 16);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, altstack_ret, 24);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tid_address, 32);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tid_address_ret, 40);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, securebits, 48);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, timer_slack, 56);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tsc_ret, 64);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, tsc, 72);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, cpuid, 80);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, mce_kill, 88);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, l1d_flush, 96);
BUILD_BUG_ON_OFFSET(struct parasite_thread_state, thread_keyring, 104);
_Static_assert(sizeof(struct parasite_thread_state) == 112, "parasite_thread_state size");


/* PCMD_ATTRS result, at DATA_OFF: process attributes only the process can
 * read of itself, and those of the parasite's own thread. Each is the
 * call's return: the value, or -errno (a kernel without the call). */
#define PARASITE_NODE_WORDS 16 /* a nodemask of 1024 nodes, MAX_NUMNODES at NODES_SHIFT 10 */
struct parasite_attrs {
	s64 thp_disable;  /* prctl(PR_GET_THP_DISABLE) */
	s64 memory_merge; /* prctl(PR_GET_MEMORY_MERGE) */
	s64 futex_slots;  /* prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS) */
	s64 keyrings[3];  /* keyctl(KEYCTL_GET_KEYRING_ID, thread, process, session keyring, create 0) */
	s64 user_session; /* keyctl(KEYCTL_GET_KEYRING_ID, the user session keyring, create 0) */
	s64 mempolicy_ret; /* get_mempolicy(&mode, nodes, ...) */
	s64 mempolicy_mode; /* the mode, with its MPOL_F_* mode flags */
	u64 mempolicy_nodes[PARASITE_NODE_WORDS];
	s64 timer_slack;  /* this thread's, as struct parasite_thread_state */
	s64 tsc_ret;
	s64 tsc;
	s64 cpuid;
	s64 mce_kill;
	s64 l1d_flush;
	s64 mdwe;         /* prctl(PR_GET_MDWE) */
	s64 membarrier;   /* membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0) */
	s64 membarrier_probed; /* without it: the REGISTER_* bits of the private commands that work */
};
BUILD_BUG_ON_OFFSET(struct parasite_attrs, thp_disable, 0);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, memory_merge, 8);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, futex_slots, 16);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, keyrings, 24);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, user_session, 48);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, mempolicy_ret, 56);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, mempolicy_mode, 64);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, mempolicy_nodes, 72);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, timer_slack, 200);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, tsc_ret, 208);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, tsc, 216);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, cpuid, 224);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, mce_kill, 232);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, l1d_flush, 240);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, mdwe, 248);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, membarrier, 256);
BUILD_BUG_ON_OFFSET(struct parasite_attrs, membarrier_probed, 264);
_Static_assert(sizeof(struct parasite_attrs) == 272, "parasite_attrs size");
_Static_assert(sizeof(struct parasite_state) <= PARASITE_STATE_ATTRS_OFF, "PCMD_DUMP_STATE's two results apart");

#endif
