/*
 * tern/error.h - error codes.  tern functions return 0 (or a count) on
 * success and a negative errno value on failure, as the Linux kernel and
 * libuv do; tern_strerror() turns one into a sentence for humans.
 * docs/errors.md lists, module by module, the codes each function returns
 * and what a caller should do about each.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* A static, thread-safe description of err (negative or positive errno).
 * Never NULL; unknown codes give "unknown error". */
const char *tern_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
