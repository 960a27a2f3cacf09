/*
 * tern/log.h - structured logs: one JSON object per line, for the ELK stack.
 *
 *     tern_log_info("request done", TERN_LOG_STR("path", path),
 *                   TERN_LOG_INT("status", 200), TERN_LOG_DOUBLE("ms", 1.5));
 *
 * writes (the time is UTC, millisecond precision)
 *
 *     {"time":"2026-11-22T00:10:00.123Z","level":"info","msg":"request done",
 *      "path":"/x","status":200,"ms":1.5}
 *
 * The caller formats the line (strings JSON-escaped; invalid UTF-8 becomes
 * U+FFFD) and copies it into a bounded ring; a background thread drains the
 * ring to the log fd, one writev(2) per batch.  Logging therefore never
 * parks a coroutine nor blocks a worker thread: when the ring is full the
 * line is dropped and counted, and once the writer catches up it writes
 *
 *     {"time":"...","level":"warn","msg":"log lines dropped","dropped":N}
 *
 * Lines longer than TERN_LOG_LINE_MAX are cut at a field boundary (a string
 * of which more than 64 bytes fit is cut inside it) and end with
 * "truncated":true.
 *
 * Trace context: tern_log_ctx() adds "trace_id" and "span_id" from a
 * context made by tern_log_ctx_with_ids(); otherwise, if a hook is set
 * (tern_log_set_context_hook, meant for the tracing module), the hook is
 * asked for the current coroutine's ids.
 *
 * The writer batches: while lines keep coming, a line reaches the fd
 * within about 10 ms (sooner when the ring fills past half).  Lines still
 * in the ring when the process exits are lost: call tern_log_flush or
 * tern_log_shutdown before exit.
 *
 * fork(2): the child keeps the logger's fd, ring size and level, but not
 * its writer thread nor the lines still in its ring (the parent writes
 * those, once).  The child's first line (tern_log_write_line too) starts
 * a fresh ring and writer on the same fd, so a child just logs; its
 * tern_log_stats start from zero, and until it logs tern_log_flush has
 * nothing to wait for.  Parent and child then write to one fd: on a pipe,
 * as for any two writers, writes longer than PIPE_BUF (batches of lines)
 * may interleave mid-line.  To log elsewhere, tern_log_shutdown then
 * tern_log_init in the child.  The inherited ring is never touched in the
 * child; it is freed when the child starts or shuts down its logger (a
 * child that does neither keeps it, ring_bytes, until it exits).  A fork
 * waits for a tern_log_init or tern_log_shutdown in progress on another
 * thread.
 *
 * Threads: every function may be called from any thread or coroutine.
 * tern_log_init / tern_log_shutdown must not race with each other nor with
 * logging; without tern_log_init the first line starts a default logger
 * (stderr, level from TERN_LOG_LEVEL, else info).
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_http_req tern_http_req;     /* tern/http.h */
typedef struct tern_http_refusal tern_http_refusal;     /* tern/http.h */
typedef struct tern_http_resp tern_http_resp;

typedef enum tern_log_level {
    TERN_LOG_DEBUG = 1,
    TERN_LOG_INFO = 2,
    TERN_LOG_WARN = 3,
    TERN_LOG_ERROR = 4,
    TERN_LOG_OFF = 5,           /* as a threshold: log nothing */
} tern_log_level;

/* The longest line, newline included; a line is formatted on the caller's
 * stack, so this also bounds the stack it needs. */
#define TERN_LOG_LINE_MAX 2048

/* ---- fields ---------------------------------------------------------------- */

typedef enum tern_log_kind {
    TERN_LOG_KIND_STR = 1,
    TERN_LOG_KIND_INT,
    TERN_LOG_KIND_DOUBLE,       /* NaN and infinities are written as null */
    TERN_LOG_KIND_BOOL,
} tern_log_kind;

typedef struct tern_log_field {
    const char *key;
    tern_log_kind kind;
    /* strlen(key), if known when the field is made; 0: measured when
     * formatted.  The macros below set it for a literal key (folded at
     * compile time, so it costs nothing), which lets the formatter copy
     * the key whole.  Set by hand, it must be right. */
    uint32_t key_len;
    union {
        const char *s;          /* NULL is written as null */
        int64_t i;
        double d;
        bool b;
    } v;
} tern_log_field;

