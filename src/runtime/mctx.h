/*
 * mctx.h - the machine context switch, one small assembly file per
 * architecture (mctx_x86_64.S, mctx_aarch64.S).
 *
 * A suspended context is just a stack pointer: tern__mctx_switch pushes the
 * callee-saved registers and the FP control state on the current stack,
 * stores the stack pointer in *from, loads `to` and pops the same set
 * there.  Everything else is caller-saved under both ABIs, so the C
 * compiler already spilled it.  No signal mask is saved (that is what makes
 * ucontext cost a syscall per switch).
 */
#ifndef TERN_RUNTIME_MCTX_H
#define TERN_RUNTIME_MCTX_H

/* Switch from the running context (its sp is stored in *from) to `to`. */
void tern__mctx_switch(void **from, void *to);

/* Lay out a fresh context on the stack whose highest address is `top` so
 * that switching to the returned sp calls entry(arg) with a clean frame and
 * default FP control state.  entry must never return. */
void *tern__mctx_make(void *top, void (*entry)(void *), void *arg);

#endif
