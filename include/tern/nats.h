/*
 * tern/nats.h - a NATS client for coroutines, with JetStream.
 *
 * One tern_nats is one connection to a NATS server (of a list), shared by
 * any number of coroutines.  Publishes append to the connection's output
 * buffer and return; a writer coroutine sends whatever has gathered in one
 * write, so publishes from many coroutines are coalesced (as nats.go's
 * buffered writer, without a flush timer).  A reader coroutine parses what
 * the server sends (a hand-written incremental parser) and hands each
 * message to its subscription's queue.  A subscription delivers from that
 * queue to a tern_chan, to a callback run in a coroutine of its own, or to
 * tern_nats_sub_next.  The client pings the server every ping_interval
 * and takes the connection for dead when max_pings_out pings are
 * unanswered.
 *
 * Reconnection: when the connection breaks, the client reconnects in the
 * background to the servers of opts.servers and those the server
 * advertised (INFO connect_urls), in turn, with a backoff that doubles
 * from reconnect_wait_min to reconnect_wait_max plus a random jitter,
 * resubscribes every subscription (with what is left of its max), then
 * sends what was published meanwhile.  Publishes made while disconnected
 * are kept up to reconnect_buf_size bytes; beyond it they fail with
 * -EAGAIN.  A flush whose PING went out on the connection that broke fails
 * with -ECONNRESET; a request keeps waiting, bounded by its ctx (the
 * inbox is resubscribed and the answer may still come).  After max_reconnects failed attempts in a row (0:
 * never give up) the client is closed: calls fail with -ENOTCONN.
 *
 * Slow consumers: a subscription's queue holds at most pending_msgs
 * messages and pending_bytes bytes; a message that does not fit is
 * dropped and counted (tern_nats_sub_dropped, stats.slow_consumer_drops),
 * and opts.on_error is told once per episode with -ENOBUFS.  The client
 * never waits for a slow subscriber: the others keep receiving.
 *
 * Errors: -ETIMEDOUT / -ECANCELED (ctx), -ENOTCONN (closed, or gave up
 * reconnecting), -ECONNRESET (the connection broke under the call),
 * -EAGAIN (the reconnect buffer is full), -ENXIO (a request found no
 * responders: the server said 503), -EREMOTEIO (JetStream answered an
 * API error: its code is kept, tern_nats_js_last_error), -EACCES (the
 * server refused the credentials), -EPROTO (the server broke the
 * protocol), -EMSGSIZE (a payload above the server's max_payload),
 * -EINVAL (a subject with spaces, an empty one, ...), -ENOMEM.
 *
 * Ownership: tern_nats_new gives the caller the client
 * (tern_nats_free), tern_nats_subscribe the subscription
 * (tern_nats_sub_free, before the client).  A tern_nats_msg received
 * through a channel, tern_nats_sub_next, tern_nats_request or
 * tern_nats_js_fetch is the caller's to tern_nats_msg_free; one handed to
 * a callback is borrowed for the call.  Strings in options are copied.
 *
 * Threads: every call from a coroutine, on any P; tern_nats_stats and
 * tern_nats_sub_dropped from any thread.
 */
#ifndef TERN_NATS_H
#define TERN_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/chan.h"
#include "tern/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_nats tern_nats;
typedef struct tern_nats_sub tern_nats_sub;

/** A received message: one allocation, every pointer into it. */
typedef struct tern_nats_msg {
    const char *subject;        /* NUL-terminated */
    const char *reply;          /* NULL: none */
    const char *hdr;            /* the raw header block ("NATS/1.0 ...\r\n"
                                   "Key: value\r\n...\r\n"); NULL: none */
    size_t hdr_len;
    const void *data;           /* the payload (NUL-terminated too) */
    size_t len;
} tern_nats_msg;

/** One header to send. */
typedef struct tern_nats_header {
    const char *key;
    const char *value;
} tern_nats_header;

