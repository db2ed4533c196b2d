/*
 * The restorer: a tiny static PIE that gocr runs from a memfd. It
 *   1. clones the process to restore with clone3 set_tid (so it gets its
 *      dumped PID) and CLONE_PARENT (so gocr, not this helper, is its
 *      parent), and exits;
 * and in that new process
 *   2. puts the fds in place, moves itself (code, stack, the plan) into a
 *      hole no dumped mapping uses, unmaps everything else, moves the
 *      kernel's vDSO/vvar onto the dumped addresses, maps every dumped
 *      VMA, reads pages straight from the page image into place, and
 *      restores mm fields, signal dispositions, timers, per-thread kernel
 *      state, fs state, limits, credentials and pending signals;
 *   3. reports RST_STATE_DONE and waits. gocr then seizes it, unmaps the
 *      restorer and sets the dumped registers and signal mask with ptrace.
 * Any failure is reported in the plan (step, index, -errno) and the new
 * process exits: gocr reaps it, nothing is left behind. Every process is
 * created with CLONE_PIDFD and its pidfd handed to gocr at once
 * (send_pidfd), so a failed restore kills exactly what it created.
 */
#include "../../nolibc/nolibc.h"
#include "../../nolibc/crc32c.h"
#include "abi.h"

#define __NR_lseek 8
#define __NR_pwrite64 18
#define __NR_pipe2 293
/* include/uapi/linux/fs.h */
#define SEEK_SET 0
#define SEEK_END 2
#define PAGE_SIZE 4096UL
#define PAGE_ALIGN(x) (((x) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
/* 47-bit user address space (arch/x86/include/asm/page_64_types.h,
 * TASK_SIZE_MAX without 5-level paging). */
#define TASK_SIZE 0x7ffffffff000UL

_Static_assert(RST_RESTORER_STACK % PAGE_SIZE == 0 && RST_PARK_SIZE % PAGE_SIZE == 0 &&
		       RST_THREAD_STACK % PAGE_SIZE == 0,
	       "the restorer's stack, the park and the thread stacks keep the hole's parts page-aligned");

/* include/uapi/linux/sched.h */
#define CLONE_PIDFD 0x00001000UL
#define CLONE_PARENT 0x00008000UL

/* include/uapi/asm-generic/mman-common.h */
#define MADV_RANDOM 1
#define MADV_DONTNEED 4
#define MADV_SEQUENTIAL 2
#define MADV_DONTFORK 10
#define MADV_MERGEABLE 12
#define MLOCK_ONFAULT 1
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#define MADV_DONTDUMP 16
#define MADV_WIPEONFORK 18

/* include/uapi/linux/signal.h; SS_ONSTACK (1) is a report, not a setting. */
#define SS_DISABLE 2
#define SS_AUTODISARM (1U << 31)

/* arch/x86/include/uapi/asm/signal.h */
#define SIGKILL 9
#define SIGCHLD 17
#define SIGSTOP 19

/* include/uapi/asm-generic/resource.h */
#define RLIMIT_NOFILE 7

/* include/uapi/linux/eventpoll.h */
#define EPOLL_CTL_ADD 1

/* include/uapi/linux/wait.h */
#define P_PID 1
#define WEXITED 0x00000004
#define WNOWAIT 0x01000000
#define __WALL 0x40000000

#define XSTR(x) #x
#define STR(x) XSTR(x)

/* struct clone_args, include/uapi/linux/sched.h (CLONE_ARGS_SIZE_VER2) */
struct clone_args {
	u64 flags;
	u64 pidfd;
	u64 child_tid;
	u64 parent_tid;
	u64 exit_signal;
	u64 stack;
	u64 stack_size;
	u64 tls;
	u64 set_tid;
	u64 set_tid_size;
	u64 cgroup;
};

extern char __restorer_start[], __restorer_end[];

static char maps_buf[64 * 1024];

static void report(struct rst_args *a, u32 state)
{
	__atomic_store_n(&a->state, state, __ATOMIC_RELEASE);
	futex_wake(&a->state);
}

static __attribute__((noreturn)) void fail(struct rst_args *a, u32 step, u32 index, long err)
{
	a->err = (s32)err;
	a->err_step = step;
	a->err_index = index;
	report(a, RST_STATE_FAILED);
	for (;;)
		sys1(__NR_exit_group, 1);
}

#define CHECK(a, step, index, expr)                    \
	do {                                           \
		long __r = (long)(expr);               \
		if (__r < 0 && __r > -4096)            \
			fail(a, step, index, __r);     \
	} while (0)

static const char *str(struct rst_args *a, u32 off)
{
	return (const char *)a + a->strtab_off + off;
}

static u64 parse_hex(const char **p)
{
	u64 v = 0;
	for (;;) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (u64)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (u64)(c - 'a' + 10);
		else
			break;
		(*p)++;
	}
	return v;
}

static int str_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return b[n] == 0;
}

struct special {
	u32 kind;
	u64 start, len;
};

/* The kernel's own special mappings of this process, from
 * /proc/self/maps (man 5 proc); their set is data, not a fixed list. */
static int find_specials(struct special *sp, int max)
{
	long fd = sys2(__NR_open, "/proc/self/maps", O_RDONLY);
	if (fd < 0)
		return (int)fd;
	size_t len = 0;
	for (;;) {
		long n = sys3(__NR_read, fd, maps_buf + len, sizeof(maps_buf) - 1 - len);
		if (n < 0) {
			sys1(__NR_close, fd);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len >= sizeof(maps_buf) - 1)
			break;
	}
	sys1(__NR_close, fd);
	maps_buf[len] = 0;

	int count = 0;
	const char *p = maps_buf;
	while (*p && count < max) {
		const char *line = p;
		while (*p && *p != '\n')
			p++;
		const char *eol = p;
		if (*p)
			p++;
		const char *q = line;
		u64 start = parse_hex(&q);
		q++;
		u64 end = parse_hex(&q);
		/* the name starts at the first '[' on the line, if any */
		const char *name = line;
		while (name < eol && *name != '[')
			name++;
		if (name == eol)
			continue;
		size_t nlen = (size_t)(eol - name);
		u32 kind = 0;
		if (str_eq(name, "[vdso]", nlen))
			kind = RST_VMA_VDSO;
		else if (str_eq(name, "[vvar]", nlen))
			kind = RST_VMA_VVAR;
		else if (str_eq(name, "[vvar_vclock]", nlen))
			kind = RST_VMA_VVAR_VCLOCK;
		if (!kind)
			continue;
		sp[count].kind = kind;
		sp[count].start = start;
		sp[count].len = end - start;
		count++;
	}
	return count;
}

static void read_pages(struct rst_args *a, u64 hole, u64 hole_size);

/* Two adjacent private anonymous VMAs that the dump shows apart were kept
 * apart by what /proc does not show: an anon_vma each (a forked child's
 * mapping next to one it made later) or a page offset that does not
 * follow on (a mapping moved by mremap keeps its vm_pgoff), either of
 * which stops the kernel merging them (mm/vma.c is_mergeable_anon_vma,
 * can_vma_merge_after). Mapped afresh side by side with the same flags
 * they would merge into one, and /proc/PID/maps would show one line. */
static int apart_from_previous(struct rst_args *a, struct rst_vma *vmas, u32 i)
{
	struct rst_vma *v = &vmas[i];
	/* Not the heap: brk grows it only while the page offset of the new
	 * end follows on from it (mm/mmap.c do_brk_flags). */
	int heap = v->start <= a->mm.start_brk && a->mm.start_brk < v->end;
	return i > 0 && v->kind == RST_VMA_ANON_PRIVATE && vmas[i - 1].kind == RST_VMA_ANON_PRIVATE &&
	       vmas[i - 1].end == v->start && !(v->mmap_flags & MAP_GROWSDOWN) && !heap;
}

/* map_apart maps v first somewhere else, gives it its anon_vma there
 * and then moves it into place: mremap keeps the page offset of a VMA
 * that has an anon_vma (mm/vma.c copy_vma gives an unfaulted one the
 * offset of its new place, to merge), and that offset does not follow
 * on from its neighbour's, so the two stay apart. This keeps the dumped
 * layout only; the offsets themselves are not the dumped ones (/proc
 * shows none for anonymous memory). The anon_vma comes with a page
 * written through /proc/self/mem, which writes whatever the protection
 * (FOLL_FORCE, man 5 proc), then is dropped again (MADV_DONTNEED keeps
 * the anon_vma) so that only the dumped pages are resident. Somewhere
 * else is right above v if that is free (a VMA still to map there is not
 * yet), else where the kernel finds room; a place that would overlap v's
 * own (mremap cannot move onto itself) maps it in place, as one VMA with
 * its neighbour. */
