/*
 * tern/redis.h - a Redis client for coroutines, with automatic pipelining.
 *
 * A tern_redis_client holds a small pool of connections to one server.
 * Commands from any number of coroutines share them: each call formats its
 * command, queues it on a connection and parks; that connection's writer
 * coroutine sends everything queued in one writev, and its reader
 * coroutine parses the replies (hiredis's RESP reader) and hands each to
 * the caller whose command it answers, in order.  A thousand coroutines
 * calling GET therefore cost a few system calls per batch, not per call
 * (lettuce's and go-redis's pipelining, done without the caller asking).
 *
 * Bounding: every call that can park takes a tern_ctx last (NULL:
 * unbounded) and returns -ETIMEDOUT / -ECANCELED when it ends first.  A
 * caller that gives up stops waiting at once; if its command was already
 * sent, the reply is read and dropped when it comes, so the replies of
 * later callers stay matched.  A command not yet sent when its caller
 * gave up is not sent.  (A command that timed out may still have run.)
 *
 * Failures: a broken connection fails every command sent on it
 * (-ECONNRESET, -EPIPE, -EPROTO for a reply hiredis cannot parse,
 * -ETIMEDOUT when no reply came within opts.read_timeout), then
 * reconnects in the background (at once, then with exponential backoff
 * while attempts fail).  Calls go to a connection that is up; with none
 * up, to one being made (the call waits for it, bounded by its ctx; a
 * command queued but not yet sent when a connection broke waits for the
 * next one too); and when every one is down, backing off after a failed
 * attempt, they fail at once with -ENOTCONN.  A Redis error reply ("-ERR ...", "-WRONGTYPE ...") is not a
 * transport error: the call returns -EREMOTEIO and the reply's message is
 * available (tern_redis_command hands the error reply out).
 *
 * Ownership: tern_redis_client_new gives the caller the client, freed with
 * tern_redis_client_free (from a coroutine: it waits for the connection
 * coroutines to end).  A tern_redis_reply handed out through `out` is the
 * caller's, freed with tern_redis_reply_free; an element reached through
 * tern_redis_reply_at is borrowed from its root reply and lives as long as
 * it.  Strings in options are copied.  Values returned as char ** are
 * malloc'd, NUL-terminated, and the caller's to free().
 *
 * Threads: all calls from coroutines; a client is shared freely between
 * coroutines on any P.
 */
#ifndef TERN_REDIS_H
#define TERN_REDIS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/chan.h"
#include "tern/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_redis_client tern_redis_client;
typedef struct tern_redis_reply tern_redis_reply;

/** Client options; the zero value (or NULL) means the defaults. */
typedef struct tern_redis_client_options {
    const char *addr;           /* "host:port" (TCP) or a Unix socket path
                                   ("/run/redis.sock", "@abstract");
                                   NULL: "127.0.0.1:6379" */
    const char *username;       /* AUTH username (Redis 6 ACL); NULL: none */
    const char *password;       /* AUTH password; NULL: no AUTH */
    int db;                     /* SELECT db after connecting; 0: none */
    int pool_size;              /* pipelined connections; 0: 2 */
    int64_t connect_timeout;    /* ns, per attempt (dial + AUTH/SELECT); 0: 5 s */
    int64_t backoff_min;        /* ns, first reconnect delay; 0: 10 ms */
    int64_t backoff_max;        /* ns, the delay doubles up to this; 0: 1 s */
    int blocking_pool;          /* idle dedicated connections kept for blocking
                                   commands (XREADGROUP BLOCK ...); 0: 2 */
    int64_t read_timeout;       /* ns a pipelined connection may leave a sent
                                   command unanswered before it is taken for
                                   dead (noticed within twice this; a
                                   server stopped, a network gone
                                   quiet without a reset): its calls fail with
                                   -ETIMEDOUT and it is re-made.  0: 5 s;
                                   < 0: never.  Keep it above the slowest
                                   command sent through the pipeline. */
} tern_redis_client_options;

/** Reply types, as RESP2 has them. */
typedef enum tern_redis_type {
    TERN_REDIS_STRING = 1,      /* bulk string: tern_redis_reply_str */
    TERN_REDIS_ARRAY = 2,       /* tern_redis_reply_len, tern_redis_reply_at */
    TERN_REDIS_INTEGER = 3,     /* tern_redis_reply_int */
    TERN_REDIS_NIL = 4,         /* a missing value */
    TERN_REDIS_STATUS = 5,      /* "+OK": tern_redis_reply_str */
    TERN_REDIS_ERROR = 6,       /* "-ERR ...": tern_redis_reply_str */
} tern_redis_type;

