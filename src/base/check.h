/*
 * check.h - invariants and programmer errors, written where they hold.
 *
 * TERN_ASSERT(cond) states an invariant the code relies on: a comment that
 * runs.  It is checked in Debug builds and in every sanitizer and fuzz
 * build (CMake defines TERN_ASSERTIONS there), and compiled out in release
 * builds, where the condition is not evaluated.  A failure prints the
 * condition, file, line and function, then aborts.
 *
 * TERN_CHECK_ARG(p) is always on: a NULL object handed to a public
 * function is the caller's mistake, reported by naming the function and
 * argument ("tern_chan_send: ch is NULL") instead of a bare SIGSEGV a few
 * frames down.  One predicted-taken branch.
 *
 * Layout claims use C11's _Static_assert directly.
 */
#ifndef TERN_BASE_CHECK_H
#define TERN_BASE_CHECK_H

_Noreturn void tern__assert_fail(const char *cond, const char *file, int line, const char *func);
_Noreturn void tern__null_arg(const char *func, const char *arg);

#ifdef TERN_ASSERTIONS
#define TERN_ASSERT(cond)                                                                \
    (__builtin_expect(!!(cond), 1) ? (void)0                                             \
                                   : tern__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
/* Never evaluated (the && short-circuits on a constant, and the optimizer
 * drops it), yet the names stay used: no unused-variable warnings, and a
 * static helper called only by asserts is not "unneeded" to clang, as it
 * would be inside sizeof. */
#define TERN_ASSERT(cond) ((void)(0 && (cond)))
#endif

#define TERN_CHECK_ARG(p)                                                                \
    (__builtin_expect((p) != NULL, 1) ? (void)0 : tern__null_arg(__func__, #p))

#endif
