/*
 * internal.h - what the NATS client's files share.
 *
 * parse.c    the server-to-client operations (parse.h; fuzzed)
 * map.c      an open-addressing map from uint64 ids to pointers (sids,
 *            request tokens)
 * conn.c     one connection's handshake: dial, INFO, CONNECT, PING/PONG
 * client.c   the client: output buffer and writer, reader, pinger,
 *            reconnection, publish, flush, drain, stats
 * sub.c      subscriptions: queues, slow consumers, delivery to a
 *            channel, a callback or tern_nats_sub_next
 * request.c  request-reply over the shared inbox; messages, headers, NUID
 * js.c       JetStream's JSON API, publish with PubAck, pull fetch, acks
 *
 * Locking: nc->mu guards the client's state, the output buffer, the
 * subscription map and the request map; sub->mu guards a subscription's
 * queue.  Order: nc->mu before sub->mu.  User code (callbacks, on_event)
 * never runs under either.
 */
#ifndef TERN_EVENTS_NATS_INTERNAL_H
#define TERN_EVENTS_NATS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "base/growbuf.h"
#include "events/nats/parse.h"
#include "tern/nats.h"
#include "tern/net.h"
#include "tern/runtime.h"
#include "tern/sync.h"

/* ---- map.c ---- */
typedef struct tern__nats_map {
    uint64_t *keys;             /* 0: empty slot (ids start at 1) */
    void **vals;
    size_t cap, len;            /* cap a power of two */
} tern__nats_map;
int tern__nats_map_put(tern__nats_map *m, uint64_t key, void *val);
void *tern__nats_map_get(const tern__nats_map *m, uint64_t key);
void *tern__nats_map_del(tern__nats_map *m, uint64_t key);
void tern__nats_map_free(tern__nats_map *m);
/* Visit every value (the map must not change meanwhile). */
#define TERN__NATS_MAP_EACH(m, i) \
    for (size_t i = 0; i < (m)->cap; i++) if ((m)->keys[i])

/* ---- messages (request.c) ---- */
typedef struct tern__nats_msg {
    tern_nats_msg pub;          /* first: a tern_nats_msg * is one of these */
    struct tern__nats_msg *next;
    size_t size;                /* payload + headers, for pending_bytes */
    bool small;                 /* a block of the small-message cache */
} tern__nats_msg;
/* Free m (NULL: nothing), back to the cache if it came from it. */
void tern__nats_msg_release(tern__nats_msg *m);
/* A message holding copies of op's parts, or NULL (no memory). */
tern__nats_msg *tern__nats_msg_from_op(const tern__nats_op *op);

/* ---- conn.c ---- */
typedef struct tern__nats_info {
    size_t max_payload;
    bool headers;
    char **connect_urls;        /* "host:port", n of them, malloc'd */
    int n_urls;
} tern__nats_info;
void tern__nats_info_clear(tern__nats_info *in);
/* Parse an INFO's JSON: 0 or -EPROTO. */
int tern__nats_info_parse(const char *json, size_t len, tern__nats_info *out);
/* Dial addr, read INFO, send CONNECT and PING, wait for PONG, all bounded
 * by ctx.  0 with *c the connection, *info its INFO, and rbuf holding any
 * bytes read past the PONG; or -errno (-EACCES: credentials refused). */
int tern__nats_handshake(const tern_nats_options *o, const char *addr, tern_conn **c,
                         tern__nats_info *info, tern__growbuf *rbuf, tern_ctx *ctx);

/* ---- client.c ---- */
enum nats_state { NATS_CONNECTED, NATS_RECONNECTING, NATS_CLOSED };

typedef struct tern__nats_pong {
    bool done, abandoned;
    int err;
    tern_cond cond;
} tern__nats_pong;

struct tern_nats {
    tern_nats_options o;        /* strings copied */
    tern_ctx *life;             /* cancelled by tern_nats_free */
    tern_waitgroup wg;          /* the manager coroutine */

    tern_mutex mu;
    enum nats_state state;
    bool drained;               /* tern_nats_drain ran: no more publishes */
    bool broken;                /* the current connection failed */
    int broken_err;
    tern_conn *c;               /* while connected */
    tern_ctx *cctx;             /* the connection's: cancelled when it breaks */
    tern_cond state_cond;       /* state changed */
    tern_cond wcond;            /* the writer waits for output here */
    tern_cond space_cond;       /* publishers wait for output room here */
    tern__growbuf out;          /* pending output */
    tern__growbuf wbuf;         /* the writer's batch */
    uint64_t out_takes;         /* batches the writers took from `out`: a
                                 * request appended at out_takes == k went
                                 * to the socket once out_takes > k */
    /* PINGs: a ring of waiters (NULL: a keepalive ping), oldest first; the
     * first `inflight` were handed to the socket, the next `queued` are
     * in `out`. */
    tern__nats_pong **pq;
    size_t pq_head, pq_len, pq_cap;
    size_t pings_inflight, pings_queued;
    int pings_out;              /* keepalive PINGs unanswered */