/**
 * Make a client for opts->addr.  No connection is made here: the pool's
 * connections are dialled in the background, at once.  0 with *out the
 * caller's (tern_redis_client_free), or -ENOMEM / -EINVAL (pool_size
 * outside 1..64) with *out NULL.  From a coroutine.
 */
int tern_redis_client_new(const tern_redis_client_options *opts, tern_redis_client **out);

/**
 * Close every connection, fail what is still queued with -ECANCELED, wait
 * for the client's coroutines to end and release it.  No call on the
 * client may be running or start.  NULL is a no-op.  From a coroutine.
 */
void tern_redis_client_free(tern_redis_client *cl);

/** Counters of a client (monotonic since tern_redis_client_new, except
 *  connected and inflight, which are gauges).  A struct tag without a
 *  typedef, as struct tern_runtime_stats: the function owns the name. */
struct tern_redis_stats {
    uint64_t commands;          /* replies handed to callers or dropped */
    uint64_t errors;            /* calls that failed (transport or ctx) */
    uint64_t error_replies;     /* Redis error replies */
    uint64_t batches;           /* writev batches sent */
    uint64_t batched;           /* commands in them (batched / batches: mean batch) */
    uint64_t dropped;           /* replies read for callers that had gone */
    uint64_t reconnects;        /* connections made after the first per slot */
    int connected;              /* pipelined connections up now */
    int inflight;               /* commands sent or queued, not yet answered */
};

/** Fill *out with cl's counters: 0.  Never parks; any thread (figures
 *  read while calls run are a racy snapshot). */
int tern_redis_stats(const tern_redis_client *cl, struct tern_redis_stats *out);

typedef struct tern_metrics_registry tern_metrics_registry;

/**
 * Publish cl's counters in the metrics registry r (tern/metrics.h), read
 * at each scrape: tern_redis_commands_total, tern_redis_errors_total,
 * tern_redis_error_replies_total, tern_redis_batches_total,
 * tern_redis_batched_commands_total (over batches: the mean pipeline
 * batch), tern_redis_dropped_replies_total, tern_redis_reconnects_total,
 * and the gauges tern_redis_connections and tern_redis_inflight.  One
 * client per registry (a second gives -EEXIST).  r keeps a pointer to cl:
 * free r (or stop scraping it) before freeing cl.  0, -EEXIST, -ENOMEM.
 */
int tern_redis_metrics_register(tern_redis_client *cl, tern_metrics_registry *r);

/* ---- commands ------------------------------------------------------------ */

/**
 * Run the command argv[0..argc) (binary-safe; argvlen NULL: each argv[i]
 * is a C string) through the shared pipeline.  0 with *out the reply (the
 * caller's to tern_redis_reply_free); -EREMOTEIO with *out the error reply
 * (its message in tern_redis_reply_str); otherwise -errno with *out NULL:
 * -ETIMEDOUT / -ECANCELED (ctx), -ENOTCONN (no connection up),
 * -ECONNRESET / -EPIPE / -EPROTO (the connection broke while the command
 * was queued or sent), -EINVAL (argc < 1), -ENOMEM.  out may be NULL to
 * discard the reply (an error reply still gives -EREMOTEIO).
 *
 * The connection is shared, so a command that changes its state would
 * change it for every caller and is not for this call: SELECT and AUTH
 * (use the options), SUBSCRIBE (tern_redis_subscribe), MULTI / EXEC /
 * WATCH (other callers' commands would land inside the transaction: use a
 * Lua script, which runs atomically), CLIENT REPLY, blocking commands
 * (tern_redis_blocking_command).
 */
int tern_redis_command(tern_redis_client *cl, int argc, const char *const *argv,
                       const size_t *argvlen, tern_redis_reply **out, tern_ctx *ctx);

/**
 * The command given printf-style in hiredis's format: "%s" a C string and
 * "%b" a (pointer, size_t) binary string, each one argument however many
 * spaces it holds ("SET %s %b", key, val, vlen).  As tern_redis_command.
 * A variadic call cannot end with its ctx, so ctx comes before the
 * format here; tern_redis_vcommandf keeps the ctx-last rule.
 */
