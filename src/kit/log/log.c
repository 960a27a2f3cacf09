/*
 * log.c - the logger's face: levels, trace context, starting and stopping,
 * and the path of one line (filter, format on the caller's stack, copy into
 * the ring).  Formatting is in format.c, the ring in ring.c.
 *
 * fork(2): one pthread_atfork registration, made before start_mu is first
 * taken.  The prepare handler takes start_mu, so a fork never copies a
 * start or stop half done (the child would find the lock held by a thread
 * it does not have, or `run` not matching the ring); the parent and child
 * handlers release it.  In the child, if a ring ran, the handler abandons
 * it (ring.c) and sets `inherited`: the child's next line starts a
 * fresh ring and writer on the same fd with the same ring size (the level
 * is a global the child already has), as the first line of a process
 * starts the defaults.  The parent's lines still in the inherited ring are
 * written once, by the parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "base/check.h"
#include "base/wall.h"
#include "kit/log/internal.h"
#include "tern/context.h"
#include "tern/runtime.h"

/* 0 until first needed: then from TERN_LOG_LEVEL, or set explicitly. */
static atomic_int level_;
static _Atomic(tern_log_context_fn *) hook_;
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_err;
static int ids_key;             /* context value key for tern_log_ctx_with_ids */

/* The logger started last, under start_mu. */
static struct {
    int fd;
    bool owned;                 /* opened from options.path; closed at shutdown */
    size_t ring_bytes;
} run = {.fd = -1};
/* A forked child whose parent ran a logger: `run` is it, but no ring runs
 * yet.  Read without the lock on the paths where no ring runs. */
static atomic_bool inherited;

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

/* The level test every line makes, twice through the macros (theirs,
 * then tern_log_fields'): inlined here, the level read is one load. */
static inline bool enabled(tern_log_level level)
{
    int l = atomic_load_explicit(&level_, memory_order_relaxed);
    if (__builtin_expect(l == 0, 0))
        l = (int)tern_log_get_level();
    return (int)level >= l && level < TERN_LOG_OFF;
}

bool tern_log_enabled(tern_log_level level)
{
    return enabled(level);
}

void tern_log_set_context_hook(tern_log_context_fn *fn)
{
    atomic_store(&hook_, fn);
}

int tern_log_ctx_with_ids(tern_ctx *parent, const tern_log_ids *ids, tern_ctx **out)
{
    TERN_CHECK_ARG(out);
    return tern_ctx_with_value(parent, &ids_key, (void *)ids, out);
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&start_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&start_mu);
}

static void fork_child(void)
{
    if (tern__log_ring_abandon())
        atomic_store(&inherited, true);
    pthread_mutex_unlock(&start_mu);
}