static void map_apart(struct rst_args *a, struct rst_vma *v, u32 prot, u32 flags, u32 i)
{
	u64 len = v->end - v->start;
	u32 temp = (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE;
	u64 above = v->end + PAGE_SIZE;
	long r = -1; /* user addresses are below 2^47: an error is negative */
	if (above + len <= TASK_SIZE) {
		r = sys6(__NR_mmap, above, len, prot, temp, -1, 0);
		if (r >= 0 && (u64)r != above) { /* a kernel without NOREPLACE took a hint */
			sys2(__NR_munmap, r, len);
			r = -1;
		}
	}
	if (r < 0)
		r = sys6(__NR_mmap, 0, len, prot, flags & ~MAP_FIXED, -1, 0);
	if (r < 0)
		fail(a, RST_STEP_MMAP, i, r);
	if ((u64)r < v->end && (u64)r + len > v->start) {
		sys2(__NR_munmap, r, len);
		r = sys6(__NR_mmap, v->start, len, prot, flags, -1, 0);
		if (r < 0)
			fail(a, RST_STEP_MMAP, i, r);
		return;
	}
	long mem = sys2(__NR_open, "/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (mem < 0)
		fail(a, RST_STEP_MMAP, i, mem);
	u8 zero = 0;
	long w = sys4(__NR_pwrite64, mem, &zero, 1, r);
	sys1(__NR_close, mem);
	if (w < 0)
		fail(a, RST_STEP_MMAP, i, w);
	CHECK(a, RST_STEP_MMAP, i, sys5(__NR_mremap, r, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v->start));
	CHECK(a, RST_STEP_MMAP, i, sys3(__NR_madvise, v->start, PAGE_SIZE, MADV_DONTNEED));
}

static void restore_memory(struct rst_args *a, u64 hole, u64 hole_size)
{
	struct rst_vma *vmas = (struct rst_vma *)((u8 *)a + a->vmas_off);
	struct special sp[8];
	u64 park = hole + hole_size - RST_PARK_SIZE;

	/* Park the kernel's vDSO and vvar pages inside the hole so that
	 * unmapping everything else keeps them. */
	int nsp = find_specials(sp, 8);
	if (nsp < 0)
		fail(a, RST_STEP_SPECIAL, 0, nsp);
	u64 off = 0;
	for (int i = 0; i < nsp; i++) {
		if (off + sp[i].len > RST_PARK_SIZE)
			fail(a, RST_STEP_SPECIAL, (u32)i, -EINVAL);
		/* vdso_mremap (arch/x86/entry/vdso/vma.c) follows the vDSO,
		 * so signal return trampolines keep working. */
		CHECK(a, RST_STEP_SPECIAL, (u32)i,
		      sys5(__NR_mremap, sp[i].start, sp[i].len, sp[i].len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   park + off));
		sp[i].start = park + off;
		off += sp[i].len;
	}

	/* Memory shared since fork (stage_memory) not in its place yet
	 * moves there first, its pages with it (mremap moves page tables,
	 * mm/mremap.c): no stage overlaps a mapping of the dump, so nothing
	 * moved lands on another stage, and the hole lies outside the
	 * process's mappings. What it lands on is the restorer's, or a
	 * parent's that this process does not share. */
	for (u32 i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		if (!v->flags || v->stage == v->start)
			continue;
		u64 len = v->end - v->start;
		long r = sys5(__NR_mremap, v->stage, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v->start);
		if (r < 0)
			fail(a, RST_STEP_STAGE, i, r);
	}

	/* Everything else below and above the hole goes: the old image of
	 * this helper, its stack, whatever gocr's exec left, the stages of
	 * mappings its parent shares with other children. */
	u64 cur = 0;
	u32 gap = 0;
	for (u32 i = 0; i <= a->nr_vmas; i++) {
		u64 keep = TASK_SIZE, keep_end = TASK_SIZE;
		if (i < a->nr_vmas) {
			if (!vmas[i].flags)
				continue;
			keep = vmas[i].start;
			keep_end = vmas[i].end;
		}
		if (cur <= hole && hole < keep) {
			if (hole > cur)
				CHECK(a, RST_STEP_UNMAP, gap++, sys2(__NR_munmap, cur, hole - cur));
			cur = hole + hole_size;
		}
		if (keep > cur)
			CHECK(a, RST_STEP_UNMAP, gap++, sys2(__NR_munmap, cur, keep - cur));
		cur = keep_end;
	}

	for (u32 i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		if (v->kind < RST_VMA_VDSO || v->kind > RST_VMA_VVAR_VCLOCK)
			continue;
		int found = 0;
		for (int j = 0; j < nsp; j++) {
			if (sp[j].kind != v->kind)
				continue;
			if (sp[j].len != v->end - v->start)
				fail(a, RST_STEP_SPECIAL, i, -EINVAL);
			CHECK(a, RST_STEP_SPECIAL, i,
			      sys5(__NR_mremap, sp[j].start, sp[j].len, sp[j].len,
				   MREMAP_MAYMOVE | MREMAP_FIXED, v->start));
			sp[j].kind = 0;
			found = 1;
			break;
		}
		if (!found)
			fail(a, RST_STEP_SPECIAL, i, -EINVAL);
	}

	/* Map every VMA with the protection gocr chose (writable where pages
	 * must be read in, or where the kernel had accounted it as writable),
	 * then give it its dumped protection. */
	long cached_fd = -1;
	u32 cached_path = ~0U, cached_flags = 0;
	for (u32 i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		u64 len = v->end - v->start;
		u32 prot = v->map_prot;
		long fd = -1;
		u32 flags = MAP_FIXED | v->mmap_flags;
		if (v->flags) /* in place already */
			continue;
		switch (v->kind) {
		case RST_VMA_ANON_PRIVATE:
			flags |= MAP_PRIVATE | MAP_ANONYMOUS;
			break;
		case RST_VMA_ANON_SHARED:
			/* One object for every process that shares it: gocr made
			 * it and passed it as map_fd. */
			flags |= MAP_SHARED;
			if (v->map_fd >= 0)
				fd = v->map_fd;
			else
				flags |= MAP_ANONYMOUS;
			break;
		case RST_VMA_FILE_PRIVATE:
		case RST_VMA_FILE_SHARED:
			if (v->map_fd >= 0) {
				/* a file with no path (a memfd): gocr passed it */
				fd = v->map_fd;
			} else if (cached_path != v->path_off || cached_flags != v->open_flags) {
				if (cached_fd >= 0)
					sys1(__NR_close, cached_fd);
				cached_fd = sys2(__NR_open, str(a, v->path_off), v->open_flags | O_CLOEXEC);
				if (cached_fd < 0)
					fail(a, RST_STEP_MMAP, i, cached_fd);
				cached_path = v->path_off;
				cached_flags = v->open_flags;
				fd = cached_fd;
			} else {
				fd = cached_fd;
			}
			if (v->kind == RST_VMA_FILE_SHARED) {
				flags |= MAP_SHARED;
				/* Writing through a shared mapping would change the
				 * file; its pages are the file's, none are dumped. */
				prot = v->prot;
			} else {
				flags |= MAP_PRIVATE;
			}
			break;
		case RST_VMA_SYSV_SHM: {
			/* A real attachment, which shmdt and the segment's
			 * nattch know: shmat maps the whole segment (ipc/shm.c
			 * do_shmat), made by gocr with its dumped id. */
			long r = sys3(__NR_shmat, v->shmid, v->start, v->shm_flags);
			if (r < 0 && r > -4096)
				fail(a, RST_STEP_MMAP, i, r);
			if ((u64)r != v->start)
				fail(a, RST_STEP_MMAP, i, -EEXIST);
			continue;
		}
		default:
			continue;
		}
		if (apart_from_previous(a, vmas, i)) {
			map_apart(a, v, prot, flags, i);
			continue;
		}
		long r = sys6(__NR_mmap, v->start, len, prot, flags, fd, v->pgoff);
		if (r < 0 && r > -4096)
			fail(a, RST_STEP_MMAP, i, r);
		if ((u64)r != v->start)
			fail(a, RST_STEP_MMAP, i, -EEXIST);
	}
	if (cached_fd >= 0)
		sys1(__NR_close, cached_fd);

	/* In a mapping with MADV_HUGEPAGE, prepare_huge's first write to an
	 * extent faults a huge page, zeroed under the mapping's own lock, so
	 * that the streams' threads fault theirs at once (mm/memory.c
	 * lock_vma_under_rcu, mm/huge_memory.c do_huge_pmd_anonymous_page),
	 * where a collapse would hold the mmap lock for writing: a mapping
	 * that had the flag anyway, and whose runs are all whole extents,
	 * is given it first (restorer/thp.go planHugeFaults). */
	for (u32 i = 0; i < a->nr_vmas; i++)
		if ((vmas[i].madv & RST_MADV_HUGEPAGE_FIRST) && !vmas[i].flags)
			CHECK(a, RST_STEP_MMAP, i, sys3(__NR_madvise, vmas[i].start, vmas[i].end - vmas[i].start, MADV_HUGEPAGE));
	read_pages(a, hole, hole_size);

	for (u32 i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		u64 len = v->end - v->start;
		if (v->kind > RST_VMA_FILE_SHARED && v->kind != RST_VMA_SYSV_SHM)
			continue;
		if (v->kind != RST_VMA_FILE_SHARED && v->map_prot != v->prot)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_mprotect, v->start, len, v->prot));
		if (v->madv & RST_MADV_HUGEPAGE)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_HUGEPAGE));
		if (v->madv & RST_MADV_NOHUGEPAGE)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_NOHUGEPAGE));
		if (v->madv & RST_MADV_DONTFORK)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_DONTFORK));
		if (v->madv & RST_MADV_DONTDUMP)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_DONTDUMP));
		if (v->madv & RST_MADV_WIPEONFORK)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_WIPEONFORK));
		if (v->madv & RST_MADV_SEQUENTIAL)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_SEQUENTIAL));
		if (v->madv & RST_MADV_RANDOM)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_RANDOM));
		if (v->madv & RST_MADV_MERGEABLE)
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_madvise, v->start, len, MADV_MERGEABLE));
		if ((v->madv & (RST_MADV_MLOCK | RST_MADV_MLOCK_ONFAULT)) == (RST_MADV_MLOCK | RST_MADV_MLOCK_ONFAULT))
			CHECK(a, RST_STEP_MPROTECT, i, sys3(__NR_mlock2, v->start, len, MLOCK_ONFAULT));
		else if (v->madv & RST_MADV_MLOCK)
			CHECK(a, RST_STEP_MPROTECT, i, sys2(__NR_mlock, v->start, len));
	}
}

struct kernel_stack_t {
	u64 ss_sp;
	s32 ss_flags;
	s32 pad;
	u64 ss_size;
};

struct rlimit64 {
	u64 cur, max;
};

static void capset3(struct rst_args *a, u32 index, u64 eff, u64 prm, u64 inh)
{
	struct cap_header h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct cap_data d[2] = {
		{ (u32)eff, (u32)prm, (u32)inh },
		{ (u32)(eff >> 32), (u32)(prm >> 32), (u32)(inh >> 32) },
	};
	CHECK(a, RST_STEP_CREDS, index, sys2(__NR_capset, &h, d));
}

#define __NR_getgroups 115

/* Whether the thread's supplementary groups are already the plan's, in
 * the same order. setgroups wants CAP_SETGID even to set the list the
 * thread has (kernel/groups.c may_setgroups), which a restore run by an
 * ordinary user does not hold: it restores only that user's own groups,
 * and so calls setgroups only when they differ (a list longer than this
 * compares as different). */
static int same_groups(struct rst_args *a)
{
	u32 cur[256];
	long n = sys2(__NR_getgroups, 0, NULL);
	if (n < 0 || (u64)n != a->nr_groups || n > 256)
		return 0;
	if (sys2(__NR_getgroups, n, cur) != n)
		return 0;
	u32 *want = (u32 *)((u8 *)a + a->groups_off);
	for (long i = 0; i < n; i++)
		if (cur[i] != want[i])
			return 0;
	return 1;
}

/* The thread's credentials, each set while it still has the privilege it
 * needs (security/commoncap.c; man 7 capabilities), starting as gocr's
 * root with every capability (for an ordinary user: the user's ids with
 * CAP_CHECKPOINT_RESTORE alone, and an image holding only what the user
 * has, restorer/creds.go, so that steps 1 and 6 drop it and no other
 * step changes anything):
 *   1. the inheritable set, while the bounding set is whole (capset wants
 *      a new inheritable capability in the old bounding set);
 *   2. the bounding set (PR_CAPBSET_DROP wants CAP_SETPCAP);
 *   3. groups, gids, uids; when they leave root the kernel would clear
 *      the permitted, effective and ambient sets (cap_emulate_setxuid),
 *      so SECBIT_NO_SETUID_FIXUP is on meanwhile if the thread keeps
 *      any capability, or its securebits differ from gocr's;
 *   4. the ambient set (a capability both permitted and inheritable, and
 *      before SECBIT_NO_CAP_AMBIENT_RAISE);
 *   5. the securebits (CAP_SETPCAP again, still held);
 *   6. the effective and permitted sets, which only drop. */
static void restore_creds(struct rst_args *a, u32 index)
{
	struct cap_header h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct cap_data cur[2];
	if (!a->set_creds)
		return;
	CHECK(a, RST_STEP_CREDS, index, sys2(__NR_capget, &h, cur));
	u64 eff = cur[0].effective | (u64)cur[1].effective << 32;
	u64 prm = cur[0].permitted | (u64)cur[1].permitted << 32;
	capset3(a, index, eff, prm, a->cap_inh);

	for (u32 cap = 0; cap <= a->cap_last && cap < 64; cap++) {
		long in = sys2(__NR_prctl, PR_CAPBSET_READ, cap);
		CHECK(a, RST_STEP_CREDS, index, in);
		if (!(a->cap_bnd & (1UL << cap)) && in == 1)
			CHECK(a, RST_STEP_CREDS, index, sys2(__NR_prctl, PR_CAPBSET_DROP, cap));
		/* Nothing adds to a bounding set: gocr's lacks it. */
		if ((a->cap_bnd & (1UL << cap)) && in == 0)
			fail(a, RST_STEP_CREDS, index, -EPERM);
	}

	long secure = sys1(__NR_prctl, PR_GET_SECUREBITS);
	CHECK(a, RST_STEP_CREDS, index, secure);
	if ((a->cap_prm || (u32)secure != a->securebits) && !(secure & SECBIT_NO_SETUID_FIXUP))
		CHECK(a, RST_STEP_CREDS, index, sys2(__NR_prctl, PR_SET_SECUREBITS, secure | SECBIT_NO_SETUID_FIXUP));
	if (!same_groups(a))
		CHECK(a, RST_STEP_CREDS, index, sys2(__NR_setgroups, a->nr_groups, (u8 *)a + a->groups_off));
	CHECK(a, RST_STEP_CREDS, index, sys3(__NR_setresgid, a->gids[0], a->gids[1], a->gids[2]));
	CHECK(a, RST_STEP_CREDS, index, sys3(__NR_setresuid, a->uids[0], a->uids[1], a->uids[2]));

	CHECK(a, RST_STEP_CREDS, index, sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	for (u32 cap = 0; cap <= a->cap_last && cap < 64; cap++)
		if (a->cap_amb & (1UL << cap))
			CHECK(a, RST_STEP_CREDS, index, sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));

	secure = sys1(__NR_prctl, PR_GET_SECUREBITS);
	CHECK(a, RST_STEP_CREDS, index, secure);
	if ((u32)secure != a->securebits)
		CHECK(a, RST_STEP_CREDS, index, sys2(__NR_prctl, PR_SET_SECUREBITS, a->securebits));

	capset3(a, index, a->cap_eff, a->cap_prm, a->cap_inh);
}

#define __NR_sched_setaffinity 203
#define __NR_sched_getaffinity 204
#define __NR_sched_setattr 314
/* include/uapi/linux/sched.h */
#define SCHED_NORMAL 0

/* struct sched_attr, include/uapi/linux/sched/types.h (SCHED_ATTR_SIZE_VER0) */
struct sched_attr {
	u32 size;
	u32 sched_policy;
	u64 sched_flags;
	s32 sched_nice;
	u32 sched_priority;
	u64 sched_runtime;
	u64 sched_deadline;
	u64 sched_period;
};
_Static_assert(sizeof(struct sched_attr) == 48, "sched_attr VER0");

/* The thread's scheduling, on itself, while it still has gocr's
 * privileges: lowering nice or taking an RT policy needs CAP_SYS_NICE or
 * room under RLIMIT_NICE/RLIMIT_RTPRIO (man 7 sched), which the dumped
 * credentials and limits may not give. The nice goes first under
 * SCHED_NORMAL: sched_setattr sets it only for a fair policy, and an RT
 * thread keeps one for when it returns to a fair policy. The kernel
 * narrows an affinity to the CPUs the cpuset allows, so it is read back:
 * any CPU lost fails the restore. */
static void restore_sched(struct rst_args *a, struct rst_thread *t, u32 index)
{
	if (!t->sched_set)
		return;
	struct sched_attr sa = {
		.size = sizeof(sa),
		.sched_policy = SCHED_NORMAL,
		.sched_nice = t->sched_nice,
	};
	CHECK(a, RST_STEP_SCHED, index, sys3(__NR_sched_setattr, 0, &sa, 0));
	sa.sched_policy = t->sched_policy;
	sa.sched_priority = t->sched_priority;
	sa.sched_flags = t->sched_flags;
	CHECK(a, RST_STEP_SCHED, index, sys3(__NR_sched_setattr, 0, &sa, 0));
	CHECK(a, RST_STEP_SCHED, index, sys3(__NR_sched_setaffinity, 0, RST_CPU_MASK_BYTES, t->cpu_mask));
	u8 got[RST_CPU_MASK_BYTES];
	nl_memset(got, 0, sizeof(got));
	CHECK(a, RST_STEP_SCHED, index, sys3(__NR_sched_getaffinity, 0, sizeof(got), got));
	for (u32 i = 0; i < RST_CPU_MASK_BYTES; i++)
		if (got[i] != t->cpu_mask[i])
			fail(a, RST_STEP_SCHED, index, -EINVAL);
}

#define O_WRONLY 01 /* include/uapi/asm-generic/fcntl.h */
/* include/uapi/linux/prctl.h (Linux 6.16) */
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1

/* The attribute calls gocr planned for this thread (abi.h struct
 * rst_call), made before its scheduling, since an RT thread ignores a
 * timer slack (kernel/sys.c PR_SET_TIMERSLACK) and taking an RT policy
 * zeroes it (kernel/sched/syscalls.c __setscheduler_params), and before
 * its credentials, while it may still lower an attribute. */