/** Client options; the zero value (or NULL) means the defaults. */
typedef struct tern_nats_options {
    const char *servers;        /* "nats://h1:4222,h2:4222"; NULL: "127.0.0.1:4222" */
    const char *name;           /* CONNECT name; NULL: "tern" */
    const char *user, *pass;    /* CONNECT user/pass; NULL: none */
    const char *token;          /* CONNECT auth_token; NULL: none */
    bool no_randomize;          /* try servers in the order given */
    int64_t connect_timeout;    /* ns per attempt (dial + INFO/CONNECT/PONG); 0: 2 s */
    int64_t ping_interval;      /* ns between client PINGs; 0: 2 min */
    int max_pings_out;          /* unanswered PINGs that mean dead; 0: 2 */
    int64_t reconnect_wait_min; /* ns; 0: 10 ms */
    int64_t reconnect_wait_max; /* ns; 0: 2 s */
    int64_t reconnect_jitter;   /* ns of random extra delay; 0: 100 ms; < 0: none */
    int max_reconnects;         /* failed attempts in a row before closing; 0: never close */
    size_t reconnect_buf_size;  /* bytes of publishes kept while disconnected; 0: 8 MiB */
    size_t max_out_bytes;       /* output buffer bound while connected: a
                                   publish beyond it waits (ctx); 0: 256 KiB,
                                   which keeps both buffers in cache */
    /* Asynchronous errors (slow consumer: -ENOBUFS with its sub; the
     * connection lost: -ECONNRESET; reconnected: 0; a -ERR from the server:
     * -EPROTO), run in the reader or manager coroutine: keep it short,
     * never block.  sub is borrowed for the call.  NULL: none. */
    void (*on_event)(tern_nats *nc, tern_nats_sub *sub, int err, void *arg);
    void *on_event_arg;
} tern_nats_options;

/**
 * Connect to the first reachable server of opts->servers (INFO, CONNECT
 * with verbose off, pedantic off, headers and no_responders on, then a
 * PING answered), bounded by ctx and connect_timeout per server.  0 with
 * *out the caller's (tern_nats_free), or -errno with *out NULL: the last
 * server's error (-ECONNREFUSED, -EACCES, -ETIMEDOUT, ...), -EINVAL (a
 * malformed server list).  From a coroutine.
 */
int tern_nats_new(const tern_nats_options *opts, tern_nats **out, tern_ctx *ctx);

/**
 * Close at once: what is not yet written is dropped, subscriptions stop
 * delivering, calls in flight fail with -ENOTCONN; wait for the client's
 * coroutines and release it.  Every subscription must be freed first.
 * NULL is a no-op.  From a coroutine.
 */
void tern_nats_free(tern_nats *nc);

/**
 * Drain: unsubscribe every subscription, wait (bounded by ctx) until the
 * server has seen that and the messages already received are delivered
 * (queues empty, callbacks returned), then flush what was published.
 * Later publishes and subscribes fail with -ENOTCONN.  0, -ETIMEDOUT /
 * -ECANCELED, -ECONNRESET.  tern_nats_free after it.
 */
int tern_nats_drain(tern_nats *nc, tern_ctx *ctx);

/**
 * Publish len bytes to subject (no reply subject, no headers).  Returns
 * once the bytes are in the output buffer: 0; -EAGAIN (disconnected and
 * the reconnect buffer full); -EMSGSIZE; -EINVAL; -ENOTCONN; -ETIMEDOUT /
 * -ECANCELED when the output buffer stayed above max_out_bytes until ctx
 * ended.
 */
int tern_nats_publish(tern_nats *nc, const char *subject, const void *data, size_t len,
                      tern_ctx *ctx);

/**
 * Publish with a reply subject (NULL: none) and headers (nhdr of them;
 * HPUB when nhdr > 0).  As tern_nats_publish.
 */
