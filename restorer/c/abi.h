/*
 * abi.h: the restore plan gocr (restorer/abi.go) hands to the restorer.
 * One flat area in a memfd that both map shared: a fixed header, then
 * arrays and a string table at the offsets the header gives. Fixed-width
 * fields, explicit padding; every offset is asserted here and checked
 * against the Go struct by restorer/abi_test.go.
 */
#ifndef GOCR_RESTORER_ABI_H
#define GOCR_RESTORER_ABI_H

#define RST_MAGIC 0x31545352524f4347UL /* "GOCRRST1" little-endian */
#define RST_VERSION 8

/* The room the restorer takes in its hole besides its image and the plan
 * (restorer/c/restorer.c relocate; gocr sizes the hole the same way,
 * the restorer package's holeSizeFor): its own stack, the area the kernel's
 * vDSO and vvar pages are parked in while everything else is unmapped,
 * and a stack per extra thread and per page-stream helper, which gocr also
 * passes in rst_args.thread_stack. All page multiples (asserted in
 * restorer.c), so every part of the hole stays page-aligned. */
#define RST_RESTORER_STACK 0x40000UL /* 256 KiB */
#define RST_PARK_SIZE 0x100000UL     /* 1 MiB */
#define RST_THREAD_STACK 0x4000      /* 16 KiB: a few system calls, then it parks */

#define RST_STATE_RUNNING 0
#define RST_STATE_DONE 1
#define RST_STATE_FAILED 2

/* Restore steps, reported with a failure so gocr can say what failed. */
#define RST_STEP_CLONE 1
#define RST_STEP_FDS 2
#define RST_STEP_HOLE 3
#define RST_STEP_SPECIAL 4
#define RST_STEP_UNMAP 5
#define RST_STEP_MMAP 6
#define RST_STEP_PAGES 7
#define RST_STEP_MPROTECT 8
#define RST_STEP_MM 9
#define RST_STEP_SIGNALS 10
#define RST_STEP_TIMERS 11
#define RST_STEP_THREAD 12
#define RST_STEP_FS 13
#define RST_STEP_RLIMITS 14
#define RST_STEP_CREDS 15
#define RST_STEP_PENDING 16
#define RST_STEP_PRCTL 17
#define RST_STEP_TREE 18
#define RST_STEP_FIXUPS 19
#define RST_STEP_POSIX_TIMERS 20
#define RST_STEP_PIDFD 21
#define RST_STEP_SCHED 22
#define RST_STEP_PIDNS 23
#define RST_STEP_TIMENS 24
#define RST_STEP_STAGE 25
#define RST_STEP_PAGESUM 26
#define RST_STEP_ATTRS 40

#define RST_VMA_ANON_PRIVATE 1
#define RST_VMA_ANON_SHARED 2
#define RST_VMA_FILE_PRIVATE 3
#define RST_VMA_FILE_SHARED 4
#define RST_VMA_VDSO 5
#define RST_VMA_VVAR 6
#define RST_VMA_VVAR_VCLOCK 7
#define RST_VMA_SYSV_SHM 8 /* shmat(shmid, start, shm_flags) */

#define RST_MADV_HUGEPAGE 1
#define RST_MADV_NOHUGEPAGE 2
#define RST_MADV_DONTFORK 4
#define RST_MADV_DONTDUMP 8
#define RST_MADV_WIPEONFORK 16
#define RST_MADV_MLOCK 32
#define RST_MADV_SEQUENTIAL 64
#define RST_MADV_RANDOM 128
#define RST_MADV_MERGEABLE 256
#define RST_MADV_MLOCK_ONFAULT 512 /* with RST_MADV_MLOCK: mlock2(MLOCK_ONFAULT) */
/* MADV_HUGEPAGE before the pages are read in, not after: every run in the
 * mapping is whole 2 MiB extents, and prepare_huge's first write faults
 * a huge page in each (restorer/thp.go planHugeFaults); set with
 * RST_MADV_HUGEPAGE. */
#define RST_MADV_HUGEPAGE_FIRST 1024

/* rst_vma.flags: private anonymous memory shared with a parent or child
 * since fork. STAGE: the process maps it at `stage` and reads its pages
 * in before it forks its children, who inherit it; INHERIT: the process
 * got it at `stage` from its parent, drops the pages that are not the
 * parent's (those outside its fork_shared spans) and reads its own in.
 * Either way it is moved to start..end with the rest of the memory. */
#define RST_VMA_STAGE 1
#define RST_VMA_INHERIT 2
/* With RST_VMA_STAGE: at the stage even where its place is free (tests). */
#define RST_VMA_AT_STAGE 4