static void restore_calls(struct rst_args *a, u32 index)
{
	struct rst_call *c = (struct rst_call *)((u8 *)a + a->calls_off);
	for (u32 i = 0; i < a->nr_calls; i++) {
		if (c[i].op != RST_CALL_SYSCALL || c[i].thread != index)
			continue;
		u64 args[6];
		for (int j = 0; j < 6; j++) {
			args[j] = c[i].args[j];
			if ((c[i].ptr_args & (1u << j)) && args[j] < RST_CALL_DATA_WORDS)
				args[j] = (u64)&c[i].data[args[j]];
		}
		CHECK(a, RST_STEP_ATTRS, i, sys_call6(c[i].nr, args[0], args[1], args[2], args[3], args[4], args[5]));
	}
}

/* The process's futex hash size, set before its threads exist: a new
 * size waits for every reference to the old hash to go, and each thread
 * parked in the restorer holds one (kernel/futex/core.c
 * futex_hash_allocate). */
static void restore_futex_slots(struct rst_args *a)
{
	struct rst_call *c = (struct rst_call *)((u8 *)a + a->calls_off);
	for (u32 i = 0; i < a->nr_calls; i++)
		if (c[i].op == RST_CALL_FUTEX_SLOTS)
			CHECK(a, RST_STEP_ATTRS, i,
			      sys4(__NR_prctl, PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, c[i].args[0], 0));
}

/* Moves the process into its cgroups first thing, so that its children
 * are created there and its memory is charged there (restorer/cgroups.go):
 * writing 0 into cgroup.procs moves the writing process
 * (Documentation/admin-guide/cgroup-v2.rst, "Processes"). */
