/*
 * AArch64 (AAPCS64) context switch for tern (see mctx.h).
 * Saved: x19-x28, fp (x29), lr (x30), d8-d15 and FPCR, in a 176-byte frame:
 *   [0..95] x19..x30, [96..159] d8..d15, [160] fpcr.
 */
	.text
	.globl	tern__mctx_switch
	.type	tern__mctx_switch, %function
	.p2align 4
tern__mctx_switch:
	sub	sp, sp, #176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	add	sp, sp, #176
	ret
	.size	tern__mctx_switch, .-tern__mctx_switch

/* First code a new context runs: x19 = entry, x20 = arg (set by tern__mctx_make). */
	.globl	tern__mctx_trampoline
	.type	tern__mctx_trampoline, %function
	.p2align 4
tern__mctx_trampoline:
	mov	x0, x20
	blr	x19
	brk	#0
	.size	tern__mctx_trampoline, .-tern__mctx_trampoline

	.section .note.GNU-stack,"",%progbits