struct rst_vma {
	u64 start;
	u64 end;
	u64 pgoff;
	u32 prot;
	u32 kind;
	u32 mmap_flags; /* extra MAP_* flags: MAP_GROWSDOWN, MAP_NORESERVE */
	u32 madv;       /* RST_MADV_* */
	u32 path_off;   /* string table offset, file kinds */
	u32 open_flags; /* O_RDONLY or O_RDWR */
	u32 map_prot;   /* protection to map with before the pages are in */
	s32 map_fd;     /* ANON_SHARED: fd (as passed) of the shared object, or -1 */
	s32 shmid;      /* SYSV_SHM: the segment's id */
	u32 shm_flags;  /* SYSV_SHM: SHM_RDONLY, SHM_EXEC */
	u64 stage;      /* RST_VMA_STAGE, RST_VMA_INHERIT: where it is while the tree is built */
	u32 flags;      /* RST_VMA_* flags */
	u32 pad;
};
BUILD_BUG_ON_OFFSET(struct rst_vma, start, 0);
BUILD_BUG_ON_OFFSET(struct rst_vma, end, 8);
BUILD_BUG_ON_OFFSET(struct rst_vma, pgoff, 16);
BUILD_BUG_ON_OFFSET(struct rst_vma, prot, 24);
BUILD_BUG_ON_OFFSET(struct rst_vma, kind, 28);
BUILD_BUG_ON_OFFSET(struct rst_vma, mmap_flags, 32);
BUILD_BUG_ON_OFFSET(struct rst_vma, madv, 36);
BUILD_BUG_ON_OFFSET(struct rst_vma, path_off, 40);
BUILD_BUG_ON_OFFSET(struct rst_vma, open_flags, 44);
BUILD_BUG_ON_OFFSET(struct rst_vma, map_prot, 48);
BUILD_BUG_ON_OFFSET(struct rst_vma, map_fd, 52);
BUILD_BUG_ON_OFFSET(struct rst_vma, shmid, 56);
BUILD_BUG_ON_OFFSET(struct rst_vma, shm_flags, 60);
BUILD_BUG_ON_OFFSET(struct rst_vma, stage, 64);
BUILD_BUG_ON_OFFSET(struct rst_vma, flags, 72);
_Static_assert(sizeof(struct rst_vma) == 80, "rst_vma size");

/* A run of pages: its data is at file_off in page image file (an index
 * into the plan's page files, s32 fds at page_files_off): one of this
 * dump's page streams, or of a parent dump's for an incremental dump. The
 * thread of page stream `stream` reads it. */
#define RST_PAGE_STREAMS_MAX 4
/* The most children sharing one process's fd table or fs (rst_args
 * nr_sharers). */
#define RST_SHARERS_MAX 64
/* flags: the run is whole 2 MiB extents that get a huge page each before
 * their data is read in (vaddr and nr_pages aligned to them). */
#define RST_PAGES_HUGE 1
/* flags: the run is in a RST_VMA_STAGE or RST_VMA_INHERIT mapping: read
 * in at its stage address before the children are forked. */
#define RST_PAGES_STAGED 2
struct rst_pages {
	u64 vaddr;
	u64 nr_pages;
	u64 file_off;
	u32 stream;
	u32 flags;
	u32 file;
	u32 pad0;
};
BUILD_BUG_ON_OFFSET(struct rst_pages, vaddr, 0);
BUILD_BUG_ON_OFFSET(struct rst_pages, nr_pages, 8);
BUILD_BUG_ON_OFFSET(struct rst_pages, file_off, 16);
BUILD_BUG_ON_OFFSET(struct rst_pages, stream, 24);
BUILD_BUG_ON_OFFSET(struct rst_pages, flags, 28);
BUILD_BUG_ON_OFFSET(struct rst_pages, file, 32);
_Static_assert(sizeof(struct rst_pages) == 40, "rst_pages size");

/* A page file (struct rst_pages file: one of this dump's page images, or
 * a parent dump's) whose chunks the restorer verifies as it reads them in
 * (restorer/pagesums.go): its data is data_size bytes from file offset
 * data_off, one CRC32-C per chunk bytes of it, chunk 0's at index first
 * of the chunk sums (rst_args chunk_sums_off). Those with `here` set,
 * count of them `here`, are read whole by one thread in order and
 * verified as they come; gocr verified the others that are read before,
 * and skips those no run reads. chunk 0: none verified here. The rest is
 * the restorer's: done, chunks verified; open, a chunk begun, at_chunk,
 * next (the file offset of its next byte) and crc (the bare register). */
struct rst_sum_file {
	u64 data_off;
	u64 data_size;
	u64 chunk;
	u32 first;
	u32 here;
	u32 done;
	u32 open;
	u64 at_chunk;
	u64 next;
	u32 crc;
	u32 pad0;
};
BUILD_BUG_ON_OFFSET(struct rst_sum_file, data_off, 0);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, data_size, 8);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, chunk, 16);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, first, 24);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, here, 28);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, done, 32);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, open, 36);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, at_chunk, 40);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, next, 48);
BUILD_BUG_ON_OFFSET(struct rst_sum_file, crc, 56);
_Static_assert(sizeof(struct rst_sum_file) == 64, "rst_sum_file size");

/* One chunk's stored checksum; here: the restorer verifies it. */
struct rst_chunk_sum {
	u32 crc;
	u32 here;
};
BUILD_BUG_ON_OFFSET(struct rst_chunk_sum, crc, 0);
BUILD_BUG_ON_OFFSET(struct rst_chunk_sum, here, 4);
_Static_assert(sizeof(struct rst_chunk_sum) == 8, "rst_chunk_sum size");

