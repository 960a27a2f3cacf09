/*
 * tern/events.h - events with at-least-once delivery: a bus over a
 * pluggable transport, a transactional outbox, idempotent consumers.
 *
 * Bus: tern_events_publish sends an event (an id, a topic, a type name and
 * payload bytes) through a transport; tern_events_subscribe runs consumer
 * coroutines that fetch the events of a topic for a consumer group and
 * hand each to a handler.  Every group gets every event (on the in-process
 * bus those published after the group first subscribed; on Redis all the
 * stream holds); the members of a group share them.  The handler's 0
 * acknowledges the event; anything else gives it back for redelivery; a
 * consumer that takes longer than ack_timeout_ns (or dies) has it
 * redelivered to the group.  An event delivered max_deliveries times
 * without success goes to the dead-letter topic (acknowledged on its own).
 * At least once means a handler may see an event twice: make it idempotent
 * (tern_events_idempotent_* below).
 *
 * Transports (tern_events_transport: a table of functions and their
 * datum, so JetStream or anything else can plug in): the in-process bus
 * (tern_events_inproc_transport, for everything in one process, same
 * semantics), NATS JetStream (tern_events_jetstream_transport) and Redis
 * Streams (tern_events_redis_transport: XADD,
 * consumer groups, XREADGROUP, XACK, XAUTOCLAIM for redelivery).
 *
 * Outbox: tern_outbox_*_add writes the event into the `outbox` table in
 * the caller's transaction, so the event exists if and only if the state
 * change committed.  A relay coroutine (tern_outbox_relay_start) publishes
 * unsent rows in order and marks them sent after they are published; a
 * relay stopped or killed mid-batch leaves those rows unsent, so they are
 * published again (never lost; maybe twice, which the idempotent consumer
 * absorbs).  SQLite (tern/sqlite.h) and, where libpq is, PostgreSQL.
 *
 * Idempotent consumer: tern_events_idempotent_sqlite (and _pg) records the
 * event id in the consumer's database in the same transaction as the
 * handler's effect; a redelivered event finds its id and is skipped.
 *
 * Errors: 0 or -errno; blocking calls take a tern_ctx * last (NULL:
 * unbounded).  Ownership: a bus owns its transport; events passed in are
 * copied; an event handed to a handler lives until the handler returns.
 * Threads: call from coroutines.
 */
#ifndef TERN_EVENTS_H
#define TERN_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/metrics.h"
#include "tern/nats.h"
#include "tern/pg.h"
#include "tern/redis.h"
#include "tern/sqlite.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An event.  Strings are NUL-terminated; data is len bytes. */
typedef struct tern_event {
    const char *id;                 /**< unique; NULL when publishing or adding: one is made (32 hex digits) */
    const char *topic;              /**< where it goes ("orders") */
    const char *type;               /**< what it is ("order.created"); NULL: "" */
    const void *data;               /**< the payload */
    size_t len;
} tern_event;

/** Event ids made by tern fit in this many bytes with the NUL. */
#define TERN_EVENTS_ID_MAX 64

/* ---- transports ------------------------------------------------------------ */

/**
 * What a transport does.  self is tern_events_transport.self; sub what its
 * subscribe made.  fetch parks until an event for sub is there or ctx ends
 * (then ctx's error), filling *ev (valid until ack, nak or drop of
 * *token), *deliveries (1 the first time) and *token.  ack acknowledges
 * (no redelivery), nak gives the event back for prompt redelivery, drop
 * forgets the token without either (the event is redelivered after the
 * ack timeout).  All but fetch, publish and ack must not fail.
 */
typedef struct tern_events_transport_ops {
    const char *name;
    int (*publish)(void *self, const tern_event *ev, tern_ctx *ctx);
    int (*subscribe)(void *self, const char *topic, const char *group, int64_t ack_timeout_ns, void **sub,
                     tern_ctx *ctx);
    int (*fetch)(void *sub, tern_event *ev, int *deliveries, void **token, tern_ctx *ctx);
    int (*ack)(void *sub, void *token, tern_ctx *ctx);
    void (*nak)(void *sub, void *token);
    void (*drop)(void *sub, void *token);
    void (*unsubscribe)(void *sub);
    void (*free)(void *self);
} tern_events_transport_ops;

