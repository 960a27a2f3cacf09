/*
 * grpc_internal.h - what the files of src/grpc share.
 *
 *   wire.c      the protocol's small codecs: the 5-byte message prefix,
 *               grpc-timeout, percent-encoded grpc-message, base64 for
 *               -bin metadata, gzip, codes <-> errnos
 *   server.c    tern_grpc_server: services, the HTTP handler, calls
 *   channel.c   tern_grpc_channel: targets, resolvers, subchannels,
 *               balancing, backoff
 *   channel_picker.c  a channel whose calls a picker places
 *   conn.c      one client HTTP/2 connection on nghttp2 (reader, writer)
 *   stream.c    tern_grpc_stream and tern_grpc_unary on a connection
 *   intercept.c the client interceptor chain (tern_grpc_unary and
 *               tern_grpc_stream_open start there)
 *   svcconfig.c the JSON service config; retryThrottling's tokens
 *   retry.c     a unary call's timeout, retries and hedging
 *
 * Messages on the wire (gRPC over HTTP/2, PROTOCOL-HTTP2.md): each is
 * a 1-byte compressed flag, a 4-byte big-endian length, then the bytes.
 */
#ifndef TERN_GRPC_INTERNAL_H
#define TERN_GRPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <stdatomic.h>

#include "base/arena.h"
#include "base/growbuf.h"
#include "tern/grpc.h"
#include "tern/sync.h"

#define GRPC_PREFIX 5

/* A message's prefix at p (5 bytes): its flag (0 or 1, else -EBADMSG)
 * and length. */
int tern__grpc_prefix_parse(const uint8_t *p, bool *compressed, uint32_t *len);
void tern__grpc_prefix_put(uint8_t *p, bool compressed, uint32_t len);

/* base64 (RFC 4648, standard alphabet), padded or not, into out (at least
 * n*3/4+3 bytes); returns the length or -EBADMSG. */
ssize_t tern__grpc_b64_decode(const char *s, size_t n, uint8_t *out);
/* base64 without padding (gRPC's choice for -bin values), NUL-terminated,
 * into out (at least (n+2)/3*4+1 bytes); returns the length. */
size_t tern__grpc_b64_encode(const uint8_t *p, size_t n, char *out);

/* gzip (RFC 1952) p[0..n) into out (appended).  0, -ENOMEM. */
int tern__grpc_gzip(const uint8_t *p, size_t n, tern__growbuf *out);
/* gunzip p[0..n) into out (appended), at most max bytes: -EMSGSIZE past
 * it, -EBADMSG for a corrupt stream, -ENOMEM. */
int tern__grpc_gunzip(const uint8_t *p, size_t n, size_t max, tern__growbuf *out);

/* Whether name is a metadata key (lower-case token chars [0-9a-z_.-]) and
 * one an application may send (not reserved: pseudo, grpc-*, te,
 * content-type, user-agent's is allowed). */
bool tern__grpc_md_name_ok(const char *name);
bool tern__grpc_md_reserved(const char *name);
bool tern__grpc_md_is_bin(const char *name, size_t n);
/* A valid ASCII metadata value: printable 0x20..0x7e. */
bool tern__grpc_md_value_ok(const char *v, size_t n);

/* The encodings we speak, as grpc-accept-encoding's value. */
#define TERN__GRPC_ACCEPT_ENCODING "identity,gzip"

/* A ProtobufCAllocator backed by an arena (reset between messages): no
 * free, everything goes when the arena is reset or freed. */
void tern__grpc_arena_allocator(ProtobufCAllocator *al, tern__arena *a);

/* Pack msg into out (appended) behind a 5-byte prefix, gzip'd when gz.
 * scratch is reused for the uncompressed bytes.  0, -EMSGSIZE (over max, 0
 * none, or 4 GiB), -ENOMEM. */
int tern__grpc_pack(const ProtobufCMessage *msg, bool gz, size_t max, tern__growbuf *out,
                    tern__growbuf *scratch);