/* A run of pages, of the fork_shared list (rst_args). */
struct rst_span {
	u64 vaddr;
	u64 nr_pages;
};
BUILD_BUG_ON_OFFSET(struct rst_span, vaddr, 0);
BUILD_BUG_ON_OFFSET(struct rst_span, nr_pages, 8);
_Static_assert(sizeof(struct rst_span) == 16, "rst_span size");

struct rst_fd {
	s32 target; /* fd number in the restored process */
	s32 src;    /* fd number gocr passed it as */
	u32 cloexec;
	u32 pad0;
};
BUILD_BUG_ON_OFFSET(struct rst_fd, target, 0);
BUILD_BUG_ON_OFFSET(struct rst_fd, src, 4);
BUILD_BUG_ON_OFFSET(struct rst_fd, cloexec, 8);
_Static_assert(sizeof(struct rst_fd) == 16, "rst_fd size");

struct rst_siginfo {
	u32 signo;
	s32 tid; /* the thread it is pending for; 0: process-wide */
	u8 info[128];
};
_Static_assert(sizeof(struct rst_siginfo) == 136, "rst_siginfo size");

/* A fixup: work only the restored process can do, once every fd has its
 * dumped number (files.Fixup in Go). */
#define RST_FIXUP_EPOLL_ADD 1  /* epoll_ctl(fd, EPOLL_CTL_ADD, target, {events, data}) */
#define RST_FIXUP_POSIX_LOCK 2 /* fcntl(fd, F_SETLK, {lock_type, SEEK_SET, start, len}) */
#define RST_FIXUP_FLOCK 3      /* flock(fd, lock_type | LOCK_NB) */
/* open(the path at strtab offset data, events) made fd (close-on-exec if
 * target is 1), at offset start: a /proc/PID/ file, PID being restored. */
#define RST_FIXUP_OPEN 4
/* ioctl(fd, TIOCSPGRP, &target): target becomes the foreground process
 * group of fd, the controlling terminal (rst_args.ctty_fd). */
#define RST_FIXUP_TTY_PGRP 5
/* close(fd): a file the restore gave the process for its fixups only
 * (EPOLL_ADD's file_fd). */
#define RST_FIXUP_CLOSE 6
/* dup3(target, fd, O_CLOEXEC if events is 1): fd is the same open file
 * description as target again, a dup of a file OPEN made (files/path.go). */
#define RST_FIXUP_DUP 7

/* EPOLL_ADD: epoll keys its items by (file, fd number), so a watch must be
 * added in the restored fd table, not gocr's (fs/eventpoll.c ep_find).
 * So when the number no longer names the watched file (closed, or reused
 * since the watch was added), file_fd holds the file, and target is made
 * to name it for the add (-1: target names it already).
 * POSIX_LOCK: a POSIX record lock belongs to the process that takes it
 * (fs/locks.c: its owner is the fd table). FLOCK: the lock belongs to the
 * open file description, but /proc/locks names the process that took it. */
struct rst_fixup {
	u32 op;
	s32 fd;
	s32 target;    /* EPOLL_ADD: the fd to watch */
	u32 events;    /* EPOLL_ADD */
	u64 data;      /* EPOLL_ADD */
	s64 start;     /* POSIX_LOCK: first byte */
	s64 len;       /* POSIX_LOCK: bytes, 0 to the end of the file */
	u32 lock_type; /* POSIX_LOCK: F_RDLCK or F_WRLCK; FLOCK: LOCK_SH or LOCK_EX */
	s32 file_fd;   /* EPOLL_ADD: the fd holding the watched file, or -1 */
};
BUILD_BUG_ON_OFFSET(struct rst_fixup, op, 0);
BUILD_BUG_ON_OFFSET(struct rst_fixup, fd, 4);
BUILD_BUG_ON_OFFSET(struct rst_fixup, target, 8);
BUILD_BUG_ON_OFFSET(struct rst_fixup, events, 12);
BUILD_BUG_ON_OFFSET(struct rst_fixup, data, 16);
BUILD_BUG_ON_OFFSET(struct rst_fixup, start, 24);
BUILD_BUG_ON_OFFSET(struct rst_fixup, len, 32);
BUILD_BUG_ON_OFFSET(struct rst_fixup, lock_type, 40);
BUILD_BUG_ON_OFFSET(struct rst_fixup, file_fd, 44);
_Static_assert(sizeof(struct rst_fixup) == 48, "rst_fixup size");

/* A timer_create(2) timer to recreate under its ID (gocrpb.PosixTimer),
 * armed relative to the restore. */
/* The timer's own signal was queued at the dump: the restorer lets the
 * timer queue it again (restore_posix_timers). */
#define RST_TIMER_SIGNAL_QUEUED 1

