/*
 * x86-64 System V context switch for tern (see mctx.h).
 * Saved: rbp rbx r12-r15, MXCSR and the x87 control word.
 * Frame, from the saved sp up: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret.
 */
	.text
	.globl	tern__mctx_switch
	.type	tern__mctx_switch, @function
	.p2align 4
tern__mctx_switch:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	tern__mctx_switch, .-tern__mctx_switch

/* First code a new context runs: r12 = entry, r13 = arg (set by tern__mctx_make). */
	.globl	tern__mctx_trampoline
	.type	tern__mctx_trampoline, @function
	.p2align 4
tern__mctx_trampoline:
	movq	%r13, %rdi
	callq	*%r12
	ud2
	.size	tern__mctx_trampoline, .-tern__mctx_trampoline

	.section .note.GNU-stack,"",@progbits