/** A transport: its functions and their datum. */
typedef struct tern_events_transport {
    const tern_events_transport_ops *ops;
    void *self;
} tern_events_transport;

/** The in-process transport: events live in memory, each group's in a
 *  queue; an unacknowledged event is redelivered after the ack timeout. */
int tern_events_inproc_transport(tern_events_transport *out);

/** Redis Streams transport options; zero means the default. */
typedef struct tern_events_redis_options {
    const char *prefix;             /**< stream key = prefix + topic; NULL: "events:" */
    int64_t block_ns;               /**< one XREADGROUP's BLOCK; 0: 1 s */
    int64_t maxlen;                 /**< XADD MAXLEN ~ (0: unbounded) */
} tern_events_redis_options;

/** The Redis Streams transport on cl (borrowed: it must outlive the bus).
 *  Each topic is a stream (prefix + topic), each group a consumer group
 *  made at subscribe (from the stream's start when new); each consumer
 *  coroutine is a consumer of its own random name.  A nak makes the entry
 *  overdue at once (XCLAIM IDLE).  Built where hiredis is. */
int tern_events_redis_transport(tern_redis_client *cl, const tern_events_redis_options *o,
                                tern_events_transport *out);

/** JetStream transport options; zero means the default. */
typedef struct tern_events_jetstream_options {
    const char *stream;             /**< the stream holding every topic; NULL: "EVENTS" */
    const char *subject_prefix;     /**< a topic's subject is prefix.topic; NULL: "events" */
} tern_events_jetstream_options;

/** The NATS JetStream transport on nc (borrowed: it must outlive the bus).
 *  One stream (made on first use, subjects "prefix.>"; an existing one of
 *  that name is used as it is) holds every topic; a group is a durable pull
 *  consumer (named group__topic) whose AckWait is the ack timeout, kept on
 *  the server when unsubscribed so the group resumes where it was.  The
 *  event id is sent as Nats-Msg-Id: a second publish of one event within
 *  the stream's duplicate window is stored once.  A topic must be a subject
 *  (no spaces or wildcards: -EINVAL).  -EINVAL for a bad stream name or
 *  prefix, -ENOMEM. */
int tern_events_jetstream_transport(tern_nats *nc, const tern_events_jetstream_options *o,
                                    tern_events_transport *out);

/* ---- metrics --------------------------------------------------------------- */

/**
 * Families in a registry:
 *   tern_events_published_total{bus,topic}        counter
 *   tern_events_delivered_total{bus,topic}        counter (every delivery)
 *   tern_events_redelivered_total{bus,topic}      counter (deliveries after the first)
 *   tern_events_dead_lettered_total{bus,topic}    counter
 *   tern_events_relay_published_total{outbox}     counter
 *   tern_events_relay_lag_seconds{outbox}         histogram: commit to publish
 * The handle must outlive the buses and relays that report into it.
 */
typedef struct tern_events_metrics tern_events_metrics;
/** Register the families in r (NULL: the default registry); -EEXIST for a
 *  second set in one registry. */
int tern_events_metrics_new(tern_metrics_registry *r, tern_events_metrics **out);
/** Free the handle (NULL: no-op). */
void tern_events_metrics_free(tern_events_metrics *m);

/* ---- the bus --------------------------------------------------------------- */

typedef struct tern_events_bus tern_events_bus;
typedef struct tern_events_sub tern_events_sub;

/** Bus options; zero means the default. */
typedef struct tern_events_bus_options {
    const char *name;               /**< the `bus` label (copied); NULL: the transport's name */
    tern_events_metrics *metrics;   /**< borrowed; NULL: none */
} tern_events_bus_options;