struct rst_posix_timer {
	s32 id;
	s32 clock_id;
	s32 notify;     /* sigev_notify, SIGEV_THREAD_ID included */
	s32 signo;
	u64 sigval;     /* sigev_value */
	s32 notify_tid; /* with SIGEV_THREAD_ID */
	u32 flags;      /* RST_TIMER_* */
	s64 value_ns;   /* 0: disarmed */
	s64 interval_ns;
};
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, id, 0);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, clock_id, 4);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, notify, 8);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, signo, 12);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, sigval, 16);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, notify_tid, 24);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, flags, 28);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, value_ns, 32);
BUILD_BUG_ON_OFFSET(struct rst_posix_timer, interval_ns, 40);
_Static_assert(sizeof(struct rst_posix_timer) == 48, "rst_posix_timer size");

/* Attributes a restored process or thread sets on itself before its
 * credentials drop, as gocr planned them (restorer/attrs.go says which):
 * SYSCALL: thread `thread` makes system call `nr` with args, where bit i
 * of ptr_args makes args[i] the address of data[args[i]] (a nodemask);
 * WRITE: the process writes the string at strtab offset args[1] into the
 * file at strtab offset args[0] (/proc/self/...), before it changes its
 * root. A failure reports RST_STEP_ATTRS with the call's index. */
#define RST_CALL_SYSCALL 1
#define RST_CALL_WRITE 2
/* FUTEX_SLOTS: the process sets its futex hash to args[0] slots
 * (PR_FUTEX_HASH_SET_SLOTS) before it creates its threads. */
#define RST_CALL_FUTEX_SLOTS 3
/* CGROUP: the process moves itself into a cgroup, writing "0" into the
 * cgroup.procs file at strtab offset args[0], before it forks its
 * children. */
#define RST_CALL_CGROUP 4
#define RST_CALL_DATA_WORDS 4
struct rst_call {
	u32 op;
	u32 thread;
	u32 nr;
	u32 ptr_args;
	u64 args[6];
	u64 data[RST_CALL_DATA_WORDS];
};
BUILD_BUG_ON_OFFSET(struct rst_call, op, 0);
BUILD_BUG_ON_OFFSET(struct rst_call, thread, 4);
BUILD_BUG_ON_OFFSET(struct rst_call, nr, 8);
BUILD_BUG_ON_OFFSET(struct rst_call, ptr_args, 12);
BUILD_BUG_ON_OFFSET(struct rst_call, args, 16);
BUILD_BUG_ON_OFFSET(struct rst_call, data, 64);
_Static_assert(sizeof(struct rst_call) == 96, "rst_call size");

/* A thread's CPU affinity mask: room for this many CPUs (bit n for CPU n,
 * as sched_getaffinity gives it). gocr refuses a wider one at the dump. */
#define RST_CPU_MASK_BYTES 128 /* 1024 CPUs */

/* Per-thread kernel state; threads[0] is the thread-group leader. */
struct rst_thread {
	s32 tid;
	u32 comm_off;
	u64 clear_child_tid;
	u64 robust_list;
	u64 robust_list_len;
	u64 rseq_ptr;
	u32 rseq_len;
	u32 rseq_sig;
	u64 altstack_sp;
	s32 altstack_flags;
	u32 pad0;
	u64 altstack_size;
	u32 sched_set;      /* 0: an image without scheduling, left as it comes */
	u32 sched_policy;   /* SCHED_* */
	s32 sched_nice;
	u32 sched_priority; /* rt priority */
	u64 sched_flags;    /* SCHED_FLAG_RESET_ON_FORK or 0 */
	u8 cpu_mask[RST_CPU_MASK_BYTES];
};
BUILD_BUG_ON_OFFSET(struct rst_thread, tid, 0);
BUILD_BUG_ON_OFFSET(struct rst_thread, comm_off, 4);
BUILD_BUG_ON_OFFSET(struct rst_thread, clear_child_tid, 8);
BUILD_BUG_ON_OFFSET(struct rst_thread, robust_list, 16);
BUILD_BUG_ON_OFFSET(struct rst_thread, robust_list_len, 24);
BUILD_BUG_ON_OFFSET(struct rst_thread, rseq_ptr, 32);
BUILD_BUG_ON_OFFSET(struct rst_thread, rseq_len, 40);
BUILD_BUG_ON_OFFSET(struct rst_thread, rseq_sig, 44);
BUILD_BUG_ON_OFFSET(struct rst_thread, altstack_sp, 48);
BUILD_BUG_ON_OFFSET(struct rst_thread, altstack_flags, 56);
BUILD_BUG_ON_OFFSET(struct rst_thread, altstack_size, 64);
BUILD_BUG_ON_OFFSET(struct rst_thread, sched_set, 72);
BUILD_BUG_ON_OFFSET(struct rst_thread, sched_policy, 76);
BUILD_BUG_ON_OFFSET(struct rst_thread, sched_nice, 80);
BUILD_BUG_ON_OFFSET(struct rst_thread, sched_priority, 84);
BUILD_BUG_ON_OFFSET(struct rst_thread, sched_flags, 88);
BUILD_BUG_ON_OFFSET(struct rst_thread, cpu_mask, 96);
_Static_assert(sizeof(struct rst_thread) == 224, "rst_thread size");