static void restore_cgroups(struct rst_args *a)
{
	struct rst_call *c = (struct rst_call *)((u8 *)a + a->calls_off);
	for (u32 i = 0; i < a->nr_calls; i++) {
		if (c[i].op != RST_CALL_CGROUP)
			continue;
		long fd = sys2(__NR_open, str(a, (u32)c[i].args[0]), O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail(a, RST_STEP_ATTRS, i, fd);
		long n = sys3(__NR_write, fd, "0", 1);
		sys1(__NR_close, fd);
		if (n < 0)
			fail(a, RST_STEP_ATTRS, i, n);
	}
}

/* The process's /proc/self writes (oom_score_adj, coredump_filter...). */
static void restore_writes(struct rst_args *a)
{
	struct rst_call *c = (struct rst_call *)((u8 *)a + a->calls_off);
	for (u32 i = 0; i < a->nr_calls; i++) {
		if (c[i].op != RST_CALL_WRITE)
			continue;
		const char *text = str(a, (u32)c[i].args[1]);
		long fd = sys2(__NR_open, str(a, (u32)c[i].args[0]), O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail(a, RST_STEP_ATTRS, i, fd);
		long n = sys3(__NR_write, fd, text, nl_strlen(text));
		/* An autogroup's nice may be set once in 100 ms by anyone
		 * without CAP_SYS_ADMIN, machine-wide; sooner fails with
		 * EAGAIN (kernel/sched/autogroup.c
		 * proc_sched_autogroup_set_nice): wait and write again, for
		 * up to a second. */
		for (int tries = 0; n == -11 /* EAGAIN */ && tries < 50; tries++) {
			struct { s64 sec, nsec; } nap = {0, 20000000};
			sys4(230 /* __NR_clock_nanosleep */, 1 /* CLOCK_MONOTONIC */, 0, &nap, NULL);
			n = sys3(__NR_write, fd, text, nl_strlen(text));
		}
		sys1(__NR_close, fd);
		if (n < 0)
			fail(a, RST_STEP_ATTRS, i, n);
	}
}

/* Kernel state that belongs to one thread, set by that thread itself:
 * none of these calls can target another thread. Credentials are per
 * thread too (a raw setresuid changes only the caller, man 2 setresuid
 * NOTES), so each thread drops its own. */
static void setup_thread(struct rst_args *a, struct rst_thread *t, u32 index)
{
	sys1(__NR_set_tid_address, t->clear_child_tid);
	if (t->robust_list)
		CHECK(a, RST_STEP_THREAD, index, sys2(__NR_set_robust_list, t->robust_list, t->robust_list_len));
	if (t->rseq_ptr)
		CHECK(a, RST_STEP_THREAD, index, sys4(__NR_rseq, t->rseq_ptr, t->rseq_len, 0, t->rseq_sig));
	if (!(t->altstack_flags & SS_DISABLE)) {
		struct kernel_stack_t ss = {
			.ss_sp = t->altstack_sp,
			.ss_flags = t->altstack_flags & (s32)SS_AUTODISARM,
			.ss_size = t->altstack_size,
		};
		CHECK(a, RST_STEP_SIGNALS, index, sys2(__NR_sigaltstack, &ss, NULL));
	}
	CHECK(a, RST_STEP_THREAD, index, sys2(__NR_prctl, PR_SET_NAME, str(a, t->comm_off)));
	/* The thread's own pending signals, queued by itself: only a thread
	 * queueing to itself may use si_code >= 0 or SI_TKILL
	 * (kernel/signal.c do_rt_tgsigqueueinfo). Every signal is blocked
	 * here, so they stay queued until gocr sets the dumped mask. */
	struct rst_siginfo *si = (struct rst_siginfo *)((u8 *)a + a->siginfo_off);
	for (u32 i = 0; i < a->nr_siginfo; i++)
		if (si[i].tid == t->tid)
			CHECK(a, RST_STEP_PENDING, i,
			      sys4(__NR_rt_tgsigqueueinfo, a->pid, t->tid, si[i].signo, si[i].info));
	restore_calls(a, index);
	restore_sched(a, t, index);
	restore_creds(a, index);
}

static __attribute__((noreturn)) void thread_main(struct rst_args *a, u64 index)
{
	struct rst_thread *threads = (struct rst_thread *)((u8 *)a + a->threads_off);
	setup_thread(a, &threads[index], (u32)index);
	__atomic_add_fetch(&a->threads_ready, 1, __ATOMIC_RELEASE);
	futex_wake(&a->threads_ready);
	/* Park here until gocr gives the thread its dumped registers. */
	for (;;)
		futex_wait(&a->state, __atomic_load_n(&a->state, __ATOMIC_ACQUIRE));
}

/* clone_thread(args, size, a, index, fn): clone3 a thread that starts on
 * its own stack in fn(a, index). The child cannot return through C (its
 * stack is new and empty), so this is assembly: r12-r14 survive the
 * syscall and are copied to the child (the kernel copies the caller's
 * registers, arch/x86/kernel/process.c copy_thread). */
long clone_thread(struct clone_args *ca, size_t size, struct rst_args *a, u64 index,
		  void (*fn)(struct rst_args *, u64));
__asm__(".text\n"
	".globl clone_thread\n"
	"clone_thread:\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	mov %rdx, %r12\n"
	"	mov %rcx, %r13\n"
	"	mov %r8, %r14\n"
	"	mov $" STR(__NR_clone3) ", %eax\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	mov %r12, %rdi\n"
	"	mov %r13, %rsi\n"
	"	call *%r14\n"
	"	ud2\n"
	"1:	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	ret\n");

/* include/uapi/asm-generic/mman-common.h; the PMD size on x86-64 */
#define MADV_COLLAPSE 25
#define HUGE_PAGE_SIZE (2UL << 20)

/* Each 2 MiB extent a run flagged RST_PAGES_HUGE touches gets a huge page
 * before the run's data is read, so the read makes no fault: one byte the
 * run itself is to fill, written per extent, gives the extent a page
 * table and one small writable page, which MADV_COLLAPSE replaces by a
 * huge page. For a caller (unlike khugepaged) empty entries do not stop a
 * collapse, nor do the sysfs settings, only VM_NOHUGEPAGE and
 * PR_SET_THP_DISABLE (mm/khugepaged.c madvise_collapse,
 * __collapse_huge_page_isolate); and it leaves the VMA's flags as they
 * are, where MADV_HUGEPAGE would add "hg" for good (hugepage_madvise).
 * gocr flags only runs whose extents are all in the page image; an
 * extent another stream's thread reads part of is collapsed by both, the
 * kernel copying whatever is already in place (a collapse works on live
 * memory, as khugepaged does). It fails on kernels before 6.1 or without
 * a free huge page: the run is then read into small pages, as before.
 * In a mapping given MADV_HUGEPAGE first (RST_MADV_HUGEPAGE_FIRST) the
 * byte's fault makes the huge page, and the collapse finds it made. */
static void prepare_huge(u64 addr, u64 len)
{
	u64 start = addr & ~(HUGE_PAGE_SIZE - 1);
	u64 end = (addr + len + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1);
	for (u64 ext = start; ext < end; ext += HUGE_PAGE_SIZE)
		*(volatile u8 *)(ext > addr ? ext : addr) = 0;
	sys3(__NR_madvise, start, end - start, MADV_COLLAPSE);
}

/* At most this much is read at a time where it is verified, so that it is
 * still in the CPU's cache (L2) when summed. */
#define SUM_PIECE (256UL << 10)

/* The chunk sums of page file f, if any of its chunks are verified here. */
static struct rst_sum_file *sum_file(struct rst_args *a, u32 f)
{
	struct rst_sum_file *sf = (struct rst_sum_file *)((u8 *)a + a->sum_files_off);
	if (f >= a->nr_sum_files || !sf[f].chunk || !a->sum_tables_off)
		return NULL;
	return &sf[f];
}

/* verify_piece sums the n bytes run i just read to addr from file offset
 * foff of its page file into sf, and checks the chunk they end. gocr
 * marks a chunk `here` only if one thread reads all of it, in order: a
 * piece that does not continue sf's chunk is a plan the restorer cannot
 * verify, and fails. */
static void verify_piece(struct rst_args *a, struct rst_sum_file *sf, u32 i, u64 addr, u64 foff, u64 n)
{
	struct rst_chunk_sum *cs = (struct rst_chunk_sum *)((u8 *)a + a->chunk_sums_off);
	u64 rel = foff - sf->data_off;
	u64 c = rel / sf->chunk;
	if (sf->first + c >= a->nr_chunk_sums)
		fail(a, RST_STEP_PAGESUM, i, -EINVAL);
	struct rst_chunk_sum *want = &cs[sf->first + c];
	if (!want->here)
		return;
	if (rel % sf->chunk == 0) {
		if (sf->open)
			fail(a, RST_STEP_PAGESUM, i, -EINVAL);
		sf->open = 1;
		sf->at_chunk = c;
		sf->next = foff;
		sf->crc = ~0u;
	}
	if (!sf->open || sf->at_chunk != c || sf->next != foff)
		fail(a, RST_STEP_PAGESUM, i, -EINVAL);
	struct crc_lanes cl = {
		.lane = a->sum_lane,
		.shift1 = (const u32 *)((u8 *)a + a->sum_tables_off),
		.shift2 = (const u32 *)((u8 *)a + a->sum_tables_off) + 4 * 256,
	};
	sf->crc = crc_lanes(sf->crc, (const u8 *)addr, n, &cl);
	sf->next += n;
	u64 end = (c + 1) * sf->chunk;
	if (end > sf->data_size)
		end = sf->data_size;
	if (sf->next - sf->data_off < end)
		return;
	sf->open = 0;
	if (~sf->crc != want->crc)
		fail(a, RST_STEP_PAGESUM, i, -EBADMSG);
	sf->done++;
}

/* Reads run i of the page map from its page image file to addr, and with
 * verify verifies what it reads, where its chunks are verified here. */
static void read_run(struct rst_args *a, u32 i, u64 addr, int verify)
{
	struct rst_pages *pr = (struct rst_pages *)((u8 *)a + a->pages_off);
	s32 *files = (s32 *)((u8 *)a + a->page_files_off);
	s32 fd = files[pr[i].file];
	u64 left = pr[i].nr_pages * PAGE_SIZE;
	u64 foff = pr[i].file_off;
	struct rst_sum_file *sf = verify ? sum_file(a, pr[i].file) : NULL;
	if (sf && (foff < sf->data_off || foff - sf->data_off > sf->data_size ||
		   left > sf->data_size - (foff - sf->data_off)))
		fail(a, RST_STEP_PAGESUM, i, -EINVAL);
	if (pr[i].flags & RST_PAGES_HUGE)
		prepare_huge(addr, left);
	while (left > 0) {
		u64 want = left;
		if (sf) {
			/* To the end of the chunk at most. */
			u64 rel = foff - sf->data_off;
			u64 to_end = sf->chunk - rel % sf->chunk;
			want = to_end < want ? to_end : want;
			want = SUM_PIECE < want ? SUM_PIECE : want;
		}
		long n = sys4(__NR_pread64, fd, addr, want, foff);
		if (n == -EINTR)
			continue;
		if (n < 0)
			fail(a, RST_STEP_PAGES, i, n);
		if (n == 0)
			fail(a, RST_STEP_PAGES, i, -EINVAL);
		if (sf)
			verify_piece(a, sf, i, addr, foff, (u64)n);
		addr += (u64)n;
		foff += (u64)n;
		left -= (u64)n;
	}
}

/* Reads every range of one page stream straight from its image into
 * place, but those read in at their stage (stage_memory), verifying the
 * chunks gocr left to it. */
static void read_stream(struct rst_args *a, u32 stream)
{
	struct rst_pages *pr = (struct rst_pages *)((u8 *)a + a->pages_off);
	for (u32 i = 0; i < a->nr_pages; i++)
		if (pr[i].stream == stream && !(pr[i].flags & RST_PAGES_STAGED))
			read_run(a, i, pr[i].vaddr, 1);
}

/* The mapping of the plan that holds addr, or NULL (vmas are in address
 * order). */
static struct rst_vma *vma_at(struct rst_args *a, u64 addr)
{
	struct rst_vma *vmas = (struct rst_vma *)((u8 *)a + a->vmas_off);
	u32 lo = 0, hi = a->nr_vmas;
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		if (vmas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->nr_vmas && vmas[lo].start <= addr ? &vmas[lo] : NULL;
}

/* Maps v at addr with nothing there before, or says why not. */
static long map_stage(struct rst_vma *v, u64 addr)
{
	u64 len = v->end - v->start;
	long r = sys6(__NR_mmap, addr, len, v->map_prot,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | (v->mmap_flags & MAP_NORESERVE), -1, 0);
	if (r >= 0 && (u64)r != addr) { /* a kernel without NOREPLACE took a hint */
		sys2(__NR_munmap, r, len);
		r = -EEXIST;
	}
	return r;
}

/* Memory shared with a parent or children since fork (RST_VMA_STAGE,
 * RST_VMA_INHERIT; restorer/stage.go): before this process forks its
 * children, who get it copy on write (man 2 fork), it maps each such
 * mapping in its place, or, taken, at its stage address, where no
 * mapping of any process of the tree lies, and records where in its plan;
 * or, inherited, finds it where its parent's plan says and
 * drops the pages that are not the parent's (private anonymous memory
 * reads as zeros after MADV_DONTNEED, man 2 madvise); then it reads its
 * own pages of them in. The page image fds still have the numbers gocr
 * passed (restore_fds comes later). restore_memory moves them into place. */
static void stage_memory(struct rst_args *a, struct rst_args *parent)
{
	struct rst_vma *vmas = (struct rst_vma *)((u8 *)a + a->vmas_off);
	struct rst_span *sp = (struct rst_span *)((u8 *)a + a->fork_shared_off);
	struct rst_pages *pr = (struct rst_pages *)((u8 *)a + a->pages_off);
	u32 s = 0, staged = 0;
	for (u32 i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		if (!v->flags)
			continue;
		staged = 1;
		if (!(v->flags & RST_VMA_INHERIT)) {
			/* In place where that is free (the restorer's own few
			 * mappings are elsewhere, as a rule): the page offset of
			 * an anonymous mapping is then its address, as the
			 * original's was (mm/mmap.c do_mmap), so that it grows
			 * (brk) and merges as before. Else at the stage gocr
			 * chose, outside every mapping of the tree. */
			long r = -EEXIST;
			if (!(v->flags & RST_VMA_AT_STAGE) && (r = map_stage(v, v->start)) >= 0)
				v->stage = v->start;
			else if ((r = map_stage(v, v->stage)) < 0)
				fail(a, RST_STEP_STAGE, i, r);
			continue;
		}
		/* Where the parent put it (its plan says, before it forked). */
		struct rst_vma *pv = parent ? vma_at(parent, v->start) : NULL;
		if (!pv || pv->start != v->start || pv->end != v->end || !pv->flags)
			fail(a, RST_STEP_STAGE, i, -EINVAL);
		v->stage = pv->stage;
		u64 cur = v->start;
		for (; s < a->nr_fork_shared && sp[s].vaddr < v->end; s++) {
			if (sp[s].vaddr < cur)
				continue;
			if (sp[s].vaddr > cur)
				CHECK(a, RST_STEP_STAGE, i,
				      sys3(__NR_madvise, v->stage + (cur - v->start), sp[s].vaddr - cur, MADV_DONTNEED));
			cur = sp[s].vaddr + sp[s].nr_pages * PAGE_SIZE;
		}
		if (cur < v->end)
			CHECK(a, RST_STEP_STAGE, i,
			      sys3(__NR_madvise, v->stage + (cur - v->start), v->end - cur, MADV_DONTNEED));
	}
	if (!staged)
		return;
	for (u32 i = 0; i < a->nr_pages; i++) {
		if (!(pr[i].flags & RST_PAGES_STAGED))
			continue;
		struct rst_vma *v = vma_at(a, pr[i].vaddr);
		if (!v || !v->flags || pr[i].file >= a->nr_page_files)
			fail(a, RST_STEP_STAGE, i, -EINVAL);
		read_run(a, i, v->stage + (pr[i].vaddr - v->start), 0);
	}
}

static __attribute__((noreturn)) void page_helper_main(struct rst_args *a, u64 stream)
{
	read_stream(a, (u32)stream);
	for (;;)
		sys1(__NR_exit, 0);
}

/* Pages come straight from the page images into place, every stream at
 * once: a helper thread per stream above 0 (on a stack below the threads'
 * in the hole), the leader reading stream 0 and any stream whose helper
 * could not be had. A failing read anywhere fails the whole restore
 * (fail() exits the thread group). */
static void read_pages(struct rst_args *a, u64 hole, u64 hole_size)
{
	struct rst_pages *pr = (struct rst_pages *)((u8 *)a + a->pages_off);
	for (u32 i = 0; i < a->nr_pages; i++)
		if (pr[i].stream >= a->nr_page_streams || pr[i].file >= a->nr_page_files)
			fail(a, RST_STEP_PAGES, i, -EINVAL);
	/* The checksums and tables lie in the plan; lanes are whole u64s. */
	if (a->sum_tables_off &&
	    (a->sum_lane == 0 || a->sum_lane % 8 || a->sum_lane > (1U << 20) || a->sum_tables_off > a->size ||
	     a->size - a->sum_tables_off < 2 * 4 * 256 * 4 || a->chunk_sums_off > a->size ||
	     a->nr_chunk_sums > (a->size - a->chunk_sums_off) / sizeof(struct rst_chunk_sum) ||
	     a->sum_files_off > a->size || a->nr_sum_files > a->nr_page_files ||
	     a->nr_sum_files > (a->size - a->sum_files_off) / sizeof(struct rst_sum_file)))
		fail(a, RST_STEP_PAGESUM, a->nr_pages, -EINVAL);
	u64 stacks = hole + hole_size - RST_PARK_SIZE - (u64)(a->nr_threads - 1) * a->thread_stack -
		     (u64)(a->nr_page_streams - 1) * a->thread_stack;
	u32 by_leader = 1;
	for (u32 s = 1; s < a->nr_page_streams; s++) {
		s32 tid = a->page_helper_tids[s];
		/* No CLONE_SYSVSEM: sharing would first give the process a
		 * System V semaphore undo list (ipc/sem.c copy_semundo), which
		 * the dumped one may not have had and which a later dump must
		 * then refuse (dump/sysvipc.go checkSemUndo). A helper only
		 * reads pages and exits. */
		struct clone_args ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_CHILD_CLEARTID,
			.child_tid = (u64)&a->page_helpers_running[s],
			.stack = stacks + (u64)(s - 1) * a->thread_stack,
			.stack_size = a->thread_stack,
			.set_tid = (u64)&tid,
			.set_tid_size = 1,
		};
		a->page_helpers_running[s] = 1;
		if (tid <= 0 || clone_thread(&ca, sizeof(ca), a, s, page_helper_main) < 0) {
			a->page_helpers_running[s] = 0;
			by_leader |= 1U << s;
		}
	}
	for (u32 s = 0; s < a->nr_page_streams; s++)
		if (by_leader & (1U << s))
			read_stream(a, s);
	for (u32 s = 1; s < a->nr_page_streams; s++) {
		u32 v;
		while ((v = __atomic_load_n(&a->page_helpers_running[s], __ATOMIC_ACQUIRE)) != 0)
			futex_wait(&a->page_helpers_running[s], v);
	}
	/* Every chunk left to the restorer was verified, whole: none was
	 * skipped or left unfinished. */
	for (u32 f = 0; f < a->nr_sum_files; f++) {
		struct rst_sum_file *sf = sum_file(a, f);
		if (sf && (sf->done != sf->here || sf->open))
			fail(a, RST_STEP_PAGESUM, a->nr_pages, -EINVAL);
	}
}

/* Creates every thread but the leader with its dumped TID, each on a
 * stack at the top of the hole, and waits until all have set themselves
 * up. They inherit the all-blocked signal mask. */
static void create_threads(struct rst_args *a, u64 hole, u64 hole_size)
{
	struct rst_thread *threads = (struct rst_thread *)((u8 *)a + a->threads_off);
	u64 stacks = hole + hole_size - RST_PARK_SIZE - (u64)(a->nr_threads - 1) * a->thread_stack;
	for (u32 i = 1; i < a->nr_threads; i++) {
		s32 tid = threads[i].tid;
		struct clone_args ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
			.stack = stacks + (u64)(i - 1) * a->thread_stack,
			.stack_size = a->thread_stack,
			.set_tid = (u64)&tid,
			.set_tid_size = 1,
		};
		CHECK(a, RST_STEP_THREAD, i, clone_thread(&ca, sizeof(ca), a, i, thread_main));
	}
	for (;;) {
		u32 ready = __atomic_load_n(&a->threads_ready, __ATOMIC_ACQUIRE);
		if (ready == a->nr_threads - 1)
			break;
		futex_wait(&a->threads_ready, ready);
	}
}

/* include/uapi/linux/prctl.h (Linux 6.16): while on, timer_create takes
 * the ID to give the new timer from *created_timer_id
 * (kernel/time/posix-timers.c do_timer_create). Needs
 * CAP_CHECKPOINT_RESTORE, so it runs before the credentials drop. */
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1

/* struct sigevent as the kernel takes it (include/uapi/asm-generic/
 * siginfo.h: SIGEV_MAX_SIZE 64, the thread ID first in the union). */
struct kernel_sigevent {
	u64 value;
	s32 signo;
	s32 notify;
	s32 tid;
	s32 pad[11];
};
_Static_assert(sizeof(struct kernel_sigevent) == 64, "sigevent size");

/* struct itimerspec with 64-bit time_t (include/uapi/linux/time.h). */
struct kernel_itimerspec {
	s64 interval_sec, interval_nsec;
	s64 value_sec, value_nsec;
};

#define NSEC_PER_SEC 1000000000LL
#define __NR_rt_sigpending 127
#define __NR_clock_gettime 228
#define __NR_clock_nanosleep 230
#define TIMER_ABSTIME 1 /* include/uapi/linux/time.h */
#define CLOCK_MONOTONIC 1
#define SIGEV_THREAD_ID 4 /* include/uapi/asm-generic/siginfo.h */
#define ETIMEDOUT 110     /* include/uapi/asm-generic/errno.h */

struct kernel_timespec {
	s64 sec, nsec;
};

/* Re-queues the signal a timer had queued at the dump as the timer's own.
 * The kernel queues one signal per timer; later expirations count as its
 * overrun until it is taken, and only then is a periodic timer rearmed,
 * forwarded from the expiry that queued it (man 2 timer_getoverrun,
 * kernel/time/posix-timers.c). So the timer is armed at an absolute time
 * already past, its clock's now plus the time left minus the interval:
 * it expires at once and queues its signal (every signal is blocked
 * here), and delivery forwards it to now plus the time left, as the dump
 * read it. A one-shot timer whose signal waits is disarmed: it is armed at
 * now, and its expiry leaves it disarmed again. The signal is waited for
 * where this thread can see it (rt_sigpending: its own and the process's
 * pending signals); a timer that notifies another thread expires at once
 * all the same. */
static void queue_timer_signal(struct rst_args *a, u32 i, struct rst_posix_timer *t)
{
	struct kernel_timespec now;
	CHECK(a, RST_STEP_POSIX_TIMERS, i, sys2(__NR_clock_gettime, t->clock_id, &now));
	s64 at = now.sec * NSEC_PER_SEC + now.nsec + t->value_ns - t->interval_ns;
	if (at < 1)
		at = 1; /* a CPU-time clock near 0: any past time */
	struct kernel_itimerspec spec = {
		.interval_sec = t->interval_ns / NSEC_PER_SEC, .interval_nsec = t->interval_ns % NSEC_PER_SEC,
		.value_sec = at / NSEC_PER_SEC, .value_nsec = at % NSEC_PER_SEC,
	};
	CHECK(a, RST_STEP_POSIX_TIMERS, i, sys4(__NR_timer_settime, t->id, TIMER_ABSTIME, &spec, NULL));
	if ((t->notify & SIGEV_THREAD_ID) && t->notify_tid != a->pid)
		return;
	u64 bit = 1ULL << (t->signo - 1);
	/* A past expiry fires within microseconds (a CPU-time one at once);
	 * give up after a second rather than hang the restore. */
	for (int tries = 0; tries < 10000; tries++) {
		u64 pending = 0;
		CHECK(a, RST_STEP_POSIX_TIMERS, i, sys2(__NR_rt_sigpending, &pending, 8));
		if (pending & bit)
			return;
		struct kernel_timespec nap = {0, 100000};
		sys4(__NR_clock_nanosleep, CLOCK_MONOTONIC, 0, &nap, NULL);
	}
	fail(a, RST_STEP_POSIX_TIMERS, i, -ETIMEDOUT);
}

/* Recreates the process's POSIX timers under their IDs, armed with what
 * was left of them. The threads they notify exist by now. */
static void restore_posix_timers(struct rst_args *a)
{
	if (a->nr_posix_timers == 0)
		return;
	struct rst_posix_timer *t = (struct rst_posix_timer *)((u8 *)a + a->posix_timers_off);
	CHECK(a, RST_STEP_POSIX_TIMERS, 0,
	      sys2(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON));
	for (u32 i = 0; i < a->nr_posix_timers; i++) {
		struct kernel_sigevent sev = {
			.value = t[i].sigval, .signo = t[i].signo, .notify = t[i].notify, .tid = t[i].notify_tid,
		};
		s32 id = t[i].id;
		CHECK(a, RST_STEP_POSIX_TIMERS, i, sys3(__NR_timer_create, t[i].clock_id, &sev, &id));
		if (id != t[i].id)
			fail(a, RST_STEP_POSIX_TIMERS, i, -EEXIST);
		if (t[i].flags & RST_TIMER_SIGNAL_QUEUED) {
			queue_timer_signal(a, i, &t[i]);
			continue;
		}
		if (t[i].value_ns == 0)
			continue;
		struct kernel_itimerspec spec = {
			.interval_sec = t[i].interval_ns / NSEC_PER_SEC, .interval_nsec = t[i].interval_ns % NSEC_PER_SEC,
			.value_sec = t[i].value_ns / NSEC_PER_SEC, .value_nsec = t[i].value_ns % NSEC_PER_SEC,
		};
		CHECK(a, RST_STEP_POSIX_TIMERS, i, sys4(__NR_timer_settime, id, 0, &spec, NULL));
	}
	CHECK(a, RST_STEP_POSIX_TIMERS, 0,
	      sys2(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF));
}

/* Runs at the new address with the plan in the hole. */
static void restore_posix_locks(struct rst_args *a);

static s64 itimer_us(const struct rst_itimer *it)
{
	return it->value_sec * 1000000 + it->value_usec;
}

/* Sets the interval timers (ITIMER_REAL 0, ITIMER_VIRTUAL 1, ITIMER_PROF
 * 2; include/uapi/linux/time.h) to what was left of them at the dump.
 * The kernel adds a tick (TICK_NSEC) to the value a CPU-time timer is
 * set to (kernel/time/itimer.c set_cpu_itimer: "nval += TICK_NSEC"), so
 * each restore would give it a tick more: the tick is read back with
 * getitimer, which subtracts the CPU time sampled since, tick by tick
 * (get_cpu_itimer), and the timer set again that much shorter. A tick
 * that lands between the two calls hides the one added, so they are made
 * twice and the larger kept. A timer with less than a tick left gets
 * 1 us, and so a tick: the least the kernel sets. */
static void restore_itimers(struct rst_args *a)
{
	for (int which = 0; which < 3; which++) {
		struct rst_itimer *it = &a->itimers[which];
		s64 want = itimer_us(it);
		if (want <= 0)
			continue;
		CHECK(a, RST_STEP_TIMERS, (u32)which, sys3(__NR_setitimer, which, it, NULL));
		if (which == 0)
			continue;
		s64 added = 0;
		for (int try = 0; try < 2; try++) {
			struct rst_itimer got;
			if (try > 0)
				CHECK(a, RST_STEP_TIMERS, (u32)which, sys3(__NR_setitimer, which, it, NULL));
			CHECK(a, RST_STEP_TIMERS, (u32)which, sys2(__NR_getitimer, which, &got));
			if (itimer_us(&got) - want > added)
				added = itimer_us(&got) - want;
		}
		if (added <= 0)
			continue;
		s64 shorter = want > added ? want - added : 1;
		struct rst_itimer set = {it->interval_sec, it->interval_usec, shorter / 1000000, shorter % 1000000};
		CHECK(a, RST_STEP_TIMERS, (u32)which, sys3(__NR_setitimer, which, &set, NULL));
	}
}

/* Processes that share an fd table or fs information (clone CLONE_FILES,
 * CLONE_FS) without being threads. clone(2) with CLONE_FILES gives the
 * child the caller's own files_struct, CLONE_FS its fs_struct (cwd, root,
 * umask), a reference and no copy (kernel/fork.c copy_files, copy_fs;
 * man 2 clone), and nothing else makes a process share an existing one
 * (unshare(2) only ends sharing). So the parent clones each such child
 * with its flag (run_proc, RST_PROC_SHARE_*), and the one table or fs is
 * restored once, by the parent; the child skips every step that would
 * write it a second time. Whatever else the restorer does to the table
 * is ordered so that neither process disturbs the other's view:
 *  - the parent's restore_fds closes every number up to the plan's
 *    highest and dup3s the dumped fds over them (dup3 closes what was at
 *    the target, man 2 dup), and its last step closes every fd above but
 *    its lifeline. A child sharing its table moves the fds it works with
 *    itself (page images, its lifeline, its mappings' sources, the
 *    sharers pipe, the pidfd socket it polls) above every number the
 *    plan uses before the tree is whole, so before the parent's
 *    restore_fds (park_own_fds); it opens nothing more (a file it maps,
 *    its exe) until the parent's table_ready, so that no fd it opens is
 *    closed or replaced by the parent's restore_fds; it closes only fds
 *    it opened itself and never a range; and the parent's last close
 *    waits until each such child has said, through the sharers pipe,
 *    that it is done with its fds, and spares the lifeline it names
 *    (gocr releases each process through its own, finish.go).
 *  - the fixups (epoll watches, terminal groups, fds opened by path) are
 *    the table's, in the parent's plan as well: the child skips them but
 *    its flock locks, the open file description's (restore_task). A
 *    POSIX lock's owner is the table (fs/locks.c, fl_owner is
 *    current->files), shown in each sharer's fdinfo with the pid of the
 *    one that took it, which the dump refuses in the other (files/
 *    locks.go dumpLocks); tree.go checkSharedTableLocks refuses it
 *    again in the child.
 *  - the parent's chdir, chroot and umask wait until every child sharing
 *    its fs is done (the same pipe): after a chroot, the child's paths
 *    (its exe, the files it maps, /proc/self) would resolve in the new
 *    root. The child does none of them. */
#define POLLIN 0x1
#define SHARERS_WAIT_NS 100000000L

struct kpollfd {
	s32 fd;
	s16 events, revents;
};

/* Ends this process if gocr has died: its lifeline then reads end of
 * file (gocr writes it only to release a restored process). */
static void exit_if_orphaned(struct rst_args *a)
{
	struct kpollfd pfd = {a->lifeline_fd, POLLIN, 0};
	if (sys3(7 /* __NR_poll */, &pfd, 1, 0) > 0)
		for (;;)
			sys1(__NR_exit_group, 1);
}

/* Waits for a futex word of the tree to become non-zero. */
static void wait_word(struct rst_args *a, volatile u32 *word)
{
	struct {
		s64 sec, nsec;
	} tick = {0, SHARERS_WAIT_NS};
	while (!__atomic_load_n(word, __ATOMIC_ACQUIRE)) {
		exit_if_orphaned(a);
		sys6(__NR_futex, word, FUTEX_WAIT, 0, &tick, 0, 0);
	}
}

/* In a parent: waits for the word of each child sharing its fd table or
 * fs, and adds the lifelines of those sharing the table to spare. */
static u32 wait_sharers(struct rst_args *a, s32 *spare, u32 n)
{
	for (u32 done = 0; done < a->nr_sharers;) {
		struct kpollfd pfd[2] = {{a->sharers_fd, POLLIN, 0}, {a->lifeline_fd, POLLIN, 0}};
		long r = sys3(7 /* __NR_poll */, pfd, 2, -1);
		if (r == -EINTR)
			continue;
		if (r < 0)
			fail(a, RST_STEP_FDS, 100, r);
		if (pfd[1].revents)
			for (;;)
				sys1(__NR_exit_group, 1);
		s32 fd;
		/* Each word is one write of 4 bytes, whole in the pipe
		 * (writes up to PIPE_BUF are atomic, man 7 pipe). */
		r = sys3(__NR_read, a->sharers_fd, &fd, sizeof(fd));
		if (r == -EINTR)
			continue;
		if (r != sizeof(fd))
			fail(a, RST_STEP_FDS, 101, r < 0 ? r : -EINVAL);
		if (fd >= 0)
			spare[n++] = fd;
		done++;
	}
	return n;
}

/* In a child sharing its parent's fd table or fs: tells the parent it is
 * done with them, naming its lifeline if it shares the table. */
static void tell_sharing_parent(struct rst_args *a)
{
	s32 fd = (a->shares & RST_PROC_SHARE_FILES) ? a->lifeline_fd : -1;
	long r;
	do
		r = sys3(__NR_write, a->sharers_fd, &fd, sizeof(fd));
	while (r == -EINTR);
	if (r != sizeof(fd))
		fail(a, RST_STEP_FDS, 102, r < 0 ? r : -EINVAL);
}

/* Closes every fd above the plan's highest but those in spare. */
static void close_above(struct rst_args *a, s32 *spare, u32 n)
{
	for (u32 i = 1; i < n; i++)
		for (u32 j = i; j > 0 && spare[j - 1] > spare[j]; j--) {
			s32 x = spare[j];
			spare[j] = spare[j - 1];
			spare[j - 1] = x;
		}
	u32 lo = a->max_fd + 1;
	for (u32 i = 0; i < n; i++) {
		u32 fd = (u32)spare[i];
		if (fd < lo)
			continue;
		if (fd > lo)
			CHECK(a, RST_STEP_FDS, 99, sys3(__NR_close_range, lo, fd - 1, 0));
		lo = fd + 1;
	}
	CHECK(a, RST_STEP_FDS, 99, sys3(__NR_close_range, lo, ~0U, 0));
}

static __attribute__((noreturn, used)) void restore_stage2(struct rst_args *a, u64 hole, u64 hole_size)
{
	a->restorer_base = hole;
	a->restorer_size = hole_size;

	restore_memory(a, hole, hole_size);
	s32 *files = (s32 *)((u8 *)a + a->page_files_off);
	for (u32 i = 0; i < a->nr_page_files; i++)
		sys1(__NR_close, files[i]);

	/* mm fields: PR_SET_MM_MAP (kernel/sys.c prctl_set_mm_map) sets
	 * code/data/brk/stack/arg/env bounds, the saved auxv and the exe link
	 * in one call, validated by the kernel. */
	long exe = sys2(__NR_open, str(a, a->exe_path_off), O_RDONLY | O_CLOEXEC);
	if (exe < 0)
		fail(a, RST_STEP_MM, 0, exe);
	a->mm.auxv = (u64)((u8 *)a + a->auxv_off);
	a->mm.auxv_size = a->auxv_size;
	a->mm.exe_fd = (u32)exe;
	CHECK(a, RST_STEP_MM, 1, sys5(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0));
	sys1(__NR_close, exe);

	for (int sig = 1; sig <= RST_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP) /* can't be changed */
			continue;
		CHECK(a, RST_STEP_SIGNALS, (u32)sig,
		      sys4(__NR_rt_sigaction, sig, &a->sigactions[sig - 1], NULL, 8));
	}

	restore_writes(a);
	/* The fds to keep above the plan's: the lifelines. */
	s32 spare[RST_SHARERS_MAX + 1];
	u32 nr_spare = 0;
	spare[nr_spare++] = a->lifeline_fd;
	if (a->nr_sharers)
		nr_spare = wait_sharers(a, spare, nr_spare);
	if (!(a->shares & RST_PROC_SHARE_FS)) {
		sys1(__NR_umask, a->umask);
		CHECK(a, RST_STEP_FS, 0, sys1(__NR_chdir, str(a, a->cwd_off)));
		const char *root = str(a, a->root_off);
		if (!(root[0] == '/' && root[1] == 0))
			CHECK(a, RST_STEP_FS, 1, sys1(__NR_chroot, root));
	}

	CHECK(a, RST_STEP_PRCTL, 0, sys2(__NR_prctl, PR_SET_PDEATHSIG, a->pdeathsig));
	CHECK(a, RST_STEP_PRCTL, 1, sys2(__NR_prctl, PR_SET_CHILD_SUBREAPER, a->child_subreaper));
	if (a->no_new_privs)
		CHECK(a, RST_STEP_PRCTL, 2, sys5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));

	struct rst_rlimit *rl = (struct rst_rlimit *)((u8 *)a + a->rlimits_off);
	for (u32 i = 0; i < a->nr_rlimits; i++) {
		struct rlimit64 lim = {rl[i].cur, rl[i].max};
		CHECK(a, RST_STEP_RLIMITS, rl[i].resource, sys4(__NR_prlimit64, 0, rl[i].resource, &lim, NULL));
	}
	CHECK(a, RST_STEP_PRCTL, 3, sys1(__NR_personality, a->personality));

	/* Threads are created with the dumped TIDs while this thread still
	 * has the privilege clone3 set_tid needs (CAP_SYS_ADMIN or
	 * CAP_CHECKPOINT_RESTORE, kernel/pid.c); every thread, this one
	 * last, then sets its own per-thread state and credentials. */
	restore_futex_slots(a);
	create_threads(a, hole, hole_size);
	restore_posix_timers(a);
	setup_thread(a, (struct rst_thread *)((u8 *)a + a->threads_off), 0);
	/* After a uid change the kernel clears dumpable; put the dumped
	 * value back (man 2 prctl, PR_SET_DUMPABLE takes 0 or 1). */
	if (a->dumpable == 0 || a->dumpable == 1)
		CHECK(a, RST_STEP_PRCTL, 4, sys2(__NR_prctl, PR_SET_DUMPABLE, a->dumpable));

	/* Close every fd the plan does not keep, but the lifelines (gocr
	 * closes each when it takes over its process). In a table shared
	 * with the parent that is the parent's to do, once this process is
	 * done with its fds. */
	if (a->shares)
		tell_sharing_parent(a);
	if (!(a->shares & RST_PROC_SHARE_FILES))
		close_above(a, spare, nr_spare);
	restore_posix_locks(a);

	/* Process-wide pending signals last (each thread queued its own):
	 * every signal is blocked, so they stay queued until gocr sets the
	 * dumped masks. Sending to our own process may carry any si_code
	 * (kernel/signal.c do_rt_sigqueueinfo). */
	struct rst_siginfo *si = (struct rst_siginfo *)((u8 *)a + a->siginfo_off);
	for (u32 i = 0; i < a->nr_siginfo; i++)
		if (si[i].tid == 0)
			CHECK(a, RST_STEP_PENDING, i,
			      sys3(__NR_rt_sigqueueinfo, a->pid, si[i].signo, si[i].info));

	/* The interval timers next to last: the CPU-time ones count the
	 * process's CPU time from here on, so the restorer's own work is
	 * not taken from them. */
	restore_itimers(a);

	/* Memory-deny-write-execute last of all: once set it refuses every
	 * mapping both writable and executable, and one made executable
	 * after it was not (include/linux/mman.h map_deny_write_exec), and
	 * it is never cleared (kernel/sys.c prctl_set_mdwe). Nothing after
	 * this maps or changes protections: gocr only unmaps the restorer
	 * (finish.go). */
	if (a->mdwe)
		CHECK(a, RST_STEP_PRCTL, 5, sys5(__NR_prctl, PR_SET_MDWE, a->mdwe, 0, 0, 0));
	report(a, RST_STATE_DONE);
	/* Wait for gocr to take over. If it dies first, no one can finish
	 * this process: end it rather than leave it parked (the whole
	 * thread group goes, man 2 exit_group). */
	for (;;) {
		char b;
		if (sys3(__NR_read, a->lifeline_fd, &b, 1) == 0)
			for (;;)
				sys1(__NR_exit_group, 1);
	}
}

