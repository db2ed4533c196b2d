//go:build linux && amd64

package ptrace

import "github.com/gocr/gocr/gocrpb"

// RegsToProto and RegsFromProto copy struct user_regs_struct
// (arch/x86/include/asm/user_64.h) to and from its image form, field by
// field, so nothing depends on the Go struct's memory layout.
func RegsToProto(r *Regs) *gocrpb.GPRegs {
	return &gocrpb.GPRegs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx, R11: r.R11, R10: r.R10,
		R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx, Rdx: r.Rdx, Rsi: r.Rsi, Rdi: r.Rdi, OrigRax: r.Orig_rax,
		Rip: r.Rip, Cs: r.Cs, Eflags: r.Eflags, Rsp: r.Rsp, Ss: r.Ss, FsBase: r.Fs_base, GsBase: r.Gs_base,
		Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}
}

func RegsFromProto(p *gocrpb.GPRegs) Regs {
	return Regs{
		R15: p.R15, R14: p.R14, R13: p.R13, R12: p.R12, Rbp: p.Rbp, Rbx: p.Rbx, R11: p.R11, R10: p.R10,
		R9: p.R9, R8: p.R8, Rax: p.Rax, Rcx: p.Rcx, Rdx: p.Rdx, Rsi: p.Rsi, Rdi: p.Rdi, Orig_rax: p.OrigRax,
		Rip: p.Rip, Cs: p.Cs, Eflags: p.Eflags, Rsp: p.Rsp, Ss: p.Ss, Fs_base: p.FsBase, Gs_base: p.GsBase,
		Ds: p.Ds, Es: p.Es, Fs: p.Fs, Gs: p.Gs,
	}
}