struct rst_rlimit {
	u32 resource;
	u32 pad0;
	u64 cur;
	u64 max;
};
_Static_assert(sizeof(struct rst_rlimit) == 24, "rst_rlimit size");

/* Signals are 1..RST_NSIG: _NSIG (arch/x86/include/asm/signal.h), the
 * length of rst_args.sigactions. */
#define RST_NSIG 64

struct rst_sigaction {
	u64 handler;
	u64 flags;
	u64 restorer;
	u64 mask;
};

struct rst_itimer {
	s64 interval_sec;
	s64 interval_usec;
	s64 value_sec;
	s64 value_usec;
};

/* struct prctl_mm_map, include/uapi/linux/prctl.h */
struct rst_mm_map {
	u64 start_code;
	u64 end_code;
	u64 start_data;
	u64 end_data;
	u64 start_brk;
	u64 brk;
	u64 start_stack;
	u64 arg_start;
	u64 arg_end;
	u64 env_start;
	u64 env_end;
	u64 auxv; /* pointer, filled in by the restorer */
	u32 auxv_size;
	u32 exe_fd; /* filled in by the restorer */
};
_Static_assert(sizeof(struct rst_mm_map) == 104, "rst_mm_map size");

/* The whole restore: a process table, parents before children, each live
 * process with its own plan (struct rst_args) further on in the same
 * mapping. Every process created by the restorer inherits the mapping. */
#define RST_TREE_MAGIC 0x45455254524f4347UL /* "GOCRTREE" little-endian */

#define RST_PROC_SETSID 1      /* setsid() before forking children */
#define RST_PROC_SETPGID 2     /* setpgid(0, 0): it leads its group */
#define RST_PROC_JOIN_PGID 4   /* setpgid(0, pgid) once every process exists */
#define RST_PROC_JOIN_ROOT_PGID 8 /* join the group of the root (pid pgid), led from outside the dump */
#define RST_PROC_SHARE_FILES 16 /* cloned with CLONE_FILES: its parent's fd table */
#define RST_PROC_SHARE_FS 32    /* cloned with CLONE_FS: its parent's cwd, root and umask */

/* rst_tree.flags */
#define RST_TREE_PIDNS 1 /* restore inside a new PID namespace, under a reaper (restorer.c reaper_main) */
#define RST_TREE_TIMENS 2 /* restore inside a new time namespace (restorer.c make_time_namespace) */

struct rst_tree {
	u64 magic;
	u32 version;
	u32 size;
	u32 nr_procs;
	u32 procs_off;
	u32 created; /* futex word: processes created so far */
	/* gocr's socket (SOCK_SEQPACKET, as passed) for the pidfd of every
	 * process as soon as it is created: gocr kills only what it has a
	 * pidfd for (restorer.c send_pidfd). */
	s32 pidfd_sock;
	/* RST_TREE_*. With RST_TREE_PIDNS, the reaper's pidfd is handed
	 * over as table index nr_procs, after which the table has none. */
	u32 flags;
	u32 pad0;
	/* With RST_TREE_TIMENS: the offsets from the machine's initial time
	 * namespace, in nanoseconds. */
	s64 timens_monotonic_ns;
	s64 timens_boottime_ns;
};
BUILD_BUG_ON_OFFSET(struct rst_tree, magic, 0);
BUILD_BUG_ON_OFFSET(struct rst_tree, version, 8);
BUILD_BUG_ON_OFFSET(struct rst_tree, size, 12);
BUILD_BUG_ON_OFFSET(struct rst_tree, nr_procs, 16);
BUILD_BUG_ON_OFFSET(struct rst_tree, procs_off, 20);
BUILD_BUG_ON_OFFSET(struct rst_tree, created, 24);
BUILD_BUG_ON_OFFSET(struct rst_tree, pidfd_sock, 28);
BUILD_BUG_ON_OFFSET(struct rst_tree, flags, 32);
BUILD_BUG_ON_OFFSET(struct rst_tree, timens_monotonic_ns, 40);
BUILD_BUG_ON_OFFSET(struct rst_tree, timens_boottime_ns, 48);
_Static_assert(sizeof(struct rst_tree) == 56, "rst_tree size");

