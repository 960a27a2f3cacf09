/*
 * rand.h - fast non-cryptographic random numbers for ids, jitter and
 * sampling (request ids, backoff, throttling, trace ids).
 */
#ifndef TERN_BASE_RAND_H
#define TERN_BASE_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Uniform 64 bits from a per-thread xoshiro256** seeded from getrandom(2)
 * on first use, and again after fork(2) so that a child never repeats its
 * parent's numbers.  Never parks; any thread. */
uint64_t tern__rand64(void);
/* n uniform bytes at out: one call for an id of several words. */
void tern__rand_fill(void *out, size_t n);
/* Uniform in [0, 1). */
double tern__rand01(void);

#endif
