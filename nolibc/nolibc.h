/*
 * nolibc.h: the freestanding "libc" shared by the parasite and the restorer
 * blobs. Both run where no libc can be trusted (inside a stopped target, or
 * in a process whose address space is being replaced), so everything here is
 * a raw system call or a few lines of C.
 *
 * x86-64 system call convention (arch/x86/entry/entry_64.S): number in rax,
 * arguments in rdi, rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11;
 * the result (or -errno, -4095..-1) comes back in rax.
 */
#ifndef GOCR_NOLIBC_H
#define GOCR_NOLIBC_H

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;
typedef int s32;
typedef unsigned short u16;
typedef short s16;
typedef unsigned char u8;
typedef unsigned long size_t;

#define NULL ((void *)0)

/* System call numbers: arch/x86/entry/syscalls/syscall_64.tbl */
#define __NR_read 0
#define __NR_write 1
#define __NR_open 2
#define __NR_close 3
#define __NR_mmap 9
#define __NR_mprotect 10
#define __NR_munmap 11
#define __NR_rt_sigaction 13
#define __NR_rt_sigprocmask 14
#define __NR_pread64 17
#define __NR_madvise 28
#define __NR_shmat 30
#define __NR_getitimer 36
#define __NR_setitimer 38
#define __NR_getpid 39
#define __NR_exit 60
#define __NR_fcntl 72
#define __NR_flock 73
#define __NR_chdir 80
#define __NR_umask 95
#define __NR_setresuid 117
#define __NR_setresgid 119
#define __NR_setgroups 116
#define __NR_capget 125
#define __NR_capset 126
#define __NR_sigaltstack 131
#define __NR_personality 135
#define __NR_modify_ldt 154
#define __NR_mlock 149
#define __NR_prctl 157
#define __NR_chroot 161
#define __NR_gettid 186
#define __NR_futex 202
#define __NR_set_tid_address 218
#define __NR_timer_create 222
#define __NR_timer_settime 223
#define __NR_timer_gettime 224
#define __NR_timer_getoverrun 225
#define __NR_exit_group 231
#define __NR_epoll_ctl 233
#define __NR_vmsplice 278
#define __NR_dup3 292
#define __NR_rt_tgsigqueueinfo 297
#define __NR_prlimit64 302
#define __NR_set_robust_list 273
#define __NR_mremap 25
#define __NR_mlock2 325
#define __NR_rseq 334
#define __NR_rt_sigqueueinfo 129
#define __NR_clone 56
#define __NR_clone3 435
#define __NR_close_range 436

/* include/uapi/asm-generic/errno-base.h */
#define EPERM 1
#define EINTR 4
#define EAGAIN 11
#define EEXIST 17
#define EINVAL 22
/* include/uapi/asm-generic/errno.h */
#define EBADMSG 74

/* include/uapi/asm-generic/mman-common.h, arch/x86/include/uapi/asm/mman.h */
#define PROT_READ 0x1
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_GROWSDOWN 0x0100
#define MAP_NORESERVE 0x4000
#define MAP_FIXED_NOREPLACE 0x100000
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2

/* include/uapi/asm-generic/fcntl.h */
#define O_RDONLY 00
#define O_RDWR 02
#define O_CLOEXEC 02000000
#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030

/* include/uapi/linux/futex.h: no FUTEX_PRIVATE_FLAG, the word is shared
 * with gocr through a MAP_SHARED memfd mapping. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

/* include/uapi/linux/prctl.h */
#define PR_SET_PDEATHSIG 1
#define PR_GET_PDEATHSIG 2
#define PR_GET_DUMPABLE 3
#define PR_SET_DUMPABLE 4
#define PR_SET_NAME 15
#define PR_SET_MM 35
#define PR_SET_MM_MAP 14
#define PR_SET_CHILD_SUBREAPER 36
#define PR_GET_CHILD_SUBREAPER 37
#define PR_SET_NO_NEW_PRIVS 38
#define PR_GET_NO_NEW_PRIVS 39
#define PR_GET_TID_ADDRESS 40
#define PR_SET_MDWE 65
#define PR_CAPBSET_READ 23
#define PR_CAPBSET_DROP 24
#define PR_GET_SECUREBITS 27
#define PR_SET_SECUREBITS 28
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4

/* include/uapi/linux/capability.h: capget/capset take a header and two
 * data words (capabilities 0-31, then 32-63). */
#define _LINUX_CAPABILITY_VERSION_3 0x20080522
struct cap_header {
	u32 version;
	s32 pid;
};
struct cap_data {
	u32 effective;
	u32 permitted;
	u32 inheritable;
};

/* include/uapi/linux/securebits.h */
#define SECBIT_NO_SETUID_FIXUP (1 << 2)

#define SIG_SETMASK 2

/* include/uapi/linux/sched.h */
#define CLONE_VM 0x00000100UL
#define CLONE_FS 0x00000200UL
#define CLONE_FILES 0x00000400UL
#define CLONE_SIGHAND 0x00000800UL
#define CLONE_THREAD 0x00010000UL
#define CLONE_SYSVSEM 0x00040000UL
#define CLONE_PARENT_SETTID 0x00100000UL
#define CLONE_CHILD_CLEARTID 0x00200000UL

static inline long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long ret;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys0(nr) sys_call6(nr, 0, 0, 0, 0, 0, 0)
#define sys1(nr, a) sys_call6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b) sys_call6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c) sys_call6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d) sys_call6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(nr, a, b, c, d, e) sys_call6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define sys6(nr, a, b, c, d, e, f) \
	sys_call6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static inline void *nl_memcpy(void *dst, const void *src, size_t n)
{
	/* rep movsb: fast on every CPU with ERMSB, and no SSE (the blobs are
	 * built with -mgeneral-regs-only so they never touch the target's
	 * vector registers). */
	void *d = dst;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

static inline void nl_memset(void *dst, int c, size_t n)
{
	__asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
}

static inline size_t nl_strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static inline long futex_wait(volatile u32 *word, u32 val)
{
	return sys6(__NR_futex, word, FUTEX_WAIT, val, 0, 0, 0);
}

static inline long futex_wake(volatile u32 *word)
{
	return sys6(__NR_futex, word, FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

#define BUILD_BUG_ON_OFFSET(type, field, off) \
	_Static_assert(__builtin_offsetof(type, field) == (off), #type "." #field " offset")

#endif
