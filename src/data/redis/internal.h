/*
 * internal.h - what the Redis client's files share.
 *
 * conn.c     one connection: dial, AUTH/SELECT, one command at a time
 *            (the handshake, and the dedicated connections of blocking
 *            commands and pub/sub)
 * pipeline.c one shared, pipelined connection: the queue of callers, its
 *            writer and reader coroutines, reconnection with backoff
 * client.c   the pool of pipelines and the public command calls
 * reply.c    replies (hiredis's redisReply behind tern_redis_reply)
 * strings.c  GET / SET / DEL conveniences
 * stream.c   XADD, XGROUP, XREADGROUP (on a dedicated connection), XACK,
 *            XAUTOCLAIM
 * pubsub.c   SUBSCRIBE on a dedicated connection, messages to a tern_chan
 * script.c   EVALSHA with SCRIPT LOAD / EVAL fallback, for lock.c, limit.c
 */
#ifndef TERN_DATA_REDIS_INTERNAL_H
#define TERN_DATA_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>

#include "tern/net.h"
#include "tern/redis.h"
#include "tern/runtime.h"
#include "tern/sync.h"

/* A tern_redis_reply is hiredis's redisReply, unchanged: no copy between
 * the parser and the caller. */
static inline tern_redis_reply *tern__redis_wrap(redisReply *r) { return (tern_redis_reply *)r; }
static inline const redisReply *tern__redis_rr(const tern_redis_reply *r)
{
    return (const redisReply *)r;
}

/* ---- conn.c ---- */
typedef struct tern__redis_conn {
    tern_conn *c;
    redisReader *rd;
} tern__redis_conn;

/* Dial addr and run AUTH / SELECT from opts, all bounded by ctx.  0 with
 * *out the caller's (tern__redis_conn_free), or -errno (-EREMOTEIO: AUTH
 * or SELECT refused). */
int tern__redis_conn_open(const tern_redis_client_options *opts, tern__redis_conn **out,
                          tern_ctx *ctx);
void tern__redis_conn_free(tern__redis_conn *rc);
/* Send cmd[0..len) and read one reply into *out.  Results as
 * tern_redis_command. */
int tern__redis_conn_roundtrip(tern__redis_conn *rc, const char *cmd, size_t len,
                               redisReply **out, tern_ctx *ctx);
/* Read the next reply (pub/sub pushes). */
int tern__redis_conn_read_reply(tern__redis_conn *rc, redisReply **out, tern_ctx *ctx);
/* Feed bytes read from the socket into the reader; -EPROTO if hiredis
 * rejects the stream. */
int tern__redis_reader_next(redisReader *rd, redisReply **out);

/* ---- pipeline.c ---- */
typedef struct tern__redis_pipe tern__redis_pipe;
typedef struct tern__redis_counters {
    _Atomic uint64_t commands, errors, error_replies, batches, batched, dropped, reconnects;
} tern__redis_counters;

int tern__redis_pipe_new(const tern_redis_client_options *opts, tern__redis_counters *cnt,
                         tern_ctx *life, tern_waitgroup *wg, tern__redis_pipe **out);
/* Queue cmd (ownership passes to the pipe, whatever the result) and wait
 * for its reply.  -ENOTCONN at once when the pipe is down. */
int tern__redis_pipe_call(tern__redis_pipe *p, char *cmd, size_t len, redisReply **out,
                          tern_ctx *ctx);
/* Lock-free snapshots (stats, metrics scrapes: they must not park). */
enum { TERN__REDIS_PIPE_DOWN, TERN__REDIS_PIPE_CONNECTING, TERN__REDIS_PIPE_UP };
int tern__redis_pipe_status(const tern__redis_pipe *p);
int tern__redis_pipe_inflight(const tern__redis_pipe *p);
/* Stop: fail queued calls, break the connection; the pipe's coroutines
 * leave (wg) and free what they own; the pipe itself is freed after. */
void tern__redis_pipe_stop(tern__redis_pipe *p);
void tern__redis_pipe_free(tern__redis_pipe *p);

/* ---- client.c ---- */
/* Run a formatted command (ownership of cmd passes) through the pool.
 * Maps an error reply to -EREMOTEIO, keeping it in *out. */
int tern__redis_run(tern_redis_client *cl, char *cmd, int len, tern_redis_reply **out,
                    tern_ctx *ctx);
/* cl's options, defaults filled in. */
const tern_redis_client_options *tern__redis_opts(const tern_redis_client *cl);
/* A new connection to cl's server, AUTH and SELECT done, bounded by ctx
 * and connect_timeout. */
int tern__redis_dial(tern_redis_client *cl, tern__redis_conn **out, tern_ctx *ctx);
/* hiredis's formatting returns -1 for a bad format and -2 for no memory. */
int tern__redis_format_err(int len);

/* ---- script.c ---- */
typedef struct tern__redis_script {
    const char *src;
    _Atomic(int) loaded;        /* sha below is valid */
    tern_mutex mu;
    char sha[41];
} tern__redis_script;
/* EVALSHA s with nkeys keys then args (argv[0..argc), C strings). */
int tern__redis_script_run(tern_redis_client *cl, tern__redis_script *s, int argc,
                           const char *const *argv, int nkeys, tern_redis_reply **out,
                           tern_ctx *ctx);

#endif