/** A bus over t (the bus owns t.self from now on, even on failure). */
int tern_events_bus_new(const tern_events_transport *t, const tern_events_bus_options *o,
                        tern_events_bus **out);
/** Free bus and its transport; every subscription must be freed first.
 *  NULL: no-op. */
void tern_events_bus_free(tern_events_bus *bus);
/** Publish ev (copied; an id is made when ev->id is NULL). */
int tern_events_publish(tern_events_bus *bus, const tern_event *ev, tern_ctx *ctx);

/** A subscription's handler: 0 acknowledges ev; anything else gives it
 *  back.  attempt is 1 on the first delivery.  ctx ends when the
 *  subscription is freed. */
typedef int tern_events_handler(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg);

/** Subscription options; zero means the default. */
typedef struct tern_events_sub_options {
    const char *group;              /**< consumer group; NULL: "default" */
    int max_deliveries;             /**< then dead-lettered; 0: 5 */
    const char *dead_letter_topic;  /**< NULL: topic + ".dead" */
    int64_t ack_timeout_ns;         /**< redelivered when not acknowledged by then; 0: 30 s */
    int consumers;                  /**< consumer coroutines; 0: 1 */
} tern_events_sub_options;

/** Subscribe to topic: start o->consumers coroutines that run handler on
 *  each event of the group.  *out is freed with tern_events_sub_free. */
int tern_events_subscribe(tern_events_bus *bus, const char *topic, tern_events_handler *handler, void *arg,
                          const tern_events_sub_options *o, tern_events_sub **out, tern_ctx *ctx);
/** Stop the consumers (their handlers' ctx is cancelled; an event being
 *  handled is neither acknowledged nor given back: the group gets it again
 *  after the ack timeout), wait for them, free sub.  NULL: no-op. */
void tern_events_sub_free(tern_events_sub *sub);

/** Bus counters (tern_events_bus_stats). */
struct tern_events_bus_stats {
    uint64_t published;             /**< events published (dead letters too) */
    uint64_t delivered;             /**< deliveries to consumers */
    uint64_t redelivered;           /**< deliveries after the first */
    uint64_t dead_lettered;         /**< events sent to a dead-letter topic */
    uint64_t acked;                 /**< events acknowledged after their handler's 0 */
    uint64_t failed;                /**< handler results other than 0 */
};
/** A snapshot of bus's counters. */
int tern_events_bus_stats(const tern_events_bus *bus, struct tern_events_bus_stats *out);

/* ---- the transactional outbox --------------------------------------------- */

typedef struct tern_outbox tern_outbox;
typedef struct tern_outbox_relay tern_outbox_relay;

/** Outbox options; zero means the default. */
typedef struct tern_outbox_options {
    const char *table;              /**< NULL: "outbox" (letters, digits, '_') */
} tern_outbox_options;

/**
 * The outbox in a SQLite database, its table created if need be:
 *   outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
 *          topic TEXT NOT NULL, type TEXT NOT NULL, payload BLOB NOT NULL,
 *          created_ns INTEGER NOT NULL, sent_ns INTEGER)
 * with an index on the unsent rows.  db is borrowed.
 */
int tern_outbox_sqlite_new(tern_sqlite *db, const tern_outbox_options *o, tern_outbox **out, tern_ctx *ctx);
/** Add ev to the outbox inside tx (the caller's transaction). */
int tern_outbox_sqlite_add(tern_outbox *ob, tern_sqlite_tx *tx, const tern_event *ev, tern_ctx *ctx);
/**
 * The outbox in PostgreSQL (pool borrowed), the same table with BIGSERIAL,
 * BYTEA and BIGINT, and two columns for relays' claims (claim_until,
 * claimed_by; added to an older table).  Relays of several processes may
 * share it: a round claims its rows for 30 s (FOR UPDATE SKIP LOCKED), so a
 * row goes out once while its relays live, and a dead relay's rows after
 * its claim ends.  Built only where libpq is.
 */