/* Moves this code, a fresh stack and the plan into a hole that no dumped
 * mapping uses, then continues there. Everything outside the hole is about
 * to be replaced. All code is position-independent (checked at build: no
 * dynamic relocations), so a byte copy runs anywhere. */
static __attribute__((noreturn)) void relocate(struct rst_args *a, u8 *map, u64 args_size)
{
	u64 image = PAGE_ALIGN((u64)(__restorer_end - __restorer_start));
	u64 need = image + RST_RESTORER_STACK + PAGE_ALIGN(args_size) +
		   (u64)(a->nr_threads - 1 + a->nr_page_streams - 1) * a->thread_stack + RST_PARK_SIZE;
	u64 size = a->hole_size;
	if (size < need)
		fail(a, RST_STEP_HOLE, 0, -EINVAL);
	u64 hole = 0;
	for (int i = 0; i < RST_HOLE_CANDIDATES && a->hole_candidates[i]; i++) {
		long r = sys6(__NR_mmap, a->hole_candidates[i], size, PROT_READ | PROT_WRITE | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (r == (long)a->hole_candidates[i]) {
			hole = (u64)r;
			break;
		}
		if (r >= 0)
			sys2(__NR_munmap, r, size);
	}
	if (!hole)
		fail(a, RST_STEP_HOLE, 1, -EEXIST);

	nl_memcpy((void *)hole, __restorer_start, (size_t)(__restorer_end - __restorer_start));
	u64 new_args = hole + image + RST_RESTORER_STACK;
	u64 plan_off = (u64)((u8 *)a - map);
	long r = sys5(__NR_mremap, map, args_size, args_size, MREMAP_MAYMOVE | MREMAP_FIXED, new_args);
	if (r < 0)
		fail(a, RST_STEP_HOLE, 2, r);
	a = (struct rst_args *)(new_args + plan_off);

	u64 stage2 = hole + (u64)((char *)restore_stage2 - __restorer_start);
	u64 stack_top = hole + image + RST_RESTORER_STACK;
	__asm__ volatile("mov %0, %%rsp\n"
			 "call *%4\n"
			 "ud2\n"
			 :
			 : "r"(stack_top), "D"(a), "S"(hole), "d"(size), "r"(stage2)
			 : "memory");
	__builtin_unreachable();
}

/* F_SETLK and struct flock as x86-64 has them (include/uapi/asm-generic/
 * fcntl.h: no __ARCH_FLOCK_PAD, off_t is 64 bits). */
#define F_SETLK 6
/* include/uapi/asm-generic/fcntl.h: flock(2) operations. */
#define LOCK_NB 4
struct kernel_flock {
	s16 l_type;
	s16 l_whence;
	u32 pad0;
	s64 l_start;
	s64 l_len;
	s32 l_pid;
	u32 pad1;
};
_Static_assert(sizeof(struct kernel_flock) == 32, "struct flock size");

/* include/uapi/asm-generic/ioctls.h */
#define __NR_ioctl 16
#define TIOCSCTTY 0x540E
#define TIOCSPGRP 0x5410

/* include/uapi/asm-generic/fcntl.h */
#define F_GETFD 1
#define FD_CLOEXEC 1

/* epoll_add_elsewhere adds a watch whose fd number (target) no longer
 * names its file, which file_fd holds: epoll keys a watch by the file and
 * the number it was added under (fs/eventpoll.c ep_find, ep_insert), so
 * target is made to name that file for the add, and then given back what
 * it held: moved aside with F_DUPFD and put back with its close-on-exec
 * flag, or closed if it was free. Closing target meanwhile drops no watch
 * of what it held (an epoll item goes only with the last reference to its
 * file, fs/eventpoll.c eventpoll_release, and the moved copy is one), nor
 * a lock: POSIX ones are taken last (restore_posix_locks), flock and OFD
 * ones belong to the open file description. Should target be the epoll
 * fd itself, the moved copy is the epoll fd for the add. */
static void epoll_add_elsewhere(struct rst_args *a, struct rst_fixup *f, u32 i, void *ev)
{
	long held = sys3(__NR_fcntl, f->target, F_GETFD, 0);
	long moved = -1;
	if (held >= 0) {
		moved = sys3(__NR_fcntl, f->target, F_DUPFD_CLOEXEC, 0);
		if (moved < 0)
			fail(a, RST_STEP_FIXUPS, i, moved);
	}
	CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_dup3, f->file_fd, f->target, 0));
	long ep = f->fd == f->target ? moved : f->fd;
	long r = sys4(__NR_epoll_ctl, ep, EPOLL_CTL_ADD, f->target, ev);
	if (moved >= 0) {
		CHECK(a, RST_STEP_FIXUPS, i,
		      sys3(__NR_dup3, moved, f->target, (held & FD_CLOEXEC) ? O_CLOEXEC : 0));
		sys1(__NR_close, moved);
	} else {
		sys1(__NR_close, f->target);
	}
	CHECK(a, RST_STEP_FIXUPS, i, r);
}