/* server.c: the own HTTP server's handler (415 for anything not gRPC). */
int tern__grpc_server_serve_http(tern_http_req *r, tern_http_resp *w, void *arg);


/* ---- the client (channel.c, client.c) ------------------------------------- */
typedef struct gconn gconn;
typedef struct subch subch;

enum { SC_IDLE, SC_CONNECTING, SC_READY, SC_FAILURE };

/* One address of a channel, and its connection when it has one.  Under
 * the channel's mu. */
struct subch {
    tern_grpc_channel *ch;
    char *addr;                     /* "host:port" or "unix:/path" */
    int state;
    gconn *conn;                    /* READY: a ref held */
    int64_t next_attempt;           /* FAILURE: not before */
    int64_t backoff;                /* the next failure's wait */
    int last_err;
    bool retired;                   /* no longer in the resolver's list */
};

struct tern_grpc_channel {
    tern_mutex mu;
    tern_cond cond;                 /* subchannel state changes */
    subch **scs;                    /* current list */
    size_t nscs;
    subch **retired;                /* dropped by an update; freed with the channel */
    size_t nretired;
    bool round_robin;
    bool p2c;
    const tern_grpc_picker *picker; /* NULL: the policies above */
    void *picker_arg;
    atomic_uint rr;
    char *authority;                /* :authority */
    char *server_name;              /* TLS SNI / verification */
    char *user_agent;
    tern_tls_config *tls;
    size_t max_recv;
    int64_t backoff_base, backoff_max, min_connect;
    _Atomic int64_t keepalive_time;     /* 0: no pings; doubled on too_many_pings */
    int64_t keepalive_timeout;
    bool keepalive_without_calls;
    const tern_grpc_resolver *resolver;
    void *resolver_state;
    tern_waitgroup conns;           /* connections not yet freed */
    bool closing;
    tern_grpc_client_interceptor *icepts;   /* copied from the options */
    size_t nicepts;
    struct tern__grpc_svc_config *svc;      /* NULL: no service config */
};

/* client.c: a connection */
int tern__grpc_conn_open(subch *sc, tern_ctx *ctx, gconn **out);
bool tern__grpc_conn_usable(gconn *gc);
/* Calls open on it now (p2c's load). */
int tern__grpc_conn_load(gconn *gc);
void tern__grpc_conn_ref(gconn *gc);
void tern__grpc_conn_unref(gconn *gc);
/* Shut it down: streams fail, the socket closes. */
void tern__grpc_conn_kill(gconn *gc, int err);

/* channel.c: a ready connection for a new call (a ref), or -errno (-EAGAIN
 * when nothing is ready and wait_for_ready is off, with *why the last
 * connection error). */
int tern__grpc_channel_pick(tern_grpc_channel *ch, bool wait_for_ready, tern_ctx *ctx, gconn **out,
                            int *why);
/* A connection died: its subchannel goes back to IDLE. */
void tern__grpc_channel_conn_lost(subch *sc, gconn *gc);

/* channel.c, under ch->mu: whether sc may be dialled now (IDLE, or its
 * backoff over); dial it (unlocking meanwhile): 0 (READY, *out a ref),
 * ctx's error (sc back to IDLE) or the dial's (sc in FAILURE); and let go
 * of a READY connection that takes no new calls (GOAWAY, dead). */
bool tern__grpc_subch_may_try(const subch *sc, int64_t now);
int tern__grpc_subch_connect(tern_grpc_channel *ch, subch *sc, tern_ctx *ctx, gconn **out);
void tern__grpc_subch_drop_unusable(subch *sc);

/* channel_picker.c: as tern__grpc_channel_pick, through the channel's
 * picker: *pk is the outstanding pick on success (done is the caller's
 * to tell); none is outstanding on failure. */
int tern__grpc_channel_pick_by(tern_grpc_channel *ch, const void *key, size_t key_len, bool wait_for_ready,
                               tern_ctx *ctx, gconn **out, tern_grpc_pick *pk, int *why);

/* ---- client calls: interceptors (intercept.c), attempts (client.c),
 * the service config, retries and hedging (svcconfig.c, retry.c) ---- */