    char **servers;             /* "host:port" */
    int nservers, cur;
    char url[256];              /* connected to */
    size_t max_payload;

    tern__nats_map subs;        /* sid -> tern_nats_sub */
    uint64_t next_sid;
    /* request-reply */
    char inbox[40];             /* "_INBOX.<nuid>." */
    tern_nats_sub *resp_sub;
    tern__nats_map reqs;        /* token -> tern__nats_req */
    uint64_t next_token;

    int js_err;
    char js_err_desc[160];

    tern_waitgroup rwg;         /* reader and pinger of the connection */
    struct {
        _Atomic uint64_t in_msgs, in_bytes, out_msgs, out_bytes, writes, reconnects,
            disconnects, slow, pings, pongs, errs;
        _Atomic size_t out_pending;
        _Atomic bool connected;
    } st;
};

/* Append a protocol line (or more) to the output: under nc->mu, connected
 * or not.  0 or -ENOMEM. */
int tern__nats_out(tern_nats *nc, const void *p, size_t n);
/* Append PUB/HPUB for a message: under nc->mu, limits checked by the
 * caller (tern__nats_pub_check). */
int tern__nats_out_pub(tern_nats *nc, const char *subject, const char *reply,
                       const tern_nats_header *hdrs, int nhdr, const void *data, size_t len);
/* Under nc->mu: may a publish of about n bytes go now?  0; -ENOTCONN;
 * -EMSGSIZE; -EAGAIN; waits (ctx, releasing mu) while the buffer is over
 * max_out_bytes. */
int tern__nats_pub_check(tern_nats *nc, size_t n, tern_ctx *ctx);
/* Tell the user (o.on_event), outside any lock. */
void tern__nats_event(tern_nats *nc, tern_nats_sub *sub, int err);
/* A subject or queue name: non-empty, no spaces or control characters. */
bool tern__nats_valid_subject(const char *s);

/* ---- sub.c ---- */
typedef struct tern__nats_reqmux tern__nats_reqmux;
struct tern_nats_sub {
    tern_nats *nc;
    uint64_t sid;
    char *subject, *queue;
    tern_chan *chan;
    void (*cb)(tern_nats_msg *m, void *arg);
    void *cb_arg;
    int max_pending;
    size_t max_bytes;
    bool internal;              /* the request inbox: handled in the reader */
    _Atomic int refs;           /* the owner's and the reader's while it reports */
    /* under nc->mu */
    bool active;                /* in nc->subs */
    uint64_t received, max;     /* max 0: none */
    /* under mu */
    tern_mutex mu;
    tern_cond cond;             /* queue changed, or a delivery finished */
    tern__nats_msg *qh, *qt;
    _Atomic int qlen;
    size_t qbytes;
    bool qclosed;               /* no more messages will come */
    bool stop;                  /* tern_nats_sub_free: drop and leave */
    _Atomic bool halt;          /* stop, seen by a delivery batch under way */
    bool busy;                  /* a delivery (callback, channel send) under way */
    bool slow;                  /* in a slow-consumer episode */
    _Atomic uint64_t dropped;
    tern_ctx *ctx;              /* the delivery's: cancelled at free */
    tern_waitgroup wg;          /* the delivery coroutine */
};
/* A subscription without delivery (internal uses): under nc->mu.  Appends
 * SUB when connected. */
int tern__nats_sub_new_locked(tern_nats *nc, const char *subject, const char *queue,
                              tern_nats_sub **out);
/* Append the SUB (and UNSUB for what is left of max) of every active
 * subscription: under nc->mu, at reconnection. */
int tern__nats_resubscribe(tern_nats *nc);
/* Hand m to sub (under nc->mu): queue it, or drop it when the queue is
 * full.  true: a slow-consumer episode started (the caller reports it, with
 * a reference taken). */
bool tern__nats_sub_deliver(tern_nats_sub *sub, tern__nats_msg *m);
/* Take sub out of nc->subs and close its queue (under nc->mu). */
void tern__nats_sub_remove(tern_nats_sub *sub);
void tern__nats_sub_unref(tern_nats_sub *sub);
/* Wait until sub's queue is empty and no delivery runs. */
int tern__nats_sub_wait_idle(tern_nats_sub *sub, tern_ctx *ctx);

/* ---- request.c ---- */
/* A message for the inbox (under nc->mu): hand it to its request. */
void tern__nats_resp_deliver(tern_nats *nc, tern__nats_msg *m);
/* Fail every waiting request (under nc->mu): the client closes. */
void tern__nats_reqs_fail(tern_nats *nc, int err);
/* Under nc->mu, when a connection broke: fail with err the requests whose
 * bytes the writer took (their answer, if any, went to the dead
 * connection); those still in nc->out go out on the next one. */
void tern__nats_reqs_fail_sent(tern_nats *nc, int err);

#endif