/* The key's length when the compiler knows it (a literal), else 0; k is
 * not evaluated here (__builtin_constant_p never evaluates its operand,
 * and the other arm is taken only when it is a constant). */
#define TERN_LOG_KEY_LEN_(k)                                                             \
    (__builtin_constant_p(__builtin_strlen(k)) ? (uint32_t)__builtin_strlen(k) : 0u)
#define TERN_LOG_FIELD_(k, kd, m, x)                                                     \
    ((tern_log_field){.key = (k), .kind = (kd), .key_len = TERN_LOG_KEY_LEN_(k), .v.m = (x)})
#define TERN_LOG_STR(k, x)    TERN_LOG_FIELD_(k, TERN_LOG_KIND_STR, s, x)
#define TERN_LOG_INT(k, x)    TERN_LOG_FIELD_(k, TERN_LOG_KIND_INT, i, x)
#define TERN_LOG_DOUBLE(k, x) TERN_LOG_FIELD_(k, TERN_LOG_KIND_DOUBLE, d, x)
#define TERN_LOG_BOOL(k, x)   TERN_LOG_FIELD_(k, TERN_LOG_KIND_BOOL, b, x)

/* ---- writing lines --------------------------------------------------------- */

/* Log msg with n fields at level.  Nothing is formatted when the level is
 * filtered out.  Fields named time, level, msg, trace_id or span_id are not
 * checked for: do not use them. */
void tern_log_fields(tern_log_level level, const char *msg, const tern_log_field *fields, size_t n);

/* The same with the trace and span ids of ctx (see tern_log_ctx_with_ids);
 * NULL ctx, or one without ids, behaves as tern_log_fields. */
void tern_log_ctx_fields(tern_ctx *ctx, tern_log_level level, const char *msg,
                         const tern_log_field *fields, size_t n);

/* For tern_log below, not for direct use: tern_log_fields once the level
 * has passed, with strlen(msg) when the compiler knows it (else 0). */
void tern__log_emit(tern_log_level level, const char *msg, uint32_t msg_len,
                    const tern_log_field *fields, size_t n);

/* Variadic forms: tern_log(TERN_LOG_INFO, "msg", TERN_LOG_INT("n", 1), ...).
 * The level is checked first: when it is filtered out, the other
 * arguments (ctx, msg, the fields' values) are not evaluated at all, so
 * a debug line costs one load where debug is off.  (level itself is
 * evaluated twice: give a constant or a plain variable.)  The leading
 * empty field only lets the list be empty. */
#define TERN_LOG_ARRAY_(...) ((const tern_log_field[]){{0}, __VA_ARGS__})
#define TERN_LOG_COUNT_(...) (sizeof TERN_LOG_ARRAY_(__VA_ARGS__) / sizeof(tern_log_field) - 1)
#define tern_log(level, msg, ...)                                                        \
    (tern_log_enabled(level)                                                             \
         ? tern__log_emit((level), (msg), TERN_LOG_KEY_LEN_(msg),                        \
                          TERN_LOG_ARRAY_(__VA_ARGS__) + 1, TERN_LOG_COUNT_(__VA_ARGS__)) \
         : (void)0)
#define tern_log_ctx(ctx, level, msg, ...)                                               \
    (tern_log_enabled(level)                                                             \
         ? tern_log_ctx_fields((ctx), (level), (msg), TERN_LOG_ARRAY_(__VA_ARGS__) + 1,  \
                               TERN_LOG_COUNT_(__VA_ARGS__))                             \
         : (void)0)
#define tern_log_debug(msg, ...) tern_log(TERN_LOG_DEBUG, (msg), __VA_ARGS__)
#define tern_log_info(msg, ...)  tern_log(TERN_LOG_INFO, (msg), __VA_ARGS__)
#define tern_log_warn(msg, ...)  tern_log(TERN_LOG_WARN, (msg), __VA_ARGS__)
#define tern_log_error(msg, ...) tern_log(TERN_LOG_ERROR, (msg), __VA_ARGS__)

/* ---- levels ---------------------------------------------------------------- */