int tern_redis_commandf(tern_redis_client *cl, tern_redis_reply **out, tern_ctx *ctx,
                        const char *fmt, ...);

/** tern_redis_commandf with a va_list; ctx last. */
int tern_redis_vcommandf(tern_redis_client *cl, tern_redis_reply **out, const char *fmt,
                         va_list ap, tern_ctx *ctx);

/**
 * Run a command that may block the server side (XREADGROUP ... BLOCK,
 * BLPOP, WAIT) on a connection of its own, never the shared pipeline,
 * where it would hold up every other caller.  Idle dedicated connections
 * are kept (opts.blocking_pool) and reused; one whose call ended by ctx
 * or by a transport error is closed, since its reply may still come.
 * Results as tern_redis_command.
 */
int tern_redis_blocking_command(tern_redis_client *cl, int argc, const char *const *argv,
                                const size_t *argvlen, tern_redis_reply **out, tern_ctx *ctx);

/* ---- replies --------------------------------------------------------------- */

/** The reply's type. */
tern_redis_type tern_redis_reply_type(const tern_redis_reply *r);

/** The bytes of a STRING, STATUS or ERROR reply (NUL-terminated, len may
 *  be NULL), borrowed from r; NULL for other types. */
const char *tern_redis_reply_str(const tern_redis_reply *r, size_t *len);

/** The value of an INTEGER reply; 0 for other types. */
int64_t tern_redis_reply_int(const tern_redis_reply *r);

/** The number of elements of an ARRAY reply; 0 for other types. */
size_t tern_redis_reply_len(const tern_redis_reply *r);

/** Element i of an ARRAY reply, borrowed from r (valid while r is);
 *  i out of range aborts (a programmer error). */
const tern_redis_reply *tern_redis_reply_at(const tern_redis_reply *r, size_t i);

/** Free a reply handed out by a call (never an element).  NULL: no-op. */
void tern_redis_reply_free(tern_redis_reply *r);

/* ---- strings ----------------------------------------------------------------- */

/**
 * GET key into a malloc'd copy: 0 with *val (NUL-terminated, the caller's
 * to free()) and *len (may be NULL) set; -ENOENT when the key does not
 * exist; -EREMOTEIO for an error reply (WRONGTYPE ...); or a transport /
 * ctx error as tern_redis_command.  *val is NULL on failure.
 */
int tern_redis_get(tern_redis_client *cl, const char *key, char **val, size_t *len,
                   tern_ctx *ctx);

/**
 * GET key into the caller's buf of cap bytes (no allocation, no NUL
 * added): 0 with *len the value's size; -ENOSPC when cap is too small
 * (*len then says how much is needed); others as tern_redis_get.
 */
int tern_redis_get_buf(tern_redis_client *cl, const char *key, void *buf, size_t cap,
                       size_t *len, tern_ctx *ctx);

/**
 * SET key to val[0..len), expiring after ttl ns (rounded up to a
 * millisecond; 0: no expiry).  0, -EINVAL for ttl < 0, or as
 * tern_redis_command.
 */
int tern_redis_set(tern_redis_client *cl, const char *key, const void *val, size_t len,
                   int64_t ttl, tern_ctx *ctx);

/** DEL key: 0 when it existed, -ENOENT when not, or as tern_redis_command. */
int tern_redis_del(tern_redis_client *cl, const char *key, tern_ctx *ctx);

/* ---- sessions ----------------------------------------------------------------
 * A session is a value under a key with a sliding expiry: every read
 * pushes the expiry ttl ahead (GETEX ... PX, one round trip), so an active
 * session lives on and an idle one ends by itself, with nothing to sweep. */

/** Store a session: SET key data PX ttl (ttl >= 1 ms, else -EINVAL); as
 *  tern_redis_set. */
int tern_redis_session_put(tern_redis_client *cl, const char *key, const void *data,
                           size_t len, int64_t ttl, tern_ctx *ctx);

/** Read a session and extend it to ttl ns from now (ttl >= 1 ms): results
 *  and ownership as tern_redis_get (-ENOENT: absent or expired). */
int tern_redis_session_get(tern_redis_client *cl, const char *key, int64_t ttl, char **data,
                           size_t *len, tern_ctx *ctx);