struct rst_proc {
	s32 pid;
	s32 parent; /* index in the table, -1 for the root */
	s32 pgid;
	u32 flags;  /* RST_PROC_* */
	u32 zombie;
	u32 exit_status; /* a wait(2) status word, for zombies */
	u32 plan_off;    /* its struct rst_args; zombies report to their parent's */
	u32 exit_signal; /* clone3's, what its parent gets when it exits */
	char comm[16];   /* TASK_COMM_LEN (include/linux/sched.h), for zombies */
	/* A source, a terminal: the process, a session leader, takes it as its
	 * controlling terminal right after setsid, before it forks, so that
	 * its children inherit it (signal->tty is copied at fork, kernel/fork.c
	 * copy_signal, and TIOCSCTTY sets the caller's only); -1: none. */
	s32 ctty_fd;
	/* Futex word: 1 once this process has put its fds in place, for the
	 * children that share its fd table (RST_PROC_SHARE_FILES). */
	u32 table_ready;
};
BUILD_BUG_ON_OFFSET(struct rst_proc, pid, 0);
BUILD_BUG_ON_OFFSET(struct rst_proc, parent, 4);
BUILD_BUG_ON_OFFSET(struct rst_proc, pgid, 8);
BUILD_BUG_ON_OFFSET(struct rst_proc, flags, 12);
BUILD_BUG_ON_OFFSET(struct rst_proc, zombie, 16);
BUILD_BUG_ON_OFFSET(struct rst_proc, exit_status, 20);
BUILD_BUG_ON_OFFSET(struct rst_proc, plan_off, 24);
BUILD_BUG_ON_OFFSET(struct rst_proc, exit_signal, 28);
BUILD_BUG_ON_OFFSET(struct rst_proc, comm, 32);
BUILD_BUG_ON_OFFSET(struct rst_proc, ctty_fd, 48);
BUILD_BUG_ON_OFFSET(struct rst_proc, table_ready, 52);
_Static_assert(sizeof(struct rst_proc) == 56, "rst_proc size");

#define RST_HOLE_CANDIDATES 8

/* The restorer's fds as gocr starts it: the plan, then every source (os/exec
 * gives ExtraFiles[i] fd 3+i). */
#define RST_PLAN_FD 3
#define RST_FIRST_SOURCE_FD 4

