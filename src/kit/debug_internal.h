/*
 * debug_internal.h - between the CPU sampler (debug_prof.c) and the
 * profile.proto encoder (debug_pprof.c).
 */
#ifndef TERN_KIT_DEBUG_INTERNAL_H
#define TERN_KIT_DEBUG_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Frames kept per sample; deeper stacks are cut (at the root end). */
#define TERN__PROF_DEPTH 64

typedef struct tern__prof_sample {
    atomic_uint ready;              /* 1 once depth and pc[] are written */
    uint32_t depth;
    uintptr_t pc[TERN__PROF_DEPTH]; /* pc[0]: where the thread was; then
                                       call sites (return address - 1) */
} tern__prof_sample;

typedef struct tern__prof_buf {
    size_t cap;
    atomic_size_t next;             /* slots claimed, may pass cap */
    tern__prof_sample s[];
} tern__prof_buf;

/* Start sampling into a fresh buffer of cap samples: 0, -EBUSY (one
 * profile at a time), -ENOMEM, -errno from sigaction/setitimer. */
int tern__prof_start(size_t cap);

/* Stop sampling and hand over the buffer: no signal handler touches it
 * once this returns.  Samples [0, min(next, cap)) with ready set are
 * complete.  Free it with free(). */
tern__prof_buf *tern__prof_stop(void);

/* Encode samples as a gzipped profile.proto (period in ns, wall-clock
 * start in ns since the epoch, duration in ns).  0 or -ENOMEM. */
int tern__pprof_encode(const tern__prof_buf *b, int64_t period, int64_t time_nanos,
                       int64_t duration_nanos, void **out, size_t *len);

#endif