/* ---- lock ---------------------------------------------------------------------
 * A lease lock on one key: SET key token NX PX ttl with a random token;
 * renew and release check the token in a Lua script (compare-and-expire,
 * compare-and-delete), so only the owner can extend or drop it, and a
 * holder whose lease ran out cannot release its successor's lock.  Every
 * acquisition also takes a fencing token, INCR of "<key>:fence", strictly
 * greater than any earlier holder's: pass it to the resource so that it
 * can refuse a stale holder's writes. */

/** A held lock; the caller's storage, filled by acquire. */
typedef struct tern_redis_lock {
    char key[200];              /* the lock's key */
    char token[33];             /* 128 random bits in hex: the owner's proof */
    int64_t fence;              /* fencing token (monotonic per key) */
} tern_redis_lock;

/**
 * Try once to take the lock named key for ttl ns (>= 1 ms).  0 with *lk
 * filled; -EAGAIN when someone holds it; -ENAMETOOLONG for a key over 190
 * bytes; -EINVAL for a bad ttl; or as tern_redis_command.
 */
int tern_redis_lock_try_acquire(tern_redis_client *cl, const char *key, int64_t ttl,
                                tern_redis_lock *lk, tern_ctx *ctx);

/**
 * Take the lock, retrying (2 ms doubling to 100 ms, with jitter) while it
 * is held, until ctx ends: 0, -ETIMEDOUT / -ECANCELED, or as
 * tern_redis_lock_try_acquire.
 */
int tern_redis_lock_acquire(tern_redis_client *cl, const char *key, int64_t ttl,
                            tern_redis_lock *lk, tern_ctx *ctx);

/** Extend a held lock to ttl ns from now: 0, -ENOLCK when lk no longer
 *  owns it (expired, taken by another), or as tern_redis_command. */
int tern_redis_lock_renew(tern_redis_client *cl, const tern_redis_lock *lk, int64_t ttl,
                          tern_ctx *ctx);

/** Release a held lock: 0, -ENOLCK when lk no longer owns it (nothing is
 *  deleted then), or as tern_redis_command. */
int tern_redis_lock_release(tern_redis_client *cl, const tern_redis_lock *lk, tern_ctx *ctx);

/* ---- rate limit ---------------------------------------------------------------
 * A global rate limit shared by every process using the key: GCRA (the
 * generic cell rate algorithm, a token bucket kept as one timestamp), in a
 * Lua script run with EVALSHA (EVAL when the server lost the script), on
 * the server's clock, so that clients' clocks do not matter. */

/** A limit: `rate` requests per `period` ns on average, and bursts of up
 *  to `burst` at once (burst >= 1). */
typedef struct tern_redis_limit {
    int64_t rate;
    int64_t period;
    int64_t burst;
} tern_redis_limit;

/**
 * Ask for one request under key: 0 with *allowed true, or false and
 * *retry_after (may be NULL) the ns until one would be allowed.  -EINVAL
 * for a bad limit (any field < 1, or period / rate under a microsecond),
 * or as tern_redis_command.
 */
int tern_redis_limit_allow(tern_redis_client *cl, const char *key,
                           const tern_redis_limit *lim, bool *allowed, int64_t *retry_after,
                           tern_ctx *ctx);

/* ---- streams ------------------------------------------------------------------
 * At-least-once consumers with Redis Streams and consumer groups: a
 * message read by a consumer stays pending in the group until it is
 * acknowledged; one whose consumer died is taken over by another with
 * XAUTOCLAIM once it has been idle long enough.  Replies keep Redis's
 * shape (documented per call) and are read with the reply accessors. */

/** Stream ids ("1700000000000-0") fit in this many bytes with the NUL. */
#define TERN_REDIS_ID_MAX 48

/**
 * XADD stream * field value ...: append an entry of nfields (name, value)
 * pairs, kv[2i] the name and kv[2i+1] the value (C strings).  0 with the
 * new entry's id in id (TERN_REDIS_ID_MAX bytes; may be NULL), -EINVAL
 * for nfields < 1, or as tern_redis_command.
 */
int tern_redis_xadd(tern_redis_client *cl, const char *stream, int nfields,
                    const char *const *kv, char *id, tern_ctx *ctx);