int tern_nats_publish_msg(tern_nats *nc, const char *subject, const char *reply,
                          const tern_nats_header *hdrs, int nhdr, const void *data, size_t len,
                          tern_ctx *ctx);

/**
 * Wait until the server has processed everything sent before this call (a
 * PING answered by its PONG).  While disconnected, waits for the
 * reconnection.  0, -ETIMEDOUT / -ECANCELED, -ECONNRESET, -ENOTCONN.
 */
int tern_nats_flush(tern_nats *nc, tern_ctx *ctx);

/** Subscription options; the zero value (or NULL) means the defaults. */
typedef struct tern_nats_sub_options {
    const char *queue;          /* queue group; NULL: none */
    /* Where messages go, at most one of: */
    tern_chan *chan;            /* a channel of tern_nats_msg * (elem_size
                                   sizeof(tern_nats_msg *)); the receiver
                                   owns each message.  Never closed by the
                                   client. */
    void (*cb)(tern_nats_msg *m, void *arg);  /* run in the sub's own
                                   coroutine, one message at a time; m is
                                   freed when it returns */
    void *cb_arg;
    /* neither: tern_nats_sub_next */
    int pending_msgs;           /* queue bound in messages; 0: 65536 */
    size_t pending_bytes;       /* queue bound in bytes; 0: 64 MiB */
} tern_nats_sub_options;

/**
 * Subscribe to subject (wildcards * and >), in opts->queue's group if
 * set.  Messages start arriving once the server has the SUB (flush to be
 * sure).  0 with *out the caller's (tern_nats_sub_free), -EINVAL,
 * -ENOTCONN (closed or draining), -ENOMEM.
 */
int tern_nats_subscribe(tern_nats *nc, const char *subject, const tern_nats_sub_options *opts,
                        tern_nats_sub **out);

/**
 * Unsubscribe: max 0 at once, max > 0 after max messages in all (those
 * already received count).  Messages already queued are still delivered.
 * 0, -ENOTCONN (the client closed).
 */
int tern_nats_sub_unsubscribe(tern_nats_sub *sub, int max);

/**
 * The next message of a subscription made without chan or cb: 0 with *out
 * the caller's (tern_nats_msg_free); -EPIPE once the subscription is
 * unsubscribed (or reached its max, or the client closed) and its queue
 * is empty; -ETIMEDOUT / -ECANCELED; -EINVAL for a chan or cb
 * subscription.
 */
int tern_nats_sub_next(tern_nats_sub *sub, tern_nats_msg **out, tern_ctx *ctx);

/** Messages dropped because the subscription's queue was full.  Any thread. */
uint64_t tern_nats_sub_dropped(const tern_nats_sub *sub);

/** Messages queued and not yet delivered.  Any thread (a racy snapshot). */
int tern_nats_sub_pending(const tern_nats_sub *sub);

/**
 * Unsubscribe if still subscribed, stop the delivery coroutine (a callback
 * running is waited for), drop queued messages and release.  NULL is a
 * no-op.  From a coroutine, never from the sub's own callback.
 */
void tern_nats_sub_free(tern_nats_sub *sub);

/**
 * Request-reply: publish to subject with a reply subject on the client's
 * shared inbox (_INBOX.<nuid>.*, one subscription for all requests) and
 * wait for the first answer, bounded by ctx.  0 with *out the caller's;
 * -ENXIO when no one subscribes to subject (no responders);
 * -ECONNRESET when the connection broke after the request went out (the
 * server may or may not have seen it; one made while disconnected waits in
 * the reconnect buffer instead); -ETIMEDOUT / -ECANCELED (ctx: a server
 * that stays silent ends here); -ENOTCONN (the client closed); as
 * tern_nats_publish.
 */
int tern_nats_request(tern_nats *nc, const char *subject, const void *data, size_t len,
                      tern_nats_msg **out, tern_ctx *ctx);