struct rst_args {
	u64 magic;
	u32 version;
	u32 size;
	u32 state; /* futex word: RST_STATE_* */
	s32 err;   /* -errno of the failing call */
	u32 err_step;
	u32 err_index;
	u64 restorer_base; /* where the restorer moved itself */
	u64 restorer_size;
	s32 pid;
	u32 nr_page_streams;
	u32 exe_path_off;
	u32 nr_vmas;
	u32 vmas_off;
	u32 nr_pages;
	u32 pages_off;
	u32 nr_fds;
	u32 fds_off;
	u32 nr_siginfo;
	u32 siginfo_off;
	u32 nr_rlimits;
	u32 rlimits_off;
	u32 strtab_off;
	u32 auxv_off;
	u32 auxv_size;
	u32 nr_posix_timers;
	u32 posix_timers_off;
	u64 hole_candidates[RST_HOLE_CANDIDATES];
	u64 hole_size;
	struct rst_mm_map mm;
	struct rst_sigaction sigactions[RST_NSIG];
	u32 nr_threads;
	u32 threads_off;
	u32 threads_ready; /* futex word: threads that finished their setup */
	u32 thread_stack;  /* bytes of stack per thread in the hole */
	struct rst_itimer itimers[3];
	u32 nr_fixups;
	u32 fixups_off;
	s32 lifeline_fd; /* read end of a pipe only gocr writes: EOF means gocr died */
	/* Set by the restorer: the pipe through which each child sharing
	 * this process's fd table or fs says it is done with it (the read
	 * end in the parent, with nr_sharers such children; the write end in
	 * each child). */
	s32 sharers_fd;
	u32 nr_page_files; /* s32 fds of the page images, struct rst_pages file */
	u32 page_files_off;
	u64 pad3;
	u32 nr_calls; /* struct rst_call */
	u32 calls_off;
	u32 nr_fork_shared; /* struct rst_span: the pages of INHERIT mappings that are the parent's */
	u32 fork_shared_off;
	u32 personality;
	u32 umask;
	u32 cwd_off;
	u32 root_off;
	u32 comm_off;
	s32 pdeathsig;
	s32 dumpable;
	s32 child_subreaper;
	s32 no_new_privs;
	u32 set_creds;
	u32 uids[4]; /* real, effective, saved, fs */
	u32 gids[4];
	u32 nr_groups;
	u32 groups_off;
	u32 max_fd; /* highest fd number the plan uses, targets and sources */
	u32 nr_sharers;
	/* Page streams 1.. are read by helper threads at the same time as
	 * the leader reads stream 0, each created with the TID gocr chose for
	 * it (free when gocr looked and none of the dump's, so it can never
	 * take a PID this restore still has to claim); 0, or a TID taken
	 * since, and the leader reads that stream itself. */
	s32 page_helper_tids[RST_PAGE_STREAMS_MAX];
	/* 1 while stream i's helper lives; the kernel zeroes it and wakes
	 * its futex as the thread leaves user space (CLONE_CHILD_CLEARTID,
	 * man 2 clone). */
	u32 page_helpers_running[RST_PAGE_STREAMS_MAX];
	/* Capability sets, bit n for capability n (man 7 capabilities), and
	 * securebits (PR_GET_SECUREBITS), set by every thread with its
	 * uids; cap_last is this kernel's highest capability
	 * (/proc/sys/kernel/cap_last_cap). */
	u64 cap_eff;
	u64 cap_prm;
	u64 cap_inh;
	u64 cap_bnd;
	u64 cap_amb;
	u32 securebits;
	u32 cap_last;
	/* PR_GET_MDWE's flags, set last (restorer.c restore_stage2). */
	u32 mdwe;
	/* Set by the restorer: RST_PROC_SHARE_FILES and RST_PROC_SHARE_FS of
	 * this process, for the steps after its move, where the tree is
	 * gone. */
	u32 shares;
	/* The checksums of the page data verified as it is read in: one
	 * struct rst_sum_file per page file (none: nr_sum_files 0), the
	 * chunks' struct rst_chunk_sum, and sum_tables_off, the two shift
	 * tables of nolibc/crc32c.h for lanes of sum_lane bytes (0: none
	 * verified). A mismatch fails RST_STEP_PAGESUM with -EBADMSG, its
	 * index the run that ended the chunk. */
	u32 nr_chunk_sums;
	u32 chunk_sums_off;
	u32 sum_tables_off;
	u32 sum_lane;
	u32 nr_sum_files;
	u32 sum_files_off;
};
BUILD_BUG_ON_OFFSET(struct rst_args, magic, 0);
BUILD_BUG_ON_OFFSET(struct rst_args, version, 8);
BUILD_BUG_ON_OFFSET(struct rst_args, size, 12);
BUILD_BUG_ON_OFFSET(struct rst_args, state, 16);
BUILD_BUG_ON_OFFSET(struct rst_args, err, 20);
BUILD_BUG_ON_OFFSET(struct rst_args, err_step, 24);
BUILD_BUG_ON_OFFSET(struct rst_args, err_index, 28);
BUILD_BUG_ON_OFFSET(struct rst_args, restorer_base, 32);
BUILD_BUG_ON_OFFSET(struct rst_args, restorer_size, 40);
BUILD_BUG_ON_OFFSET(struct rst_args, pid, 48);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_page_streams, 52);
BUILD_BUG_ON_OFFSET(struct rst_args, exe_path_off, 56);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_vmas, 60);
BUILD_BUG_ON_OFFSET(struct rst_args, vmas_off, 64);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_pages, 68);
BUILD_BUG_ON_OFFSET(struct rst_args, pages_off, 72);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_fds, 76);
BUILD_BUG_ON_OFFSET(struct rst_args, fds_off, 80);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_siginfo, 84);
BUILD_BUG_ON_OFFSET(struct rst_args, siginfo_off, 88);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_rlimits, 92);
BUILD_BUG_ON_OFFSET(struct rst_args, rlimits_off, 96);
BUILD_BUG_ON_OFFSET(struct rst_args, strtab_off, 100);
BUILD_BUG_ON_OFFSET(struct rst_args, auxv_off, 104);
BUILD_BUG_ON_OFFSET(struct rst_args, auxv_size, 108);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_posix_timers, 112);
BUILD_BUG_ON_OFFSET(struct rst_args, posix_timers_off, 116);
BUILD_BUG_ON_OFFSET(struct rst_args, hole_candidates, 120);
BUILD_BUG_ON_OFFSET(struct rst_args, hole_size, 184);
BUILD_BUG_ON_OFFSET(struct rst_args, mm, 192);
BUILD_BUG_ON_OFFSET(struct rst_args, sigactions, 296);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_threads, 2344);
BUILD_BUG_ON_OFFSET(struct rst_args, threads_off, 2348);
BUILD_BUG_ON_OFFSET(struct rst_args, threads_ready, 2352);
BUILD_BUG_ON_OFFSET(struct rst_args, thread_stack, 2356);
BUILD_BUG_ON_OFFSET(struct rst_args, itimers, 2360);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_fixups, 2456);
BUILD_BUG_ON_OFFSET(struct rst_args, fixups_off, 2460);
BUILD_BUG_ON_OFFSET(struct rst_args, lifeline_fd, 2464);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_page_files, 2472);
BUILD_BUG_ON_OFFSET(struct rst_args, page_files_off, 2476);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_calls, 2488);
BUILD_BUG_ON_OFFSET(struct rst_args, calls_off, 2492);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_fork_shared, 2496);
BUILD_BUG_ON_OFFSET(struct rst_args, fork_shared_off, 2500);
BUILD_BUG_ON_OFFSET(struct rst_args, personality, 2504);
BUILD_BUG_ON_OFFSET(struct rst_args, umask, 2508);
BUILD_BUG_ON_OFFSET(struct rst_args, cwd_off, 2512);
BUILD_BUG_ON_OFFSET(struct rst_args, root_off, 2516);
BUILD_BUG_ON_OFFSET(struct rst_args, comm_off, 2520);
BUILD_BUG_ON_OFFSET(struct rst_args, pdeathsig, 2524);
BUILD_BUG_ON_OFFSET(struct rst_args, dumpable, 2528);
BUILD_BUG_ON_OFFSET(struct rst_args, child_subreaper, 2532);
BUILD_BUG_ON_OFFSET(struct rst_args, no_new_privs, 2536);
BUILD_BUG_ON_OFFSET(struct rst_args, set_creds, 2540);
BUILD_BUG_ON_OFFSET(struct rst_args, uids, 2544);
BUILD_BUG_ON_OFFSET(struct rst_args, gids, 2560);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_groups, 2576);
BUILD_BUG_ON_OFFSET(struct rst_args, groups_off, 2580);
BUILD_BUG_ON_OFFSET(struct rst_args, max_fd, 2584);
BUILD_BUG_ON_OFFSET(struct rst_args, page_helper_tids, 2592);
BUILD_BUG_ON_OFFSET(struct rst_args, page_helpers_running, 2608);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_eff, 2624);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_prm, 2632);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_inh, 2640);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_bnd, 2648);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_amb, 2656);
BUILD_BUG_ON_OFFSET(struct rst_args, securebits, 2664);
BUILD_BUG_ON_OFFSET(struct rst_args, cap_last, 2668);
BUILD_BUG_ON_OFFSET(struct rst_args, mdwe, 2672);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_chunk_sums, 2680);
BUILD_BUG_ON_OFFSET(struct rst_args, chunk_sums_off, 2684);
BUILD_BUG_ON_OFFSET(struct rst_args, sum_tables_off, 2688);
BUILD_BUG_ON_OFFSET(struct rst_args, sum_lane, 2692);
BUILD_BUG_ON_OFFSET(struct rst_args, nr_sum_files, 2696);
BUILD_BUG_ON_OFFSET(struct rst_args, sum_files_off, 2700);
_Static_assert(sizeof(struct rst_args) == 2704, "rst_args size");