/* Lines below level are skipped from now on (one atomic store). */
void tern_log_set_level(tern_log_level level);
/* The threshold now, and whether a line at level would be written. */
tern_log_level tern_log_get_level(void);
bool tern_log_enabled(tern_log_level level);

/* "debug", "info", "warn" (or "warning"), "error", "off", any case:
 * the level, or -EINVAL. */
int tern_log_level_parse(const char *name);
/* "debug" ... "off"; "?" for anything else. */
const char *tern_log_level_name(tern_log_level level);

/* ---- trace context --------------------------------------------------------- */

typedef struct tern_log_ids {
    const char *trace_id;       /* NULL: not written */
    const char *span_id;
} tern_log_ids;

/* A child of parent (NULL: background) carrying ids, for tern_log_ctx.
 * ids and its strings are borrowed: they must outlive the context (keep
 * them in the request's arena, tern_http_req_alloc).  0 and *out, the
 * caller's to free with tern_ctx_free; -ENOMEM (*out NULL). */
int tern_log_ctx_with_ids(tern_ctx *parent, const tern_log_ids *ids, tern_ctx **out);

/* Fill *ids for the calling coroutine and return true, or return false.
 * The strings must stay valid until the calling coroutine next parks.
 * Called on the logging thread for each line logged without context ids;
 * it must not park. */
typedef bool tern_log_context_fn(tern_log_ids *ids);

/* Set (NULL: remove) the hook.  Any thread, any time. */
void tern_log_set_context_hook(tern_log_context_fn *fn);

/* ---- the writer -------------------------------------------------------------- */

/* The default ring: about 30 ms of lines at 100k access lines a second,
 * enough to ride out a writer kept off the CPU by a loaded machine.  (A
 * 256 KiB ring stays warmer in cache and served 2-3% more requests a
 * second in svc's benchmark, but dropped lines there, about 4 in 10,000,
 * while the writer waited for a CPU: not worth it as a default.) */
#define TERN_LOG_RING_DEFAULT ((size_t)1 << 20)

typedef struct tern_log_options {
    int fd;                     /* where lines go; 0: stderr (or path) */
    const char *path;           /* when fd is 0: append to this file
                                   (created 0644); NULL: stderr */
    size_t ring_bytes;          /* ring size; 0: TERN_LOG_RING_DEFAULT;
                                   at least 4096 */
    tern_log_level level;       /* 0: TERN_LOG_LEVEL env, else info */
} tern_log_options;

/* Start the logger: the ring and its writer thread.  NULL options: the
 * defaults.  -EALREADY if one runs, in a forked child also the one it
 * inherited (tern_log_shutdown first), -EINVAL for a
 * bad level, ring size or TERN_LOG_LEVEL value, -errno from open or
 * pthread_create.  fd is not closed by tern_log_shutdown; path's is. */
int tern_log_init(const tern_log_options *opts);

/* Flush (up to 1 s), stop the writer and free the ring.  Lines logged
 * after this start a default logger again. */
void tern_log_shutdown(void);

/* Hand a line already formatted (JSON, ending in '\n', at most
 * TERN_LOG_LINE_MAX bytes) to the writer as it is: for producers with
 * their own format, such as the HTTP access log.  Never blocks.  0,
 * -EAGAIN when the ring is full (the line is dropped and counted, as any
 * other), -ESRCH if no logger runs, -EINVAL for an empty or too long line. */
int tern_log_write_line(const char *line, size_t len);

/* Wait until every line logged before the call, and the report of lines
 * dropped before it, has been handed to write(2), or until ctx ends (NULL:
 * no bound).  Parks when called from a coroutine, sleeps otherwise; on a
 * thread outside the runtime too, where it compares ctx's deadline with
 * the clock itself (no timer needs to end ctx).  Lines already written
 * count even when ctx has ended: an ended ctx makes it check once.  0,
 * -ETIMEDOUT or -ECANCELED as ctx ends, or -ESRCH if no logger runs. */
int tern_log_flush(tern_ctx *ctx);

/* The struct shares the function's name (as POSIX's struct stat and
 * stat() do): name it with its tag. */
struct tern_log_stats {
    uint64_t lines;             /* accepted into the ring */
    uint64_t dropped;           /* dropped because the ring was full */
    uint64_t write_errors;      /* batches write(2) failed on (lost) */
};