/* fixup does one step only the process itself can do, once its fds have
 * their dumped numbers (struct rst_fixup). */
static void fixup(struct rst_args *a, struct rst_fixup *f, u32 i)
{
	switch (f->op) {
	case RST_FIXUP_EPOLL_ADD: {
		/* struct epoll_event is packed on x86-64
		 * (include/uapi/linux/eventpoll.h EPOLL_PACKED). */
		struct __attribute__((packed)) {
			u32 events;
			u64 data;
		} ev = {f->events, f->data};
		if (f->file_fd < 0) {
			CHECK(a, RST_STEP_FIXUPS, i, sys4(__NR_epoll_ctl, f->fd, EPOLL_CTL_ADD, f->target, &ev));
			return;
		}
		epoll_add_elsewhere(a, f, i, &ev);
		return;
	}
	case RST_FIXUP_CLOSE:
		CHECK(a, RST_STEP_FIXUPS, i, sys1(__NR_close, f->fd));
		return;
	case RST_FIXUP_DUP:
		/* After target's own fixup (OPEN), in fd order: the dup
		 * shares its open file description again (man 2 dup). */
		CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_dup3, f->target, f->fd, f->events ? O_CLOEXEC : 0));
		return;
	case RST_FIXUP_POSIX_LOCK: {
		struct kernel_flock fl = {
			.l_type = (s16)f->lock_type, .l_whence = SEEK_SET, .l_start = f->start, .l_len = f->len,
		};
		CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_fcntl, f->fd, F_SETLK, &fl));
		return;
	}
	case RST_FIXUP_FLOCK:
		CHECK(a, RST_STEP_FIXUPS, i, sys2(__NR_flock, f->fd, f->lock_type | LOCK_NB));
		return;
	case RST_FIXUP_OPEN: {
		/* fd holds a placeholder: every fd of the plan is in place, so
		 * open returns a free number below none of them, and dup3
		 * puts the file at fd in the placeholder's stead. */
		long nfd = sys3(__NR_open, str(a, (u32)f->data), (long)f->events | O_CLOEXEC, 0);
		if (nfd < 0)
			fail(a, RST_STEP_FIXUPS, i, nfd);
		CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_dup3, nfd, f->fd, f->target ? O_CLOEXEC : 0));
		sys1(__NR_close, nfd);
		if (f->start)
			CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_lseek, f->fd, f->start, SEEK_SET));
		return;
	}
	case RST_FIXUP_TTY_PGRP: {
		/* TIOCSPGRP needs the group in the caller's session: every
		 * process exists by now, and the kernel takes a group not yet
		 * joined by the process whose PID it is
		 * (drivers/tty/tty_jobctrl.c tiocspgrp, session_of_pgrp). */
		s32 pgrp = f->target;
		CHECK(a, RST_STEP_FIXUPS, i, sys3(__NR_ioctl, f->fd, TIOCSPGRP, &pgrp));
		return;
	}
	}
	fail(a, RST_STEP_FIXUPS, i, -EINVAL);
}

/* restore_posix_locks takes the process's POSIX record locks last, once
 * it has closed every fd the restore closes in it: closing any fd of a
 * file releases all of the process's POSIX locks on that file (man 2
 * fcntl, "Advisory record locking"; fs/locks.c locks_remove_posix), and
 * the restorer closes fds of the very files the job locks: the one it
 * opens to map a file (restore_memory; SQLite's -shm file is locked and
 * mapped) and its copies of mapping sources (close_range in
 * restore_stage2). */
static void restore_posix_locks(struct rst_args *a)
{
	struct rst_fixup *fx = (struct rst_fixup *)((u8 *)a + a->fixups_off);
	for (u32 i = 0; i < a->nr_fixups; i++)
		if (fx[i].op == RST_FIXUP_POSIX_LOCK)
			fixup(a, &fx[i], i);
}

/* Moves the fds the restorer itself works with (page images, lifeline,
 * mapping sources, the sharers pipe) above every number the plan uses:
 * those below it, or, in a process sharing its parent's fd table, every
 * one (copies of its own, which the parent's closing spares, see
 * "Processes that share an fd table"). */
static void park_own_fds(struct rst_args *a, int every_source)
{
	long high = a->max_fd + 1;
	if (a->nr_page_streams < 1 || a->nr_page_streams > RST_PAGE_STREAMS_MAX)
		fail(a, RST_STEP_FDS, 0, -EINVAL);
	s32 *files = (s32 *)((u8 *)a + a->page_files_off);
	for (u32 i = 0; i < a->nr_page_files; i++) {
		long pages = sys3(__NR_fcntl, files[i], F_DUPFD_CLOEXEC, high);
		if (pages < 0)
			fail(a, RST_STEP_FDS, 0, pages);
		files[i] = (s32)pages;
	}
	long lifeline = sys3(__NR_fcntl, a->lifeline_fd, F_DUPFD_CLOEXEC, high);
	if (lifeline < 0)
		fail(a, RST_STEP_FDS, 1, lifeline);
	a->lifeline_fd = (s32)lifeline;
	if (a->nr_sharers || a->shares) {
		long fd = sys3(__NR_fcntl, a->sharers_fd, F_DUPFD_CLOEXEC, high);
		if (fd < 0)
			fail(a, RST_STEP_FDS, 3, fd);
		a->sharers_fd = (s32)fd;
	}
	struct rst_vma *vmas = (struct rst_vma *)((u8 *)a + a->vmas_off);
	for (u32 i = 0; i < a->nr_vmas; i++) {
		s32 src = vmas[i].map_fd;
		if (src < 0 || (src >= high && !every_source))
			continue;
		long fd = sys3(__NR_fcntl, src, F_DUPFD_CLOEXEC, high);
		if (fd < 0)
			fail(a, RST_STEP_FDS, 2000 + i, fd);
		for (u32 j = i; j < a->nr_vmas; j++)
			if (vmas[j].map_fd == src)
				vmas[j].map_fd = (s32)fd;
	}
}

static void restore_fds(struct rst_args *a)
{
	struct rst_fd *fds = (struct rst_fd *)((u8 *)a + a->fds_off);
	long high = a->max_fd + 1;

	/* Sources and targets may overlap: first move every source above
	 * every number the plan uses, then dup into place. */
	park_own_fds(a, 0);
	for (u32 i = 0; i < a->nr_fds; i++) {
		long fd = sys3(__NR_fcntl, fds[i].src, F_DUPFD_CLOEXEC, high);
		if (fd < 0)
			fail(a, RST_STEP_FDS, i, fd);
		fds[i].src = (s32)fd;
	}
	CHECK(a, RST_STEP_FDS, 0, sys3(__NR_close_range, 0, high - 1, 0));
	for (u32 i = 0; i < a->nr_fds; i++)
		CHECK(a, RST_STEP_FDS, i,
		      sys3(__NR_dup3, fds[i].src, fds[i].target, fds[i].cloexec ? O_CLOEXEC : 0));
	for (u32 i = 0; i < a->nr_fds; i++) {
		int still_used = 0;
		for (u32 j = i + 1; j < a->nr_fds; j++)
			if (fds[j].src == fds[i].src)
				still_used = 1;
		if (!still_used)
			sys1(__NR_close, fds[i].src);
	}
	/* POSIX locks wait for restore_posix_locks. */
	struct rst_fixup *fx = (struct rst_fixup *)((u8 *)a + a->fixups_off);
	for (u32 i = 0; i < a->nr_fixups; i++)
		if (fx[i].op != RST_FIXUP_POSIX_LOCK)
			fixup(a, &fx[i], i);
	/* The page image fds now sit above max_fd until the pages are in. */
	a->max_fd = (u32)(high - 1);
}

