/*
 * ia32pause: a 32-bit (i386) program without libc that sleeps in pause(2)
 * until killed, for the refusal of 32-bit processes (arch_test.go, which
 * builds it with gcc -m32 -nostdlib: it needs no 32-bit C library). The
 * system call is made through int $0x80, pause being number 29 there
 * (arch/x86/entry/syscalls/syscall_32.tbl).
 */
void _start(void)
{
	for (;;)
		__asm__ volatile("int $0x80" : : "a"(29) : "memory");
}