/** tern_nats_request with headers. */
int tern_nats_request_msg(tern_nats *nc, const char *subject, const tern_nats_header *hdrs,
                          int nhdr, const void *data, size_t len, tern_nats_msg **out,
                          tern_ctx *ctx);

/** Release a message.  NULL is a no-op. */
void tern_nats_msg_free(tern_nats_msg *m);

/**
 * The first value of header key (case-insensitive) in m: a pointer into
 * m (not NUL-terminated) with *len its length, or NULL.
 */
const char *tern_nats_msg_header(const tern_nats_msg *m, const char *key, size_t *len);

/** The status code of m's header line ("NATS/1.0 503" gives 503), 0 without one. */
int tern_nats_msg_status(const tern_nats_msg *m);

/** Write a unique 22-character id (NATS's NUID alphabet) and a NUL to out[23]. */
void tern_nats_nuid(char out[23]);

/** Counters (monotonic since tern_nats_new, except connected and the
 *  pending gauges). */
struct tern_nats_stats {
    uint64_t in_msgs, in_bytes;     /* MSG/HMSG received (payload bytes) */
    uint64_t out_msgs, out_bytes;   /* PUB/HPUB buffered (payload bytes) */
    uint64_t writes;                /* writes to the socket (out_msgs / writes: coalescing) */
    uint64_t reconnects;            /* connections made after the first */
    uint64_t disconnects;
    uint64_t slow_consumer_drops;   /* messages dropped at full sub queues */
    uint64_t pings_sent, pongs_received;
    uint64_t server_errors;         /* -ERR received */
    size_t out_pending;             /* bytes in the output buffer now */
    bool connected;
};

/** Fill *out with nc's counters: 0.  Never parks; any thread. */
int tern_nats_stats(const tern_nats *nc, struct tern_nats_stats *out);

/** The URL of the server connected to now ("127.0.0.1:4222") into buf
 *  (NUL-terminated, truncated to size): 0, or -ENOTCONN. */
int tern_nats_connected_url(tern_nats *nc, char *buf, size_t size);

/* ---- JetStream ------------------------------------------------------------ */

/** Stream configuration: the fields a service sets; zero: the server's default. */
typedef struct tern_nats_stream_config {
    const char *name;
    const char *const *subjects;    /* nsubjects of them */
    int nsubjects;
    bool memory;                    /* memory storage; false: file */
    int64_t max_age;                /* ns */
    int64_t max_msgs;
    int64_t max_bytes;
    int64_t duplicate_window;       /* ns within which a Nats-Msg-Id is
                                       deduplicated; 0: 2 min */
    int replicas;
} tern_nats_stream_config;

/** What stream info reports. */
typedef struct tern_nats_stream_info {
    uint64_t messages, bytes;
    uint64_t first_seq, last_seq;
    int consumers;
} tern_nats_stream_info;

/** Create the stream ($JS.API.STREAM.CREATE): 0, -EREMOTEIO (already
 *  exists with another config, ...: tern_nats_js_last_error), -ENXIO (no
 *  JetStream), as tern_nats_request. */
int tern_nats_js_stream_create(tern_nats *nc, const tern_nats_stream_config *cfg,
                               tern_ctx *ctx);
/** Update it ($JS.API.STREAM.UPDATE): as tern_nats_js_stream_create. */
int tern_nats_js_stream_update(tern_nats *nc, const tern_nats_stream_config *cfg,
                               tern_ctx *ctx);
/** Its state into *out ($JS.API.STREAM.INFO): 0, -ENOENT (no such stream), as above. */
int tern_nats_js_stream_info(tern_nats *nc, const char *stream, tern_nats_stream_info *out,
                             tern_ctx *ctx);
/** Delete it ($JS.API.STREAM.DELETE): 0, -ENOENT, as above. */
int tern_nats_js_stream_delete(tern_nats *nc, const char *stream, tern_ctx *ctx);

/** A durable pull consumer's configuration; zero: the server's default
 *  (explicit acks always). */