int tern_outbox_pg_new(tern_pg_pool *pool, const tern_outbox_options *o, tern_outbox **out, tern_ctx *ctx);
/** Add ev to the outbox on c, inside the caller's transaction. */
int tern_outbox_pg_add(tern_outbox *ob, tern_pg_conn *c, const tern_event *ev, tern_ctx *ctx);
/** Rows not yet sent. */
int tern_outbox_pending(tern_outbox *ob, int64_t *out, tern_ctx *ctx);
/** Delete the rows sent more than older_than_ns ago (wall clock); deleted
 *  (NULL: not wanted) receives how many.  Sent rows stay until purged. */
int tern_outbox_purge(tern_outbox *ob, int64_t older_than_ns, int64_t *deleted, tern_ctx *ctx);
/** Free ob (its relays stopped first).  NULL: no-op. */
void tern_outbox_free(tern_outbox *ob);

/** Relay options; zero means the default. */
typedef struct tern_outbox_relay_options {
    int batch;                      /**< rows per round; 0: 100 */
    int64_t poll_ns;                /**< sleep when nothing is unsent; 0: 20 ms */
    int64_t publish_timeout_ns;     /**< one publish's bound (a silent bus); 0: 5 s */
    tern_events_metrics *metrics;   /**< borrowed; NULL: none */
    const char *name;               /**< the `outbox` label (copied); NULL: the table's name */
} tern_outbox_relay_options;

/** Start a relay coroutine publishing ob's unsent rows through bus, in seq
 *  order (per relay: relays sharing a PostgreSQL outbox interleave), marking
 *  each batch sent once published; a round publishes for at most 20 s, one
 *  publish for at most publish_timeout_ns.  A publish that fails (timed out,
 *  or lost with a broken connection) ends the round: what went out before
 *  it is marked, it and the rest are published again poll_ns later
 *  (consumers deduplicate by event id). */
int tern_outbox_relay_start(tern_outbox *ob, tern_events_bus *bus, const tern_outbox_relay_options *o,
                            tern_outbox_relay **out);
/** Stop the relay (mid-batch: what it published but did not mark is
 *  published again by the next relay), wait for it, free it.  NULL: no-op. */
void tern_outbox_relay_stop(tern_outbox_relay *r);
/** Relay counters. */
struct tern_outbox_relay_stats {
    uint64_t published;             /**< rows published */
    uint64_t batches;               /**< batches marked sent */
    uint64_t errors;                /**< failed rounds (retried) */
    int64_t last_lag_ns;            /**< commit to publish of the last row */
};
/** A snapshot of r's counters. */
int tern_outbox_relay_stats(const tern_outbox_relay *r, struct tern_outbox_relay_stats *out);

/* ---- idempotent consumers --------------------------------------------------- */

/** Create, if need be, the table of processed events in db:
 *  processed_events(consumer TEXT, event_id TEXT, processed_ns INTEGER,
 *  PRIMARY KEY (consumer, event_id)). */
int tern_events_idempotent_sqlite_init(tern_sqlite *db, tern_ctx *ctx);
/**
 * Apply ev once for consumer: in one transaction on db, record ev->id as
 * processed and run fn; when the id is there already, fn does not run and
 * *applied (NULL: not wanted) is false.  Returns as tern_sqlite_tx_run.
 */
int tern_events_idempotent_sqlite(tern_sqlite *db, const char *consumer, const tern_event *ev,
                                  tern_sqlite_tx_fn *fn, void *arg, bool *applied, tern_sqlite_error *err,
                                  tern_ctx *ctx);
/** The same table in PostgreSQL.  Built only where libpq is. */
int tern_events_idempotent_pg_init(tern_pg_pool *pool, tern_ctx *ctx);
/** tern_events_idempotent_sqlite on PostgreSQL (tern_pg_tx_run). */
int tern_events_idempotent_pg(tern_pg_pool *pool, const char *consumer, const tern_event *ev, tern_pg_tx_fn *fn,
                              void *arg, bool *applied, tern_pg_error *err, tern_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
