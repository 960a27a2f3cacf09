/*
 * mctx.c - lays out the first frame of a new context for the per-arch
 * switch routines (mctx_<arch>.S), matching the frame they pop.
 */
#include "mctx.h"

#include <stdint.h>
#include <string.h>

void tern__mctx_trampoline(void);

/* The frames below are arrays of 64-bit words, which the switch pops as
 * registers and return addresses: pointers must be that wide. */
_Static_assert(sizeof(void *) == sizeof(uint64_t), "64-bit contexts only");

void *tern__mctx_make(void *top, void (*entry)(void *), void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* After `ret` pops the trampoline address, rsp = t - 16 (16-aligned), so
     * the trampoline's call enters entry with the ABI's rsp % 16 == 8. */
    /* The switch pops 8 words (MXCSR|x87 CW, r15 r14 r13 r12 rbx rbp, ret):
     * 80 bytes leave rsp at t - 16 after them, as the comment above says. */
    _Static_assert(80 - 8 * 8 == 16, "x86-64 first frame: 8 words popped, 16 bytes above");
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
    /* mctx_aarch64.S's frame: x19-x30 (12 words, lr is f[11]), d8-d15 (8)
     * and FPCR (1), rounded up to 16 bytes as sp must always be */
    _Static_assert((12 + 8 + 1) * 8 <= 176 && 176 % 16 == 0, "aarch64 frame of 176 bytes");
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
