#include "textflag.h"

// func xgetbv0() uint64
// XGETBV with ECX=0 reads XCR0, the xsave features the OS enabled
// (Intel SDM vol. 2C, XGETBV). The kernel sets CR4.OSXSAVE on every CPU
// that has XSAVE, which the callers check first through /proc/cpuinfo.
TEXT ·xgetbv0(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+0(FP)
	RET