static void raise_nofile(struct rst_args *a)
{
	struct rst_rlimit *rl = (struct rst_rlimit *)((u8 *)a + a->rlimits_off);
	/* RLIMIT_NOFILE may only grow here: the dumped fds may need a
	 * higher soft limit than gocr's, but the page images and sources are
	 * parked above every dumped fd (restore_fds), which a lower dumped
	 * limit would forbid (fcntl F_DUPFD fails with EINVAL at or above
	 * it, man 2 fcntl). The dumped limit itself is set with the others
	 * once those fds are closed (restore_stage2). Raising the soft limit
	 * up to the hard one needs no privilege (man 2 getrlimit); gocr
	 * checked the dumped hard limit is not above its own. */
	for (u32 i = 0; i < a->nr_rlimits; i++) {
		struct rlimit64 now;
		if (rl[i].resource != RLIMIT_NOFILE || sys4(__NR_prlimit64, 0, RLIMIT_NOFILE, NULL, &now) < 0 ||
		    rl[i].cur <= now.cur)
			continue;
		struct rlimit64 lim = {rl[i].cur, now.max};
		CHECK(a, RST_STEP_RLIMITS, RLIMIT_NOFILE, sys4(__NR_prlimit64, 0, RLIMIT_NOFILE, &lim, NULL));
	}
}

static struct rst_proc *procs_of(struct rst_tree *t);

/* Puts the fds in place, or, in a process sharing its parent's fd table
 * (its own fds parked already, run_proc), waits until the parent has. */
static __attribute__((noreturn)) void restore_task(struct rst_args *a, struct rst_tree *t, u32 idx, u64 args_size)
{
	struct rst_proc *p = &procs_of(t)[idx];
	if (p->flags & RST_PROC_SHARE_FILES) {
		wait_word(a, &procs_of(t)[p->parent].table_ready);
		/* A flock lock is its open file description's (man 2 flock),
		 * so this process may take the ones /proc/locks named it for
		 * once the table holds the fds; every other fixup is the
		 * table's, in the parent's plan too. */
		struct rst_fixup *fx = (struct rst_fixup *)((u8 *)a + a->fixups_off);
		for (u32 i = 0; i < a->nr_fixups; i++)
			if (fx[i].op == RST_FIXUP_FLOCK)
				fixup(a, &fx[i], i);
	} else {
		raise_nofile(a);
		restore_fds(a);
		__atomic_store_n(&p->table_ready, 1, __ATOMIC_RELEASE);
		futex_wake(&p->table_ready);
	}
	relocate(a, (u8 *)t, args_size);
}

#define __NR_setsid 112
#define __NR_setpgid 109
#define __NR_getpgid 121
#define __NR_waitid 247
#define __NR_rt_sigtimedwait 128
#define __NR_kill 62

static struct rst_proc *procs_of(struct rst_tree *t)
{
	return (struct rst_proc *)((u8 *)t + t->procs_off);
}
#define __NR_sendmsg 46
#define __NR_getppid 110
#define __NR_pidfd_send_signal 424

/* struct msghdr, struct iovec and a struct cmsghdr carrying one fd, on
 * x86-64 (include/linux/socket.h, include/uapi/linux/uio.h). */
struct kmsghdr {
	void *name;
	s32 namelen;
	s32 pad0;
	void *iov;
	u64 iovlen;
	void *control;
	u64 controllen;
	s32 flags;
	s32 pad1;
};

struct kiovec {
	void *base;
	u64 len;
};

struct kcmsg_fd {
	u64 len;
	s32 level;
	s32 type;
	s32 fd;
	s32 pad0;
};

/* SOL_SOCKET and SCM_RIGHTS (include/uapi/asm-generic/socket.h,
 * include/linux/socket.h); the header's length is CMSG_LEN(sizeof(int)),
 * the padding after the fd is CMSG_SPACE's. */
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define CMSG_LEN_FD 20

/* Hands gocr the pidfd of the process just created as table entry idx
 * (SCM_RIGHTS over its socket, man 7 unix). A pidfd from CLONE_PIDFD
 * names that process from its creation on and never another, even once
 * its PID is free again (man 2 pidfd_open), so gocr can kill exactly what
 * this restore created, and no process that took one of its PIDs. */
static long send_pidfd(struct rst_tree *t, u32 idx, long pidfd)
{
	struct kiovec iov = {&idx, sizeof(idx)};
	struct kcmsg_fd cm = {.len = CMSG_LEN_FD, .level = SOL_SOCKET, .type = SCM_RIGHTS, .fd = (s32)pidfd};
	struct kmsghdr msg = {.iov = &iov, .iovlen = 1, .control = &cm, .controllen = sizeof(cm)};
	long r;
	do
		r = sys3(__NR_sendmsg, t->pidfd_sock, &msg, 0);
	while (r == -EINTR);
	return r < 0 ? r : 0;
}

#define __NR_poll 7
/* include/uapi/asm-generic/poll.h */
#define POLLHUP 0x10

/* How often a process waiting for the tree to be whole looks whether
 * gocr is still there. */
#define TREE_WAIT_NS 100000000L

/* Waits until every process of the tree exists. Should gocr die
 * meanwhile, a process it was not told about is killed by its creator
 * (announce_or_kill), which then fails, and the tree never becomes whole:
 * so the wait looks, every TREE_WAIT_NS, whether gocr's end of the pidfd
 * socket is closed (a unix socket reports POLLHUP once its peer is gone,
 * net/unix/af_unix.c unix_dgram_poll), and if so ends this process.
 * Those it created end with it (their parent-death signal is SIGKILL
 * until the tree is whole), and gocr, were it alive, would kill the lot
 * by their pidfds. */
static void wait_tree_whole(struct rst_tree *t, s32 sock)
{
	struct {
		s64 sec, nsec;
	} tick = {0, TREE_WAIT_NS};
	for (;;) {
		u32 n = __atomic_load_n(&t->created, __ATOMIC_ACQUIRE);
		if (n == t->nr_procs)
			return;
		struct {
			s32 fd;
			s16 events, revents;
		} pfd = {sock, 0, 0};
		if (sys3(__NR_poll, &pfd, 1, 0) > 0 && (pfd.revents & POLLHUP))
			for (;;)
				sys1(__NR_exit_group, 1);
		sys6(__NR_futex, &t->created, FUTEX_WAIT, n, &tick, 0, 0);
	}
}

/* A process gocr could not be told about is killed at once (its pidfd is
 * the one name for it that cannot be wrong), then the creator fails. */
static void announce_or_kill(struct rst_tree *t, struct rst_args *a, u32 idx, long pidfd)
{
	long r = send_pidfd(t, idx, pidfd);
	if (r < 0) {
		sys4(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		fail(a, RST_STEP_PIDFD, (u32)procs_of(t)[idx].pid, r);
	}
	sys1(__NR_close, pidfd);
}

/* Where a process reports failure: its own plan, or for a zombie (which
 * has none) its parent's. */
static struct rst_args *plan_of(struct rst_tree *t, u32 idx)
{
	struct rst_proc *p = &procs_of(t)[idx];
	if (!p->plan_off)
		p = &procs_of(t)[p->parent];
	return (struct rst_args *)((u8 *)t + p->plan_off);
}

/* A zombie is recreated as a process that ends the way the dumped one
 * did: wait(2) status bits 8-15 are the exit code when the low 7 bits are
 * 0, else those are the killing signal (include/uapi/linux/wait.h,
 * kernel/exit.c). No core file: the original's was written already. */
static __attribute__((noreturn)) void die_as(u32 status)
{
	u32 sig = status & 0x7f;
	if (sig == 0)
		for (;;)
			sys1(__NR_exit_group, (status >> 8) & 0xff);
	sys2(__NR_prctl, PR_SET_DUMPABLE, 0);
	struct rst_sigaction dfl = {0, 0, 0, 0};
	sys4(__NR_rt_sigaction, sig, &dfl, NULL, 8);
	u64 mask = ~0UL & ~(1UL << (sig - 1));
	sys4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, NULL, 8);
	sys2(__NR_kill, sys0(__NR_getpid), sig);
	for (;;)
		sys1(__NR_exit_group, 1);
}

/* Every process runs this right after it is cloned with its dumped PID:
 * it takes its session and group, forks its own children (who inherit
 * them), waits until the whole tree exists, joins its group, and then
 * restores itself (or dies, if it was a zombie). */
static __attribute__((noreturn)) void run_proc(struct rst_tree *t, u32 idx, u64 map_size)
{
	struct rst_proc *procs = procs_of(t);
	struct rst_proc *p = &procs[idx];
	struct rst_args *a = plan_of(t, idx);
	u64 all = ~0UL;
	sys4(__NR_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
	if (!p->zombie) {
		a->shares = p->flags & (RST_PROC_SHARE_FILES | RST_PROC_SHARE_FS);
		restore_cgroups(a);
	}

	if (p->flags & RST_PROC_SETSID)
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys0(__NR_setsid));
	/* Only a session leader without a controlling terminal may take one
	 * (drivers/tty/tty_jobctrl.c tiocsctty). */
	if (p->ctty_fd >= 0)
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys3(__NR_ioctl, p->ctty_fd, TIOCSCTTY, 0));
	if (p->flags & RST_PROC_SETPGID)
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys2(__NR_setpgid, 0, 0));
	if (!p->zombie)
		stage_memory(a, idx > 0 && p->parent >= 0 ? plan_of(t, (u32)p->parent) : NULL);

	/* Children sharing this process's fd table or fs tell it through
	 * a pipe when they are done with them (see "Processes that share an
	 * fd table"): the read end here, the write end in their plans. */
	u32 nr_sharers = 0;
	for (u32 i = idx + 1; i < t->nr_procs; i++)
		if (procs[i].parent == (s32)idx && (procs[i].flags & (RST_PROC_SHARE_FILES | RST_PROC_SHARE_FS)))
			nr_sharers++;
	if (nr_sharers && !p->zombie) {
		s32 pipefd[2];
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys2(__NR_pipe2, pipefd, O_CLOEXEC));
		a->sharers_fd = pipefd[0];
		a->nr_sharers = nr_sharers;
		for (u32 i = idx + 1; i < t->nr_procs; i++)
			if (procs[i].parent == (s32)idx && (procs[i].flags & (RST_PROC_SHARE_FILES | RST_PROC_SHARE_FS)))
				plan_of(t, i)->sharers_fd = pipefd[1];
	}

	for (u32 i = idx + 1; i < t->nr_procs; i++) {
		if (procs[i].parent != (s32)idx)
			continue;
		s32 tid = procs[i].pid;
		s32 pidfd = -1;
		/* The flags its own clone had that the dump can tell from the
		 * outcome (dump/sharing.go): CLONE_FILES and CLONE_FS make the
		 * child share this process's table or fs (kernel/fork.c
		 * copy_files, copy_fs). */
		u64 share = 0;
		if (procs[i].flags & RST_PROC_SHARE_FILES)
			share |= CLONE_FILES;
		if (procs[i].flags & RST_PROC_SHARE_FS)
			share |= CLONE_FS;
		struct clone_args ca = {
			.flags = CLONE_PIDFD | share,
			.pidfd = (u64)&pidfd,
			.exit_signal = procs[i].exit_signal,
			.set_tid = (u64)&tid,
			.set_tid_size = 1,
		};
		long pid = sys2(__NR_clone3, &ca, sizeof(ca));
		if (pid < 0)
			fail(a, RST_STEP_TREE, (u32)procs[i].pid, pid);
		if (pid == 0) {
			/* Until this process's pidfd is in gocr's hands, only
			 * its parent knows it: should the parent die first (gocr
			 * killing a failed restore), it dies too. The check
			 * after the prctl closes the window before it, as man 2
			 * PR_SET_PDEATHSIG advises; restore_stage2 sets the
			 * dumped parent-death signal once the tree is whole. */
			sys2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
			if (sys0(__NR_getppid) != p->pid)
				for (;;)
					sys1(__NR_exit_group, 1);
			run_proc(t, i, map_size);
		}
		announce_or_kill(t, a, i, pidfd);
	}

	/* Sharing its parent's fd table, this process moves the fds it
	 * works with out of the way of the parent's restore_fds, which the
	 * parent starts only once the tree is whole, so after this; and it
	 * polls its own copy of the pidfd socket meanwhile, a number the
	 * parent's dup3s cannot reach. */
	s32 sock = t->pidfd_sock;
	if (!p->zombie && (p->flags & RST_PROC_SHARE_FILES)) {
		struct rst_args *pa = plan_of(t, (u32)p->parent);
		if (pa->max_fd > a->max_fd)
			a->max_fd = pa->max_fd;
		raise_nofile(a);
		park_own_fds(a, 1);
		long fd = sys3(__NR_fcntl, sock, F_DUPFD_CLOEXEC, a->max_fd + 1);
		if (fd < 0)
			fail(a, RST_STEP_FDS, 4, fd);
		sock = (s32)fd;
	}
	__atomic_add_fetch(&t->created, 1, __ATOMIC_RELEASE);
	futex_wake(&t->created);
	wait_tree_whole(t, sock);
	if (sock != t->pidfd_sock)
		sys1(__NR_close, sock);
	if (p->flags & RST_PROC_JOIN_PGID)
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys2(__NR_setpgid, 0, p->pgid));
	if (p->flags & RST_PROC_JOIN_ROOT_PGID) {
		/* The root's group was led from outside the dump, so the root
		 * keeps the one it inherits from gocr restore; this process
		 * joins it. getpgid reads 0 for a group outside the caller's
		 * PID namespace (kernel/sys.c getpgid, pid_vnr), which Go
		 * refuses first (tree.go checkOutsideGroupJoin): 0 here must
		 * not become setpgid(0, 0), a group of its own. */
		long pg = sys1(__NR_getpgid, p->pgid);
		if (pg == 0)
			pg = -3; /* ESRCH */
		CHECK(a, RST_STEP_TREE, (u32)p->pid, pg);
		CHECK(a, RST_STEP_TREE, (u32)p->pid, sys2(__NR_setpgid, 0, pg));
	}
	if (p->zombie) {
		p->comm[15] = 0;
		sys2(__NR_prctl, PR_SET_NAME, p->comm);
		die_as(p->exit_status);
	}

	/* Wait until the zombie children have died, without reaping them
	 * (waitid WEXITED|WNOWAIT, man 2 waitid; __WALL for one whose exit
	 * signal is not SIGCHLD), then drop the signals their deaths queued:
	 * they were not pending in the dumped process. */
	u64 exit_sigs = 0;
	for (u32 i = idx + 1; i < t->nr_procs; i++) {
		if (procs[i].parent != (s32)idx || !procs[i].zombie)
			continue;
		if (procs[i].exit_signal)
			exit_sigs |= 1UL << (procs[i].exit_signal - 1);
		CHECK(a, RST_STEP_TREE, (u32)procs[i].pid,
		      sys5(__NR_waitid, P_PID, procs[i].pid, NULL, WEXITED | WNOWAIT | __WALL, NULL));
	}
	while (exit_sigs) {
		struct {
			s64 sec, nsec;
		} zero = {0, 0};
		u64 one = exit_sigs & -exit_sigs;
		sys4(__NR_rt_sigtimedwait, &one, NULL, &zero, 8);
		exit_sigs &= ~one;
	}
	restore_task(a, t, idx, map_size);
}