static void register_atfork(void)
{
    atfork_err = pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Take start_mu, once the fork handlers are in place; -errno if they
 * could not be. */
static int lock_start(void)
{
    pthread_once(&atfork_once, register_atfork);
    if (atfork_err)
        return -atfork_err;
    pthread_mutex_lock(&start_mu);
    return 0;
}

/* Open o's fd and start the ring; under start_mu, no ring running. */
static int start_locked(const tern_log_options *o, int level)
{
    bool owned = !o->fd && o->path;
    int fd = o->fd ? o->fd : 2;
    if (owned && (fd = open(o->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        return -errno;
    size_t bytes = o->ring_bytes ? o->ring_bytes : TERN_LOG_RING_DEFAULT;
    int r = tern__log_ring_start(fd, bytes);
    if (r != 0) {
        if (owned)
            close(fd);
        return r;
    }
    atomic_store(&level_, level);
    run.fd = fd;
    run.owned = owned;
    run.ring_bytes = bytes;
    return 0;
}

int tern_log_init(const tern_log_options *opts)
{
    tern_log_options o = opts ? *opts : (tern_log_options){0};
    int level = o.level ? (int)o.level : env_level();
    if (level < TERN_LOG_DEBUG || level > TERN_LOG_OFF)
        return -EINVAL;
    if (o.ring_bytes && o.ring_bytes < 4096)
        return -EINVAL;
    int r = lock_start();
    if (r != 0)
        return r;
    if (tern__log_ring_running() || atomic_load(&inherited))
        r = -EALREADY;
    else
        r = start_locked(&o, level);
    pthread_mutex_unlock(&start_mu);
    return r;
}

/* No ring runs: restart the logger a forked child inherited, or else, if
 * defaults, start the default one (a first line without tern_log_init).
 * False if none runs after all. */
static bool start_for_line(bool defaults)
{
    if (!defaults && !atomic_load(&inherited))
        return false;
    if (lock_start() != 0)
        return false;
    int r = 0;
    if (!tern__log_ring_running() && atomic_load(&inherited)) {
        if ((r = tern__log_ring_start(run.fd, run.ring_bytes)) == 0)
            atomic_store(&inherited, false);
    } else if (!tern__log_ring_running()) {
        r = defaults ? start_locked(&(tern_log_options){0}, tern_log_get_level()) : -ESRCH;
    }
    pthread_mutex_unlock(&start_mu);
    return r == 0;
}

void tern_log_shutdown(void)
{
    tern__log_ring_flush(tern_now() + TERN_SEC, NULL);
    if (lock_start() != 0)
        return;                 /* then no logger ever started */
    tern__log_ring_stop();
    if (run.owned)
        close(run.fd);
    run.fd = -1;
    run.owned = false;
    atomic_store(&inherited, false);
    pthread_mutex_unlock(&start_mu);
}

int tern_log_flush(tern_ctx *ctx)
{
    int64_t deadline = TERN_FOREVER;
    if (ctx)
        tern_ctx_deadline(ctx, &deadline);
    int r = tern__log_ring_flush(deadline, ctx);
    /* A forked child that has not logged yet has nothing to wait for. */
    return r == -ESRCH && atomic_load(&inherited) ? 0 : r;
}

int tern_log_stats(struct tern_log_stats *out)
{
    TERN_CHECK_ARG(out);
    tern__log_ring_stats(out);
    return 0;
}

bool tern__log_hook_ids(tern_log_ids *out)
{
    tern_log_context_fn *hook = atomic_load_explicit(&hook_, memory_order_acquire);
    return hook && hook(out);
}

static void emit(const tern_log_ids *ids, tern_log_level level, const char *msg, size_t msg_len,
                 const tern_log_field *fields, size_t n)
{
    tern_log_ids hooked;
    if (!ids && tern__log_hook_ids(&hooked))
        ids = &hooked;
    char line[TERN_LOG_LINE_MAX];
    size_t len = tern__log_format(line, tern__wall_ns(), level, msg, msg_len, ids, fields, n);
    /* one call while a ring runs; the first line starts one */
    if (tern__log_ring_put(line, len) == -ESRCH && start_for_line(true))
        tern__log_ring_put(line, len);
}

int tern_log_write_line(const char *line, size_t len)
{
    if (!line || len == 0 || len > TERN_LOG_LINE_MAX || line[len - 1] != '\n')
        return -EINVAL;
    int r = tern__log_ring_put(line, len);
    if (r == -ESRCH && start_for_line(false))
        r = tern__log_ring_put(line, len);
    return r;
}

void tern_log_fields(tern_log_level level, const char *msg, const tern_log_field *fields, size_t n)
{
    if (enabled(level))
        emit(NULL, level, msg, 0, fields, n);
}

void tern__log_emit(tern_log_level level, const char *msg, uint32_t msg_len,
                    const tern_log_field *fields, size_t n)
{
    emit(NULL, level, msg, msg_len, fields, n);     /* the macro tested the level */
}

void tern_log_ctx_fields(tern_ctx *ctx, tern_log_level level, const char *msg,
                         const tern_log_field *fields, size_t n)
{
    if (enabled(level))
        emit(ctx ? tern_ctx_value(ctx, &ids_key) : NULL, level, msg, 0, fields, n);
}
