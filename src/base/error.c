/*
 * error.c - tern_strerror().  Uses glibc's strerrordesc_np, which returns
 * static, thread-safe strings (strerror may not), with tern's own wording
 * where the C library's says the wrong thing for a coroutine runtime.
 */
#define _GNU_SOURCE
#include "tern/error.h"

#include <errno.h>
#include <string.h>

const char *tern_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0: return "success";
    case ETIMEDOUT: return "deadline exceeded";
    case ECANCELED: return "canceled";
    /* the runtime, or for their own calls the logger or the tracer */
    case ESRCH: return "not running (no tern runtime, or no logger or tracer started)";
    default: break;
    }
    const char *s = strerrordesc_np(err);
    return s ? s : "unknown error";
}