/* The restore inside a new PID namespace (RST_TREE_PIDNS). Its first
 * process, PID 1 there, is this reaper: it gives the namespace its own
 * /proc, creates the root with its dumped PID, then only reaps, passes
 * on signals sent to it from outside, and exits with the root's status
 * once the root is gone. */
#define __NR_wait4 61
#define __NR_mount 165
#define __NR_signalfd4 289
/* include/uapi/linux/sched.h */
#define CLONE_NEWNS 0x00020000UL
#define CLONE_NEWPID 0x20000000UL
/* include/uapi/linux/mount.h */
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_REC 16384
#define MS_SLAVE (1 << 19)
/* include/uapi/linux/wait.h */
#define WNOHANG 1
#define __WALL 0x40000000
/* include/uapi/asm-generic/siginfo.h: codes of a signal a process sent */
#define SI_USER 0
#define SI_QUEUE (-1)
#define SI_TKILL (-6)

/* The head of struct signalfd_siginfo (include/uapi/linux/signalfd.h),
 * 128 bytes in all. */
struct sfd_siginfo {
	u32 signo;
	s32 err;
	s32 code;
	u32 pid;
	u8 rest[112];
};
_Static_assert(sizeof(struct sfd_siginfo) == 128, "signalfd_siginfo size");

static __attribute__((noreturn)) void reaper_main(struct rst_tree *t, u64 map_size)
{
	struct rst_args *a = plan_of(t, 0);
	u64 all = ~0UL;
	/* Every signal blocked: the kernel queues a blocked signal even for a
	 * namespace's init, whose unhandled signals it otherwise drops
	 * (kernel/signal.c sig_ignored, sig_task_ignored), so the signalfd
	 * below sees each one. */
	sys4(__NR_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
	sys2(__NR_prctl, PR_SET_NAME, "gocr-pidns");
	/* This mount namespace is a copy of gocr's (CLONE_NEWNS). Slave, so
	 * that the /proc mounted here never propagates back to the host, while
	 * mounts made there still reach the job (man 7 mount_namespaces,
	 * "MS_SLAVE"); then a procfs of this PID namespace over /proc, so the
	 * job sees its own PIDs there (man 7 pid_namespaces, "/proc and PID
	 * namespaces"). */
	CHECK(a, RST_STEP_PIDNS, 0, sys5(__NR_mount, NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
	CHECK(a, RST_STEP_PIDNS, 1,
	      sys5(__NR_mount, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));

	/* set_tid with one element names the PID in the innermost namespace
	 * only, this one; the outer levels are allocated as usual (man 2
	 * clone3, set_tid; kernel/pid.c alloc_pid). */
	s32 root = procs_of(t)[0].pid;
	s32 tid = root;
	s32 pidfd = -1;
	struct clone_args ca = {
		.flags = CLONE_PIDFD,
		.pidfd = (u64)&pidfd,
		.exit_signal = SIGCHLD,
		.set_tid = (u64)&tid,
		.set_tid_size = 1,
	};
	long pid = sys2(__NR_clone3, &ca, sizeof(ca));
	if (pid < 0)
		fail(a, RST_STEP_CLONE, 0, pid);
	if (pid == 0)
		run_proc(t, 0, map_size);
	announce_or_kill(t, a, 0, pidfd);

	long sfd = sys4(__NR_signalfd4, -1, &all, 8, O_CLOEXEC);
	if (sfd < 0) {
		sys2(__NR_kill, root, SIGKILL);
		fail(a, RST_STEP_PIDNS, 2, sfd);
	}
	/* Nothing of the restore stays with it: no fd (a pipe end held here
	 * would keep the job's pipes open), not the plan. */
	sys3(__NR_close_range, 0, sfd - 1, 0);
	sys3(__NR_close_range, sfd + 1, ~0U, 0);
	sys2(__NR_munmap, t, map_size);

	for (;;) {
		struct sfd_siginfo si;
		if (sys3(__NR_read, sfd, &si, sizeof(si)) == sizeof(si) && si.signo != SIGCHLD && si.pid == 0 &&
		    (si.code == SI_USER || si.code == SI_QUEUE || si.code == SI_TKILL))
			/* Sent by a process outside the namespace (its PID here
			 * is 0, man 2 signalfd): meant for the job. */
			sys2(__NR_kill, root, si.signo);
		for (;;) {
			s32 status = 0;
			long w = sys4(__NR_wait4, -1, &status, WNOHANG | __WALL, NULL);
			if (w <= 0)
				break;
			if (w != root)
				continue;
			/* The root's status, as gocr reports one (128+signal
			 * when killed); the kernel then kills what is left in
			 * the namespace (man 7 pid_namespaces). */
			u32 code = (status & 0x7f) ? 128 + (u32)(status & 0x7f) : ((u32)status >> 8) & 0xff;
			for (;;)
				sys1(__NR_exit_group, code);
		}
	}
}

/* Starts the reaper in a new PID and mount namespace, gocr's child
 * (CLONE_PARENT) so that gocr waits for it, and hands gocr its pidfd as
 * table index nr_procs. */
static __attribute__((noreturn)) void start_reaper(struct rst_tree *t, u64 map_size)
{
	s32 pidfd = -1;
	struct clone_args ca = {
		.flags = CLONE_PARENT | CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNS,
		.pidfd = (u64)&pidfd,
	};
	long pid = sys2(__NR_clone3, &ca, sizeof(ca));
	if (pid < 0)
		fail(plan_of(t, 0), RST_STEP_PIDNS, 3, pid);
	if (pid == 0)
		reaper_main(t, map_size);
	long r = send_pidfd(t, t->nr_procs, pidfd);
	if (r < 0) {
		sys4(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		fail(plan_of(t, 0), RST_STEP_PIDFD, 0, r);
	}
	for (;;)
		sys1(__NR_exit_group, 0);
}

#include "peercred.c"

/* Whether the restorer was started as the peer-credentials agent: with
 * the one argument RST_PEERCRED_ARG (sp: argc, then argv). */
static int peercred_mode(u64 *sp)
{
	static const char want[] = RST_PEERCRED_ARG;
	if (sp[0] != 2)
		return 0;
	const char *arg = (const char *)sp[2];
	for (u64 i = 0; i < sizeof(want); i++)
		if (arg[i] != want[i])
			return 0;
	return 1;
}

/* The job's time namespace (RST_TREE_TIMENS). unshare(CLONE_NEWTIME)
 * leaves this process where it is and puts its children born after in
 * the new namespace, whose offsets can be written to
 * /proc/self/timens_offsets only until the first of them is (man 7
 * time_namespaces; man 2 unshare). Each line is a clock name, signed
 * seconds and nanoseconds below a second (fs/proc/base.c
 * timens_offsets_write); the kernel refuses with ERANGE offsets that
 * would make a clock negative or past KTIME_SEC_MAX / 2
 * (kernel/time/namespace.c proc_timens_set_offset). A child's vvar
 * mapping then shows the namespace's page (timens_on_fork,
 * vdso_join_timens), wherever the restore moves it. */
#define __NR_unshare 272
#define CLONE_NEWTIME 0x00000080UL /* include/uapi/linux/sched.h */

/* put_offset appends "NAME SECS NSECS\n" to buf at n, seconds rounded
 * down so that the nanoseconds are never negative. */
static u32 put_offset(char *buf, u32 n, const char *name, s64 ns)
{
	s64 sec = ns / 1000000000, nsec = ns % 1000000000;
	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	while (*name)
		buf[n++] = *name++;
	buf[n++] = ' ';
	u64 v = sec < 0 ? (u64)-sec : (u64)sec;
	if (sec < 0)
		buf[n++] = '-';
	char digits[20];
	u32 d = 0;
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (d)
		buf[n++] = digits[--d];
	buf[n++] = ' ';
	d = 0;
	v = (u64)nsec;
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (d)
		buf[n++] = digits[--d];
	buf[n++] = '\n';
	return n;
}

static void make_time_namespace(struct rst_tree *t)
{
	struct rst_args *a = plan_of(t, 0);
	CHECK(a, RST_STEP_TIMENS, 0, sys1(__NR_unshare, CLONE_NEWTIME));
	char buf[128];
	u32 n = put_offset(buf, 0, "monotonic", t->timens_monotonic_ns);
	n = put_offset(buf, n, "boottime", t->timens_boottime_ns);
	long fd = sys2(__NR_open, "/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail(a, RST_STEP_TIMENS, 1, fd);
	long w = sys3(__NR_write, fd, buf, n);
	if (w != (long)n)
		fail(a, RST_STEP_TIMENS, 2, w < 0 ? w : -5 /* EIO */);
	sys1(__NR_close, fd);
}

/* The peer-credentials agent, PID 1 of the job's new PID namespace, made
 * the reaper (peercred.c peercred_become_reaper), with the fds the
 * restorer would have: what restorer_main and start_reaper do for a
 * restore in a new namespace, the pidfd gocr gets being its own. Its
 * answer on ctl tells gocr the plan's failures are to be read from now
 * on. */
static __attribute__((noreturn)) void agent_reaper(s32 ctl, s32 gocr_pidfd)
{
	struct rst_peercred_reply r = { .done = 1, .step = RST_PEERCRED_STEP_REAPER };
	struct kiovec iov = { &r, sizeof(r) };
	struct kmsghdr msg = { .iov = &iov, .iovlen = 1 };
	sys1(__NR_close, gocr_pidfd);
	long size = sys3(__NR_lseek, RST_PLAN_FD, 0, SEEK_END);
	long m = size < (long)sizeof(struct rst_tree) ? -EINVAL
						       : sys6(__NR_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_SHARED, RST_PLAN_FD, 0);
	struct rst_tree *t = (struct rst_tree *)m;
	if (m >= 0 && (t->magic != RST_TREE_MAGIC || t->version != RST_VERSION || t->size != (u64)size ||
		       t->nr_procs == 0 || !(t->flags & RST_TREE_PIDNS)))
		m = -EINVAL;
	if (m < 0 && m > -4096) {
		r.err = (s32)m;
		sys3(__NR_sendmsg, ctl, &msg, 0);
		for (;;)
			sys1(__NR_exit_group, 1);
	}
	sys1(__NR_close, RST_PLAN_FD);
	if (t->flags & RST_TREE_TIMENS)
		make_time_namespace(t);
	long pidfd = sys2(__NR_pidfd_open, sys0(__NR_getpid), 0);
	long sent = pidfd < 0 ? pidfd : send_pidfd(t, t->nr_procs, pidfd);
	if (sent < 0)
		fail(plan_of(t, 0), RST_STEP_PIDFD, 0, sent);
	r.step = 0;
	sys3(__NR_sendmsg, ctl, &msg, 0);
	sys1(__NR_close, ctl);
	reaper_main(t, (u64)size);
}

void restorer_main(u64 *sp)
{
	if (peercred_mode(sp))
		peercred_main();
	long size = sys3(__NR_lseek, RST_PLAN_FD, 0, SEEK_END);
	if (size < (long)sizeof(struct rst_tree))
		sys1(__NR_exit_group, 100);
	long m = sys6(__NR_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_SHARED, RST_PLAN_FD, 0);
	if (m < 0 && m > -4096)
		sys1(__NR_exit_group, 101);
	struct rst_tree *t = (struct rst_tree *)m;
	if (t->magic != RST_TREE_MAGIC || t->version != RST_VERSION || t->size != (u64)size || t->nr_procs == 0)
		sys1(__NR_exit_group, 102);
	sys1(__NR_close, RST_PLAN_FD);
	if (t->flags & RST_TREE_TIMENS)
		make_time_namespace(t);
	if (t->flags & RST_TREE_PIDNS)
		start_reaper(t, (u64)size);

	s32 tid = procs_of(t)[0].pid;
	s32 pidfd = -1;
	struct clone_args ca = {
		.flags = CLONE_PARENT | CLONE_PIDFD,
		.pidfd = (u64)&pidfd,
		.set_tid = (u64)&tid,
		.set_tid_size = 1,
	};
	/* Without CLONE_VM and with no new stack, the child runs on a copy
	 * of this stack, like fork(2) (man 2 clone3). */
	long pid = sys2(__NR_clone3, &ca, sizeof(ca));
	if (pid < 0)
		fail(plan_of(t, 0), RST_STEP_CLONE, 0, pid);
	if (pid > 0) {
		announce_or_kill(t, plan_of(t, 0), 0, pidfd);
		sys1(__NR_exit_group, 0);
	}
	run_proc(t, 0, (u64)size);
}

__asm__(".section .text.entry,\"ax\",@progbits\n"
	".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	andq $-16, %rsp\n"
	"	call restorer_main\n"
	"	ud2\n"
	".previous\n");