/**
 * XGROUP CREATE stream group start MKSTREAM (start: "$" for new entries
 * only, "0" for the whole stream): 0, -EEXIST when the group exists, or
 * as tern_redis_command.
 */
int tern_redis_xgroup_create(tern_redis_client *cl, const char *stream, const char *group,
                             const char *start, tern_ctx *ctx);

/**
 * XREADGROUP GROUP group consumer COUNT count BLOCK block STREAMS stream >:
 * up to count new entries for this consumer, waiting up to block ns
 * (rounded up to a millisecond; 0: do not wait) for the first.  It runs on
 * a dedicated connection (tern_redis_blocking_command), so the wait holds
 * up no other caller.  0 with *out (the caller's) in XREADGROUP's shape:
 * [[stream, [[id, [field, value, ...]], ...]]]; -ENOENT (and *out NULL)
 * when none came within block; or as tern_redis_command.
 */
int tern_redis_xreadgroup(tern_redis_client *cl, const char *stream, const char *group,
                          const char *consumer, int count, int64_t block,
                          tern_redis_reply **out, tern_ctx *ctx);

/** XACK stream group id: 0 when it was pending, -ENOENT when not, or as
 *  tern_redis_command. */
int tern_redis_xack(tern_redis_client *cl, const char *stream, const char *group,
                    const char *id, tern_ctx *ctx);

/**
 * XAUTOCLAIM stream group consumer min_idle start COUNT count: give
 * consumer up to count pending entries idle for at least min_idle ns
 * (rounded down to a millisecond), scanning from start ("0-0" at first,
 * then the cursor returned).  0 with *out (the caller's) in Redis 7's
 * shape: [next-cursor, [[id, [field, value, ...]], ...], [deleted ids]];
 * or as tern_redis_command.
 */
int tern_redis_xautoclaim(tern_redis_client *cl, const char *stream, const char *group,
                          const char *consumer, int64_t min_idle, const char *start,
                          int count, tern_redis_reply **out, tern_ctx *ctx);

/* ---- pub/sub ------------------------------------------------------------------
 * A subscription holds a connection of its own (a subscribed connection
 * takes no other commands) and a coroutine that reads it and sends each
 * message, as a tern_redis_msg *, to a tern channel.  A lost connection
 * is re-made and the channels subscribed again, with the client's backoff;
 * messages published in between are missed (pub/sub is at most once: use
 * a stream where that matters).  The channel is closed by
 * tern_redis_sub_free only.  The client must outlive its subscriptions.
 * A consumer slower
 * than the publishers fills the channel, and then the socket: the server
 * disconnects it at its client-output-buffer-limit. */

typedef struct tern_redis_sub tern_redis_sub;

/** A message received; the receiver's, freed with tern_redis_msg_free. */
typedef struct tern_redis_msg {
    char *channel;              /* NUL-terminated */
    char *data;                 /* data[len] is a NUL, for text payloads */
    size_t len;
} tern_redis_msg;

/**
 * SUBSCRIBE to channels[0..n) on a new connection, bounded by ctx, and
 * deliver messages to a channel buffering `buffer` of them.  0 with *out
 * the caller's (tern_redis_sub_free) once the server confirmed every
 * subscription; -EINVAL for n < 1; or as tern_redis_command.
 */
int tern_redis_subscribe(tern_redis_client *cl, const char *const *channels, int n,
                         size_t buffer, tern_redis_sub **out, tern_ctx *ctx);

/** The channel of messages (elements: tern_redis_msg *), owned by s. */
tern_chan *tern_redis_sub_chan(tern_redis_sub *s);

/**
 * Close the connection, wait for the reading coroutine to end, free the
 * messages still buffered and release s (and its channel: no coroutine may
 * be receiving from it).  NULL is a no-op.  From a coroutine.
 */
void tern_redis_sub_free(tern_redis_sub *s);

/** How many times s lost its connection and subscribed again. */
uint64_t tern_redis_sub_resubscribed(const tern_redis_sub *s);

/** Free a message.  NULL is a no-op. */
void tern_redis_msg_free(tern_redis_msg *m);

/**
 * PUBLISH channel data[0..len): 0 with *receivers (may be NULL) the number
 * of subscribers that got it, or as tern_redis_command.
 */
int tern_redis_publish(tern_redis_client *cl, const char *channel, const void *data,
                       size_t len, int64_t *receivers, tern_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
