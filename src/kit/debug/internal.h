/*
 * internal.h - between the CPU sampler (prof.c), the
 * profile.proto encoder (pprof.c) and the ELF symbol reader that
 * names the executable's functions for it (symtab.c).
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

/* An ELF file's functions, sorted by address: each [lo, hi) in the
 * file's addresses, which are the process's minus bias. */
typedef struct tern__sym {
    uintptr_t lo, hi;
    const char *name;           /* in names */
} tern__sym;

typedef struct tern__symtab {
    uintptr_t bias;
    tern__sym *syms;
    size_t n;
    char *names;
} tern__symtab;

/* Read path's function symbols (.symtab, else .dynsym).  0, -ENOEXEC
 * for a file that is not a well-formed 64-bit ELF, -ENOENT when it has
 * no function symbols, -ENOMEM, -errno from open.  On error *t is empty
 * (and tern__symtab_find finds nothing in it). */
int tern__symtab_load(tern__symtab *t, const char *path, uintptr_t bias);
/* The function holding the process address addr, or NULL. */
const char *tern__symtab_find(const tern__symtab *t, uintptr_t addr);
void tern__symtab_free(tern__symtab *t);

#endif