typedef struct tern_nats_consumer_config {
    const char *durable;
    const char *filter_subject;     /* NULL: the whole stream */
    int64_t ack_wait;               /* ns; 0: 30 s */
    int max_deliver;                /* 0: unlimited */
    int max_ack_pending;            /* 0: 1000 */
} tern_nats_consumer_config;

/** Create (or find identical) durable pull consumer cfg->durable on stream
 *  ($JS.API.CONSUMER.DURABLE.CREATE): 0, -EREMOTEIO, -ENOENT (no such
 *  stream), as tern_nats_request. */
int tern_nats_js_consumer_create(tern_nats *nc, const char *stream,
                                 const tern_nats_consumer_config *cfg, tern_ctx *ctx);
/** Delete consumer durable of stream: 0, -ENOENT, as above. */
int tern_nats_js_consumer_delete(tern_nats *nc, const char *stream, const char *durable,
                                 tern_ctx *ctx);

/** A PubAck. */
typedef struct tern_nats_pub_ack {
    char stream[64];
    uint64_t seq;
    bool duplicate;                 /* the server had this Nats-Msg-Id already */
} tern_nats_pub_ack;

/**
 * Publish to a stream's subject with header Nats-Msg-Id: msg_id (NULL:
 * none) and wait for the stream's PubAck, bounded by ctx.  Retrying with
 * the same msg_id after a lost ack stores the message once (the ack says
 * duplicate).  0 with *ack filled (may be NULL); -ENXIO (no stream takes
 * subject); -EREMOTEIO; as tern_nats_request.
 */
int tern_nats_js_publish(tern_nats *nc, const char *subject, const void *data, size_t len,
                         const char *msg_id, tern_nats_pub_ack *ack, tern_ctx *ctx);

/**
 * Fetch up to batch messages (1..256) from pull consumer durable of
 * stream: waits up to expires ns (0: 5 s, and never past ctx) for the
 * first, returns when batch are in or the server's request expired.
 * 0 with msgs[0..*n) the caller's (*n may be 0: nothing in time);
 * -ETIMEDOUT / -ECANCELED (ctx: messages received are still handed out,
 * *n of them); -EREMOTEIO (a 409 status before any message: the consumer
 * was deleted, too many pulls waiting); as tern_nats_publish.  A consumer
 * that does not exist looks like an empty fetch (nats-server 2.9 does not
 * answer the pull): check with tern_nats_js_consumer_create first.
 */
int tern_nats_js_fetch(tern_nats *nc, const char *stream, const char *durable, int batch,
                       int64_t expires, tern_nats_msg **msgs, int *n, tern_ctx *ctx);

/** Acknowledge a JetStream message (+ACK to its reply subject). */
int tern_nats_js_ack(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx);
/** Negative ack: redeliver after delay ns (0: at once). */
int tern_nats_js_nak(tern_nats *nc, const tern_nats_msg *m, int64_t delay, tern_ctx *ctx);
/** Terminate: never redeliver. */
int tern_nats_js_term(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx);
/** Work in progress (+WPI): restart the message's AckWait. */
int tern_nats_js_in_progress(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx);

/** Where a JetStream message stands, from its reply subject $JS.ACK.... */
typedef struct tern_nats_js_meta {
    char stream[64], consumer[64];
    uint64_t num_delivered;         /* 1 on first delivery */
    uint64_t stream_seq, consumer_seq;
    int64_t timestamp;              /* ns since the epoch */
    uint64_t num_pending;
} tern_nats_js_meta;

/** Parse m's reply subject: 0, or -EINVAL (not a JetStream message). */
int tern_nats_js_metadata(const tern_nats_msg *m, tern_nats_js_meta *out);

/** The JetStream API error code of the client's last -EREMOTEIO
 *  (10071, ...) and its description into buf (may be NULL): the code, or
 *  0.  Kept per client, last one wins. */
int tern_nats_js_last_error(tern_nats *nc, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
