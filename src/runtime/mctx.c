/*
 * mctx.c - lays out the first frame of a new context for the per-arch
 * switch routines (mctx_<arch>.S), matching the frame they pop.
 */
#include "mctx.h"

#include <stdint.h>
#include <string.h>

void tern__mctx_trampoline(void);

void *tern__mctx_make(void *top, void (*entry)(void *), void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* After `ret` pops the trampoline address, rsp = t - 16 (16-aligned), so
     * the trampoline's call enters entry with the ABI's rsp % 16 == 8. */
    uint64_t *f = (uint64_t *)(t - 80);
    f[0] = 0x1F80u | (0x037Full << 32);    /* MXCSR at +0, x87 CW at +4 */
    f[1] = 0;                       /* r15 */
    f[2] = 0;                       /* r14 */
    f[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    f[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    f[5] = 0;                       /* rbx */
    f[6] = 0;                       /* rbp: ends frame-pointer walks */
    f[7] = (uint64_t)(uintptr_t)tern__mctx_trampoline;
    f[8] = 0;
    f[9] = 0;
    return f;
#elif defined(__aarch64__)
    uint64_t *f = (uint64_t *)(t - 176);
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)entry;  /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg;    /* x20 */
    f[11] = (uint64_t)(uintptr_t)tern__mctx_trampoline; /* x30 */
    return f;
#else
#error "tern: no context switch for this architecture (x86-64 and aarch64 only)"
#endif
}
