/*
 * x86-64 System V context switch for tern (see ctx.h).
 * Saved: rbp rbx r12-r15, MXCSR and the x87 control word.
 * Frame, from the saved sp up: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret.
 */
	.text
	.globl	tern_ctx_switch
	.type	tern_ctx_switch, @function
	.p2align 4
tern_ctx_switch:
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
	.size	tern_ctx_switch, .-tern_ctx_switch

/* First code a new context runs: r12 = entry, r13 = arg (set by ctx_make). */
	.globl	tern_ctx_trampoline
	.type	tern_ctx_trampoline, @function
	.p2align 4
tern_ctx_trampoline:
	movq	%r13, %rdi
	callq	*%r12
	ud2
	.size	tern_ctx_trampoline, .-tern_ctx_trampoline

	.section .note.GNU-stack,"",@progbits