/* The peer-credentials agent (restorer/c/peercred.c, restorer/peercred.go):
 * the restorer run with the one argument RST_PEERCRED_ARG makes, for
 * gocr, the socket calls that record a unix socket's peer credentials,
 * each in a process of its own with the PID and ids they must name. gocr
 * sends a request on the SOCK_SEQPACKET socket at RST_PEERCRED_FD (with
 * the socket to listen or connect as SCM_RIGHTS); the process making the
 * call answers (with the pair's two fds), then the agent answers with
 * done = 1 once that process is reaped and its PID free again.
 *
 * For a restore in a new PID namespace the agent is started in it, its
 * PID 1, so that each call's process has the dumped PID there; the last
 * request, RST_PEERCRED_REAPER (gocr's pidfd as SCM_RIGHTS), makes it the
 * namespace's reaper in the restorer's stead: it takes over, at fds 3,
 * 4, ..., the nr_fds fds of gocr that the memfd gocr holds at fd_list
 * lists (pidfd_getfd), as the restorer would have them, and answers
 * done = 1 once it handed gocr its own pidfd. */
#define RST_PEERCRED_ARG "peercred"
#define RST_PEERCRED_FD 3
#define RST_PEERCRED_MAX_GROUPS 256

#define RST_PEERCRED_SOCKETPAIR 1
#define RST_PEERCRED_LISTEN 2
#define RST_PEERCRED_CONNECT 3
#define RST_PEERCRED_REAPER 4

#define RST_PEERCRED_STEP_CLONE 1
#define RST_PEERCRED_STEP_GROUPS 2
#define RST_PEERCRED_STEP_GID 3
#define RST_PEERCRED_STEP_UID 4
#define RST_PEERCRED_STEP_CALL 5
#define RST_PEERCRED_STEP_EXIT 6
#define RST_PEERCRED_STEP_REAPER 7

struct rst_peercred_req {
	u32 op;
	s32 pid;       /* 0: any */
	u32 uid;       /* the effective uid and gid to make the call with */
	u32 gid;
	s32 arg;       /* socketpair: the socket type; listen: the backlog */
	u32 nr_groups;
	u32 addr_len;  /* connect: the length of addr */
	u32 pad0;
	u8 addr[112];  /* connect: a struct sockaddr_un */
	u32 groups[RST_PEERCRED_MAX_GROUPS];
	s32 fd_list;   /* reaper: gocr's fd of the memfd listing its fds */
	u32 nr_fds;    /* reaper: how many it lists */
};

struct rst_peercred_reply {
	s32 err;   /* 0, or a negative errno */
	u32 step;  /* RST_PEERCRED_STEP_* that failed */
	u32 done;  /* 1: the agent's answer, the call's process is gone */
	s32 status; /* done: the call's process's wait status */
};

BUILD_BUG_ON_OFFSET(struct rst_peercred_req, op, 0);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, pid, 4);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, uid, 8);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, gid, 12);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, arg, 16);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, nr_groups, 20);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, addr_len, 24);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, addr, 32);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, groups, 144);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, fd_list, 1168);
BUILD_BUG_ON_OFFSET(struct rst_peercred_req, nr_fds, 1172);
_Static_assert(sizeof(struct rst_peercred_req) == 1176, "rst_peercred_req size");
BUILD_BUG_ON_OFFSET(struct rst_peercred_reply, err, 0);
BUILD_BUG_ON_OFFSET(struct rst_peercred_reply, step, 4);
BUILD_BUG_ON_OFFSET(struct rst_peercred_reply, done, 8);
BUILD_BUG_ON_OFFSET(struct rst_peercred_reply, status, 12);
_Static_assert(sizeof(struct rst_peercred_reply) == 16, "rst_peercred_reply size");

#endif