/* Counters since tern_log_init into *out; 0.  Any thread. */
int tern_log_stats(struct tern_log_stats *out);

/* ---- the HTTP access log ------------------------------------------------
 *
 * A middleware (tern/http_mw.h's chains): one JSON object per request, on
 * one line, after the chain returns: a tern_log line (the same formatter
 * and escaping) at level info with msg "request":
 *
 *   {"time":"2025-01-02T03:04:05.678Z","level":"info","msg":"request",
 *    "trace_id":"...","span_id":"...","status":200,"bytes":12,
 *    "duration_us":153,"method":"GET","remote":"127.0.0.1:5555",
 *    "request_id":"...","error":"...","path":"/a","user_agent":"curl/8.0"}
 *
 * time is when the request's head had been read (UTC); path is decoded,
 * without the query (which often carries secrets); bytes is the body's
 * length as sent (after gzip, before chunked framing); trace_id and
 * span_id appear inside tern_http_mw_trace (the request's span is then
 * current), request_id, user_agent and error only when there is one
 * (error: the handler's -errno, as tern_strerror says it; the status is
 * then 500 unless the response had already started).  Strings are
 * JSON-escaped and invalid UTF-8 becomes U+FFFD; a client's strings are
 * cut to a fixed number of their bytes before escaping (path 1 KiB, user
 * agent 256, method, remote and request id 128), at a character
 * boundary, and a line never exceeds TERN_LOG_LINE_MAX (the numbers come
 * first, so they are never the part cut).
 *
 * With neither out nor fn, lines go to the tern_log writer (a ring
 * drained by a thread: the worker never blocks) once tern_log_init has
 * run, else to stderr.
 * A FILE* gets each line with one fwrite (stdio's lock keeps lines whole
 * across threads); the write runs on the worker, so give a file that
 * does not block for long (a pipe to a collector may), or use fn to hand
 * lines to a channel. */
typedef void tern_http_log_fn(const char *line, size_t len, void *arg);

typedef struct tern_http_access_log_options {
    FILE *out;                  /* NULL (and no fn): the tern_log writer
                                   (a ring drained by a thread, never
                                   blocking) once tern_log_init has run,
                                   else stderr */
    tern_http_log_fn *fn;       /* if set, called instead (line ends in '\n') */
    void *fn_arg;
} tern_http_access_log_options;

/* The middleware; opts is a tern_http_access_log_options or NULL.  Runs
 * the rest of the chain, logs its line and returns what the chain
 * returned (the line never fails the request: a full ring drops it and
 * counts it in tern_log_stats). */
int tern_http_mw_access_log(tern_http_req *r, tern_http_resp *w, void *opts);

/* The access line of a request the server refused itself (no handler, so
 * no middleware, saw it): a tern_http_refused_fn for
 * tern_http_server_options.on_refused, opts as the middleware's.  The same
 * fields (bytes 0, path the target as sent) and "error": "refused by the
 * server".  tern_service wires it (with tern_http_metrics_refused). */
void tern_http_access_log_refused(const tern_http_refusal *rf, void *opts);

/* ---- the gRPC access log ------------------------------------------------
 *
 * A gRPC server interceptor (tern_grpc_server_add_interceptor; among the
 * kit's defaults, tern_grpc_server_use_kit, inside the tracing one): one
 * line per call when its handler returns, msg "rpc", with the HTTP access
 * log's sinks, escaping and cuts (opts: a tern_http_access_log_options, or
 * NULL):
 *
 *   {"time":"...","level":"info","msg":"rpc","trace_id":"...","span_id":"...",
 *    "grpc_code":"OK","duration_us":153,"type":"unary",
 *    "method":"/shop.users.v1.Users/Login","peer":"127.0.0.1:5555",
 *    "tls_peer":"...","request_id":"...","error":"...","user_agent":"grpc-go/1.6"}
 *
 * grpc_code is Go's name of the status ("NotFound"); error the status
 * message when the code is not OK; request_id from x-request-id metadata,
 * user_agent from user-agent; time when the call arrived. */
struct tern_grpc_call;
int tern_grpc_access_log_interceptor(struct tern_grpc_call *call, void *opts);

#ifdef __cplusplus
}
#endif
#endif
