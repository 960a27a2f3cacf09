/*
 * log.c - the logger's face: levels, trace context, starting and stopping,
 * and the path of one line (filter, format on the caller's stack, copy into
 * the ring).  Formatting is in log_format.c, the ring in log_ring.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kit/log_internal.h"
#include "tern/context.h"
#include "tern/runtime.h"

/* 0 until first needed: then from TERN_LOG_LEVEL, or set explicitly. */
static atomic_int level_;
static _Atomic(tern_log_context_fn *) hook_;
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static int owned_fd = -1;       /* opened from options.path; closed at shutdown */
static int ids_key;             /* context value key for tern_log_ctx_with_ids */

int64_t tern_log_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tern_log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        tern_log_level level;
    } names[] = {{"debug", TERN_LOG_DEBUG}, {"info", TERN_LOG_INFO},   {"warn", TERN_LOG_WARN},
                 {"warning", TERN_LOG_WARN}, {"error", TERN_LOG_ERROR}, {"off", TERN_LOG_OFF}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0)
            return (int)names[i].level;
    return -EINVAL;
}

const char *tern_log_level_name(tern_log_level level)
{
    switch (level) {
    case TERN_LOG_DEBUG: return "debug";
    case TERN_LOG_INFO: return "info";
    case TERN_LOG_WARN: return "warn";
    case TERN_LOG_ERROR: return "error";
    case TERN_LOG_OFF: return "off";
    }
    return "?";
}

/* The level TERN_LOG_LEVEL asks for: info when unset, -EINVAL when bad. */
static int env_level(void)
{
    const char *e = getenv("TERN_LOG_LEVEL");
    return e && *e ? tern_log_level_parse(e) : TERN_LOG_INFO;
}

tern_log_level tern_log_get_level(void)
{
    int l = atomic_load_explicit(&level_, memory_order_relaxed);
    if (l == 0) {
        int e = env_level();
        int want = e < 0 ? TERN_LOG_INFO : e;
        int zero = 0;
        atomic_compare_exchange_strong(&level_, &zero, want);
        l = atomic_load(&level_);
    }
    return (tern_log_level)l;
}

void tern_log_set_level(tern_log_level level)
{
    if (level >= TERN_LOG_DEBUG && level <= TERN_LOG_OFF)
        atomic_store_explicit(&level_, (int)level, memory_order_relaxed);
}

bool tern_log_enabled(tern_log_level level)
{
    return level >= tern_log_get_level() && level < TERN_LOG_OFF;
}

void tern_log_set_context_hook(tern_log_context_fn *fn)
{
    atomic_store(&hook_, fn);
}

tern_ctx *tern_log_ctx_with_ids(tern_ctx *parent, const tern_log_ids *ids)
{
    return tern_ctx_with_value(parent, &ids_key, (void *)ids);
}

int tern_log_init(const tern_log_options *opts)
{
    tern_log_options o = opts ? *opts : (tern_log_options){0};
    int level = o.level ? (int)o.level : env_level();
    if (level < TERN_LOG_DEBUG || level > TERN_LOG_OFF)
        return -EINVAL;
    if (o.ring_bytes && o.ring_bytes < 4096)
        return -EINVAL;
    pthread_mutex_lock(&start_mu);
    int r = -EALREADY;
    if (tern_log_ring_running())
        goto out;
    int fd = o.fd ? o.fd : 2;
    if (!o.fd && o.path) {
        fd = open(o.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            r = -errno;
            goto out;
        }
    }
    r = tern_log_ring_start(fd, o.ring_bytes ? o.ring_bytes : (size_t)1 << 20);
    if (r == 0) {
        atomic_store(&level_, level);
        owned_fd = fd != o.fd && fd != 2 ? fd : -1;
    } else if (fd != o.fd && fd != 2) {
        close(fd);
    }
out:
    pthread_mutex_unlock(&start_mu);
    return r;
}

void tern_log_shutdown(void)
{
    tern_log_ring_flush(TERN_SEC);
    pthread_mutex_lock(&start_mu);
    tern_log_ring_stop();
    if (owned_fd >= 0)
        close(owned_fd);
    owned_fd = -1;
    pthread_mutex_unlock(&start_mu);
}

int tern_log_flush(int64_t timeout_ns)
{
    return tern_log_ring_flush(timeout_ns);
}

void tern_log_stats_get(tern_log_stats *st)
{
    tern_log_ring_stats(st);
}

bool tern__log_hook_ids(tern_log_ids *out)
{
    tern_log_context_fn *hook = atomic_load_explicit(&hook_, memory_order_acquire);
    return hook && hook(out);
}

static void emit(const tern_log_ids *ids, tern_log_level level, const char *msg,
                 const tern_log_field *fields, size_t n)
{
    tern_log_ids hooked;
    if (!ids && tern__log_hook_ids(&hooked))
        ids = &hooked;
    char line[TERN_LOG_LINE_MAX];
    size_t len = tern_log_format(line, tern_log_unix_ns(), level, msg, ids, fields, n);
    if (!tern_log_ring_running()) {
        /* The first line without tern_log_init: start the defaults. */
        tern_log_options o = {.level = tern_log_get_level()};
        if (tern_log_init(&o) != 0 && !tern_log_ring_running())
            return;
    }
    tern_log_ring_put(line, len);
}

int tern_log_write_line(const char *line, size_t len)
{
    if (!line || len == 0 || len > TERN_LOG_LINE_MAX || line[len - 1] != '\n')
        return -EINVAL;
    if (!tern_log_ring_running())
        return -ESRCH;
    return tern_log_ring_put(line, len) ? 0 : -EAGAIN;
}

void tern_log_fields(tern_log_level level, const char *msg, const tern_log_field *fields, size_t n)
{
    if (tern_log_enabled(level))
        emit(NULL, level, msg, fields, n);
}

void tern_log_ctx_fields(tern_ctx *ctx, tern_log_level level, const char *msg,
                         const tern_log_field *fields, size_t n)
{
    if (tern_log_enabled(level))
        emit(ctx ? tern_ctx_value(ctx, &ids_key) : NULL, level, msg, fields, n);
}