/* What one attempt learned beyond its status. */
typedef struct tern__grpc_attempt_info {
    int64_t pushback_ms;            /* grpc-retry-pushback-ms: -1 none, -2 invalid ("do not retry") */
    bool committed;                 /* response headers (not Trailers-Only) or a message arrived */
} tern__grpc_attempt_info;

/* client.c: a stream without interceptors (prev_attempts > 0 sends
 * grpc-previous-rpc-attempts), and one unary attempt (status filled as
 * tern_grpc_unary's; ai may be NULL). */
int tern__grpc_stream_open_raw(tern_grpc_channel *ch, const tern_grpc_method_desc *m,
                               const tern_grpc_call_options *opts, int prev_attempts, tern_grpc_stream **out,
                               tern_ctx *ctx);
int tern__grpc_unary_attempt(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                             ProtobufCMessage **resp, const tern_grpc_call_options *opts, int prev_attempts,
                             tern_grpc_status *status, tern__grpc_attempt_info *ai, tern_ctx *ctx);
/* The stream owns cc from now on: told of its end, freed with it. */
void tern__grpc_stream_attach(tern_grpc_stream *s, tern_grpc_client_call *cc);

/* intercept.c: the call has ended (first call wins; runs the done
 * callbacks), and its memory. */
void tern__grpc_cc_finish(tern_grpc_client_call *cc, tern_grpc_code code, const char *message);
void tern__grpc_cc_free(tern_grpc_client_call *cc);
/* A stream's retry made another attempt (NULL cc: no-op). */
void tern__grpc_cc_set_attempts(tern_grpc_client_call *cc, int n);

/* svcconfig.c: one methodConfig, resolved for a method. */
typedef struct tern__grpc_method_config {
    int64_t timeout;                /* ns; 0: none */
    int retry_max;                  /* maxAttempts of retryPolicy (2..5); 0: no retries */
    int64_t initial_backoff, max_backoff;
    double multiplier;
    uint32_t retryable;             /* bit per code */
    int hedge_max;                  /* maxAttempts of hedgingPolicy (2..5); 0: no hedging */
    int64_t hedge_delay;
    uint32_t non_fatal;             /* bit per code */
} tern__grpc_method_config;

typedef struct tern__grpc_svc_config tern__grpc_svc_config;
/* Parse gRPC's JSON service config.  0, -EINVAL with err, -ENOMEM. */
int tern__grpc_svc_config_parse(const char *json, tern__grpc_svc_config **out, char *err, size_t errlen);
void tern__grpc_svc_config_free(tern__grpc_svc_config *c);
/* The config for "/pkg.Svc/Method" (exact method, else the service's,
 * else the default with an empty name), or NULL. */
const tern__grpc_method_config *tern__grpc_svc_config_find(const tern__grpc_svc_config *c, const char *path);
/* retryThrottling (A6): whether a retry or hedge may go out (tokens above
 * half), and an attempt's outcome (a failure with a retryable/non-fatal
 * code takes a token, success gives tokenRatio back).  Always true / no-op
 * without retryThrottling. */
bool tern__grpc_throttle_allow(tern__grpc_svc_config *c);
void tern__grpc_throttle_record(tern__grpc_svc_config *c, bool failure);

/* client.c: make stream s retryable (o copied): under mc's retryPolicy,
 * or with mc NULL only transparently (gRFC A6: once, at once, when the
 * server refused it unprocessed); until committed, its request messages
 * replayed.  0, -ENOMEM. */
int tern__grpc_stream_enable_retry(tern_grpc_stream *s, tern_grpc_channel *ch, const tern__grpc_method_config *mc,
                                   const tern_grpc_call_options *o);

/* retry.c: a unary call under its method config (timeout, retries or
 * hedging); the attempts are counted in *attempts. */
int tern__grpc_unary_policy(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, const tern_grpc_call_options *opts,
                            tern_grpc_status *status, int *attempts, tern_ctx *ctx);

#endif
