/*
 * tern/grpc.h - gRPC over tern's HTTP/2: a server whose handlers read and
 * write protobuf messages as plain calls, and a client channel whose calls
 * are bounded by the caller's context.
 *
 * Messages are protobuf-c's (ProtobufCMessage and its descriptors, from
 * protoc-c); services are described by tern_grpc_service_desc, which
 * protoc-gen-tern-grpc generates (cmake: tern_grpc_generate) together with
 * typed stubs over the calls below.  Everything works without generated
 * code too: write the descs by hand.
 *
 * The server.  Each RPC is an HTTP/2 stream, served in a coroutine of its
 * own by tern's HTTP/2 server: a handler calls tern_grpc_call_recv (1 per
 * message, 0 at the end of the client's stream) and tern_grpc_call_send,
 * both parking the coroutine (flow control is respected both ways), and
 * returns 0 for OK or a negative errno (mapped to a code by the table
 * below) unless it set a status with tern_grpc_call_fail.  The call's ctx
 * carries the client's grpc-timeout as its deadline and is cancelled when
 * the client cancels (RST_STREAM) or goes away.
 *
 *     tern_grpc_server *s;
 *     tern_grpc_server_new(NULL, &s);
 *     helloworld_greeter_register(s, &impl, NULL);   // generated
 *     tern_grpc_server_listen(s, "127.0.0.1:50051");
 *     tern_grpc_server_serve(s, NULL);               // until _shutdown
 *     tern_grpc_server_free(s);
 *
 * gRPC and REST on one port: tern_grpc_server_http_handler is an HTTP
 * handler (and middleware: requests that are not gRPC go down the chain),
 * so a tern_http_server or router can carry it (see the function).
 *
 * The channel.  tern_grpc_channel_new(target, opts, &ch) resolves the
 * target ("dns:///host:port", "host:port", "ipv4:1.2.3.4:5,6.7.8.9:10",
 * "unix:/path", "unix:@abstract") into addresses, keeps one HTTP/2
 * connection (h2c, or TLS with ALPN "h2" when opts.tls is set) per address
 * it uses, and picks one per call: pick_first (the default), round_robin
 * or p2c (power of two choices), or whatever a picker (below) chooses:
 * discovery's balancers, with their latency-aware p2c, consistent
 * hashing by a call's affinity key and outlier ejection.  A failed
 * connection is re-dialled with gRPC's connection backoff (1 s, x1.6,
 * jitter 0.2, at most 120 s; each attempt bounded by max(20 s,
 * backoff)).  A call fails at once with UNAVAILABLE while no
 * address is connected, unless wait_for_ready, which waits (bounded by the
 * call's ctx).  The remaining budget of the call's ctx is sent as
 * grpc-timeout.  Keepalive pings are opt-in (keepalive_time).
 *
 * Status and errors.  Functions return 0 or a negative errno.  A call that
 * ends with a non-OK gRPC status returns the errno of its code (table
 * below) and the status (code and message) is retrievable: the status
 * argument of tern_grpc_unary, tern_grpc_stream_status.  Local failures map
 * the other way: -ETIMEDOUT from the ctx is DEADLINE_EXCEEDED, -ECANCELED
 * CANCELLED, a transport failure (-ECONNREFUSED, -ECONNRESET, ...)
 * UNAVAILABLE.
 *
 *   code                 errno from a status   errnos mapped to the code
 *   OK                   0                     0
 *   CANCELLED            -ECANCELED            -ECANCELED
 *   UNKNOWN              -EREMOTEIO            -EREMOTEIO, any not listed
 *   INVALID_ARGUMENT     -EINVAL               -EINVAL
 *   DEADLINE_EXCEEDED    -ETIMEDOUT            -ETIMEDOUT
 *   NOT_FOUND            -ENOENT               -ENOENT
 *   ALREADY_EXISTS       -EEXIST               -EEXIST
 *   PERMISSION_DENIED    -EACCES               -EACCES
 *   RESOURCE_EXHAUSTED   -ENOSPC               -ENOSPC, -EMSGSIZE, -ENOMEM, -EDQUOT
 *   FAILED_PRECONDITION  -EPERM                -EPERM
 *   ABORTED              -EDEADLK              -EDEADLK
 *   OUT_OF_RANGE         -ERANGE               -ERANGE
 *   UNIMPLEMENTED        -ENOSYS               -ENOSYS, -EOPNOTSUPP
 *   INTERNAL             -EPROTO               -EPROTO, -EBADMSG
 *   UNAVAILABLE          -EAGAIN               -EAGAIN, -ECONNREFUSED, -ECONNRESET,
 *                                              -ECONNABORTED, -EPIPE, -EHOSTUNREACH,
 *                                              -ENETUNREACH
 *   DATA_LOSS            -EIO                  -EIO
 *   UNAUTHENTICATED      -ENOKEY               -ENOKEY
 *
 * Metadata.  ASCII metadata is name/value C strings.  A name ending in
 * "-bin" carries bytes: the library base64-encodes them on the wire and
 * decodes what it receives (padded or not), so callers only ever see raw
 * bytes with a length.  Names are lower-case on the wire; the library
 * lower-cases what it is given.
 *
 * Ownership and threads: a server or channel is the caller's (its _free);
 * descs and impls given to add_service are borrowed for the server's life.
 * A call (server) belongs to its handler's coroutine and lives until the
 * handler returns; a stream (client) belongs to one coroutine at a time
 * and lives until tern_grpc_stream_free.  Servers and channels are shared
 * freely between coroutines.  Every blocking function must be called from
 * a coroutine (inside tern_run).
 */
#ifndef TERN_GRPC_H
#define TERN_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "tern/context.h"
#include "tern/http.h"
#include "tern/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status codes (the wire values). */
typedef enum tern_grpc_code {
    TERN_GRPC_OK = 0, TERN_GRPC_CANCELLED = 1, TERN_GRPC_UNKNOWN = 2, TERN_GRPC_INVALID_ARGUMENT = 3,
    TERN_GRPC_DEADLINE_EXCEEDED = 4, TERN_GRPC_NOT_FOUND = 5, TERN_GRPC_ALREADY_EXISTS = 6,
    TERN_GRPC_PERMISSION_DENIED = 7, TERN_GRPC_RESOURCE_EXHAUSTED = 8, TERN_GRPC_FAILED_PRECONDITION = 9,
    TERN_GRPC_ABORTED = 10, TERN_GRPC_OUT_OF_RANGE = 11, TERN_GRPC_UNIMPLEMENTED = 12, TERN_GRPC_INTERNAL = 13,
    TERN_GRPC_UNAVAILABLE = 14, TERN_GRPC_DATA_LOSS = 15, TERN_GRPC_UNAUTHENTICATED = 16,
} tern_grpc_code;

typedef enum tern_grpc_method_type {
    TERN_GRPC_UNARY, TERN_GRPC_SERVER_STREAMING, TERN_GRPC_CLIENT_STREAMING, TERN_GRPC_BIDI_STREAMING,
} tern_grpc_method_type;

/* The receive limit of servers and channels unless set: gRPC's 4 MiB. */
#define TERN_GRPC_DEFAULT_MAX_RECV (4u * 1024 * 1024)

/* "OK", "NOT_FOUND", ...; "UNKNOWN" outside 0..16.  Static strings. */
const char *tern_grpc_code_name(tern_grpc_code code);
/* The table above, both ways. */
int tern_grpc_code_to_errno(tern_grpc_code code);
tern_grpc_code tern_grpc_errno_to_code(int err);

typedef struct tern_grpc_server tern_grpc_server;
typedef struct tern_grpc_call tern_grpc_call;         /* one RPC, server side; lives until its handler returns */
typedef struct tern_grpc_channel tern_grpc_channel;
typedef struct tern_grpc_stream tern_grpc_stream;     /* one RPC, client side */

/* A .proto file's serialized google.protobuf.FileDescriptorProto, for reflection.  Static data in generated code. */
typedef struct tern_grpc_file_desc {
    const char *name;                                  /* "helloworld.proto" */
    const uint8_t *data; size_t len;                   /* serialized FileDescriptorProto */
    const struct tern_grpc_file_desc *const *deps;     /* the files it imports that were generated too */
    size_t n_deps;
} tern_grpc_file_desc;

/* Server-side glue for one method: generated code provides one per method; it receives, calls the user's typed
 * function from impl, sends, and returns 0 or a negative errno (the status, if the user set one with
 * tern_grpc_call_fail, wins). impl is the pointer given to tern_grpc_server_add_service, arg the user's datum. */
typedef int tern_grpc_invoke_fn(tern_grpc_call *call, const void *impl, void *arg);

typedef struct tern_grpc_method_desc {
    const char *name;                                  /* "SayHello" */
    const char *path;                                  /* "/helloworld.Greeter/SayHello" */
    tern_grpc_method_type type;
    const ProtobufCMessageDescriptor *input;           /* request message */
    const ProtobufCMessageDescriptor *output;          /* response message */
    tern_grpc_invoke_fn *invoke;                       /* server glue; NULL in a client-only build is fine */
} tern_grpc_method_desc;

typedef struct tern_grpc_service_desc {
    const char *name;                                  /* "helloworld.Greeter" */
    const tern_grpc_method_desc *methods;
    size_t n_methods;
    const tern_grpc_file_desc *file;                   /* the file that declares it (reflection); may be NULL */
} tern_grpc_service_desc;

/* One metadata entry: for a "-bin" name, value is len raw bytes; otherwise
 * value is text (len bytes; printable ASCII and spaces). */
typedef struct tern_grpc_metadata {
    const char *name;
    const void *value;
    size_t len;
} tern_grpc_metadata;

/* ---- the server ------------------------------------------------------- */

/* An interceptor: runs around every call on the server, outermost first,
 * in the call's coroutine.  It may look at the call (method, metadata,
 * peer), refuse it (return tern_grpc_call_fail(...) without calling next),
 * or call tern_grpc_call_next(call) to run the rest of the chain and the
 * handler, then look at the outcome (tern_grpc_call_code).  It returns
 * what the handler would: 0 or -errno.  For unary and streaming calls
 * alike (tern_grpc_call_method(call)->type tells them apart). */
typedef int tern_grpc_interceptor_fn(tern_grpc_call *call, void *arg);

typedef struct tern_grpc_interceptor {
    tern_grpc_interceptor_fn *fn;
    void *arg;
} tern_grpc_interceptor;

typedef struct tern_grpc_server_options {
    size_t max_recv_bytes;              /* a request message's size, decompressed; 0: 4 MiB;
                                           larger: RESOURCE_EXHAUSTED */
    size_t max_send_bytes;              /* a response message's size; 0: none; larger: the send
                                           fails with -EMSGSIZE */
    const tern_grpc_interceptor *interceptors;   /* copied; NULL or n_interceptors of them */
    size_t n_interceptors;
    /* For tern_grpc_server_listen/_serve: the HTTP/2 server's limits and
     * timeouts (handler and arg are ignored: the server's own).  The zero
     * value has no request-body limit and no read_body/write timeouts (a
     * stream lives as long as its RPC), else the HTTP server's defaults. */
    tern_http_server_options http;
} tern_grpc_server_options;

/* A server (options copied; o NULL: defaults).  0, -EINVAL, -ENOMEM. */
int tern_grpc_server_new(const tern_grpc_server_options *o, tern_grpc_server **out);
/* Register a service.  desc and impl are borrowed: they must outlive the server (generated code passes static
 * data and the user's impl struct).  -EEXIST if a service of that name is registered, -EINVAL, -ENOMEM;
 * -EBUSY once the server is serving. */
int tern_grpc_server_add_service(tern_grpc_server *s, const tern_grpc_service_desc *desc, const void *impl,
                                 void *arg);
/* The registered services' descs (reflection, health): *n of them, in
 * registration order; valid until the next add_service. */
const tern_grpc_service_desc *const *tern_grpc_server_services(const tern_grpc_server *s, size_t *n);
/* Append an interceptor (innermost so far).  -EBUSY once serving. */
int tern_grpc_server_add_interceptor(tern_grpc_server *s, tern_grpc_interceptor_fn *fn, void *arg);

/* Serve on a port of the server's own HTTP/2 server: h2c with prior
 * knowledge (what gRPC clients speak in clear text), or TLS (ALPN h2).
 * As tern_http_server_listen / _listen_tls / _add_listener. */
int tern_grpc_server_listen(tern_grpc_server *s, const char *addr);
int tern_grpc_server_listen_tls(tern_grpc_server *s, const char *addr, tern_tls_config *cfg);
int tern_grpc_server_add_listener(tern_grpc_server *s, tern_listener *l);
/* The first listener's port, 0 before listening. */
int tern_grpc_server_port(const tern_grpc_server *s);
/* Accept and serve until shutdown or ctx ends; as tern_http_server_serve. */
int tern_grpc_server_serve(tern_grpc_server *s, tern_ctx *ctx);
/* Graceful drain: GOAWAY to every connection, new calls refused, calls in
 * flight finish until ctx ends, then their ctxs are cancelled (as
 * tern_http_server_shutdown).  0 or ctx's error. */
int tern_grpc_server_shutdown(tern_grpc_server *s, tern_ctx *ctx);
/* After serve returned (or if it never ran).  NULL: no-op. */
void tern_grpc_server_free(tern_grpc_server *s);

/* The server as an HTTP handler (arg: the tern_grpc_server), to share a
 * port with REST: a POST whose content-type is application/grpc[+...] is
 * served as a gRPC call (UNIMPLEMENTED for an unknown path); a request for
 * a registered method's path with another content-type is answered 415;
 * anything else goes down the chain (tern_http_next).  (The server's own
 * port, tern_grpc_server_listen, answers 415 to everything not gRPC.)  Use it as a tern_http_server's handler in front of a router
 * (a two-link chain), or as a router's first middleware
 * (tern_http_router_use: it runs before routing).  The HTTP server should have max_body_bytes < 0
 * and no read_body/write timeouts (streams last as long as their RPCs),
 * and gRPC needs HTTP/2 (h2c or TLS with ALPN h2). */
int tern_grpc_server_http_handler(tern_http_req *r, tern_http_resp *w, void *arg);

/* --- inside a handler (server side) --- */
/* The RPC's method, and its ctx (deadline from grpc-timeout, cancelled when the client cancels or resets). */
const tern_grpc_method_desc *tern_grpc_call_method(const tern_grpc_call *call);
tern_ctx *tern_grpc_call_ctx(tern_grpc_call *call);
/* Receive the next request message, unpacked with the method's input descriptor into memory owned by the call,
 * valid until the next recv on this call or the handler's return.  1 with *msg set; 0 at the end of the client's
 * stream; -errno (-ETIMEDOUT/-ECANCELED when the call's ctx ends, -EMSGSIZE over the receive limit, -EBADMSG
 * undecodable, -ECONNRESET). ctx NULL: the call's ctx. */
int tern_grpc_call_recv(tern_grpc_call *call, ProtobufCMessage **msg, tern_ctx *ctx);
/* Send one response message (packed with protobuf-c; flow-controlled: parks while the peer's window is shut).
 * The first send also sends the response headers. 0 or -errno. ctx NULL: the call's ctx. */
int tern_grpc_call_send(tern_grpc_call *call, const ProtobufCMessage *msg, tern_ctx *ctx);
/* (recv and send: a ctx other than the call's is looked at as they begin;
 * their waits inside are bounded by the call's ctx, which a call's
 * deadline and cancellation end anyway.) */
/* Memory that lives as long as the call (for a unary handler's response fields). NULL: out of memory. */
void *tern_grpc_call_alloc(tern_grpc_call *call, size_t n);
char *tern_grpc_call_strdup(tern_grpc_call *call, const char *s);
/* Record the status to end the call with, and return the negative errno that matches the code (so a handler
 * writes `return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no user %s", id);`). The message is
 * percent-encoded on the wire by the library. */
int tern_grpc_call_fail(tern_grpc_call *call, tern_grpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The code the call ends (or ended) with so far: OK until a status is set
 * or the handler fails (after tern_grpc_call_next: the handler's outcome). */
tern_grpc_code tern_grpc_call_code(const tern_grpc_call *call);
/* The status message so far (the call's, valid while it lives), or NULL:
 * what tern_grpc_call_fail wrote, or the handler's error as tern_strerror
 * says it. */
const char *tern_grpc_call_message(const tern_grpc_call *call);
/* Run the rest of the interceptor chain and the handler (from an
 * interceptor); returns what they returned. */
int tern_grpc_call_next(tern_grpc_call *call);

/* Request metadata: the first value of name (ASCII names; NULL when
 * absent), a -bin entry's decoded bytes (-ENOENT when absent, -EBADMSG
 * when not base64), and every entry in order (-ERANGE past the last; for
 * -bin names value/len are the decoded bytes).  Reserved fields (pseudo
 * headers, content-type, te, grpc-*) are not metadata and not listed. */
const char *tern_grpc_call_metadata(const tern_grpc_call *call, const char *name);
int tern_grpc_call_metadata_bin(tern_grpc_call *call, const char *name, const void **data, size_t *len);
int tern_grpc_call_metadata_at(tern_grpc_call *call, size_t i, tern_grpc_metadata *out);
/* Response metadata: headers (before the first send; -EALREADY after) and
 * trailers (until the handler returns; grpc-status-details-bin, the
 * google.rpc.Status of richer errors, and grpc-retry-pushback-ms, gRFC A6's
 * "retry after this many ms" (a negative value: "do not retry"), are
 * accepted here too).  For a "-bin" name value is len
 * raw bytes, else text (len ignored: strlen).  -EINVAL for a bad name or
 * value, -ENOMEM. */
int tern_grpc_call_add_header(tern_grpc_call *call, const char *name, const void *value, size_t len);
int tern_grpc_call_add_trailer(tern_grpc_call *call, const char *name, const void *value, size_t len);
/* Compress response messages ("gzip"; NULL or "identity": none).
 * -ENOTSUP for an encoding the client did not accept (grpc-accept-encoding)
 * or unknown.  Before the first send it chooses the response's
 * grpc-encoding; after it, messages can be switched between compressed and
 * not only if gzip was chosen then (-EALREADY otherwise). */
int tern_grpc_call_set_compression(tern_grpc_call *call, const char *encoding);
/* Whether the message the last tern_grpc_call_recv returned came
 * compressed (its flag; interop checks this). */
bool tern_grpc_call_recv_compressed(const tern_grpc_call *call);
/* The client's address ("127.0.0.1:51234"), and the HTTP request the call
 * rides on (its TLS peer, say). */
const char *tern_grpc_call_peer(tern_grpc_call *call);
tern_http_req *tern_grpc_call_http_req(tern_grpc_call *call);

/* Replace the call's ctx (what tern_grpc_call_ctx returns from now on, and
 * what bounds recv and send): an interceptor hands the rest of the chain a
 * context carrying more (a trace span).  ctx must descend from the call's
 * current ctx, so the call's deadline and cancellation still reach it, and
 * must live until the handler returns (tern_http_req_set_ctx on
 * tern_grpc_call_http_req gives it to the request, which frees it).
 * 0, -EINVAL for NULL. */
int tern_grpc_call_set_ctx(tern_grpc_call *call, tern_ctx *ctx);

/* ---- the client ------------------------------------------------------- */

/* Told of each response header and trailer entry (the same decoding as
 * tern_grpc_call_metadata_at; grpc-status-details-bin included), in the
 * caller's coroutine, during the receive call that sees them. */
typedef void tern_grpc_metadata_fn(const tern_grpc_metadata *md, bool trailer, void *arg);

typedef struct tern_grpc_call_options {
    /* NULL or NULL-terminated name, value, ...: ASCII values are sent as
     * they are; a "-bin" name's value is raw bytes up to its NUL.  For -bin
     * values with NULs use md. */
    const char *const *metadata;
    const tern_grpc_metadata *md;       /* n_md more entries */
    size_t n_md;
    bool wait_for_ready;
    const char *compression;            /* NULL: none; "gzip": request messages compressed */
    tern_grpc_metadata_fn *on_metadata; /* NULL: response metadata dropped */
    void *on_metadata_arg;
    /* The call's affinity key for a channel's picker (a user id, a
     * session: a hash policy sends one key to one address); read while
     * each attempt picks (a stream's retries keep a copy).  NULL: none. */
    const void *affinity_key;
    size_t affinity_key_len;
} tern_grpc_call_options;

/* A client's view of a call's outcome.  message is owned by the status: tern_grpc_status_clear frees it. */
typedef struct tern_grpc_status {
    tern_grpc_code code;
    char *message;                      /* decoded grpc-message, or NULL */
} tern_grpc_status;
void tern_grpc_status_clear(tern_grpc_status *st);

/* A resolver: turns a target into address lists for the channel, now and
 * whenever they change (the discovery layer plugs etcd and the like in
 * here).  start is called by tern_grpc_channel_new with the target after
 * its scheme ("dns:///a:1" -> "a:1"); it delivers lists with
 * tern_grpc_channel_update (from any coroutine, any time until stop
 * returns) and returns 0 or -errno (channel_new fails with it).  refresh
 * asks for a new resolution soon (a connection failed; may be NULL).  stop
 * ends it (channel_free).  state is the resolver's own. */
typedef struct tern_grpc_resolver {
    int (*start)(tern_grpc_channel *ch, const char *target, void *arg, void **state);
    void (*refresh)(void *state);
    void (*stop)(void *state);
} tern_grpc_resolver;

/* Replace the channel's addresses ("host:port" TCP, or "unix:/path"):
 * connections to addresses no longer listed close once their calls end.
 * With a picker the set goes to its update first (weights all 1), and
 * its refusal is this call's.  0, -EINVAL, -ENOMEM. */
int tern_grpc_channel_update(tern_grpc_channel *ch, const char *const *addrs, size_t n);
/* As tern_grpc_channel_update, with a weight per address for the picker
 * (weights NULL: all 1; the channel's own policies ignore them). */
int tern_grpc_channel_update_weighted(tern_grpc_channel *ch, const char *const *addrs, const uint32_t *weights,
                                      size_t n);

/* A picker: balancing by another layer (discovery's tern_balancer plugs
 * in through tern_balancer_grpc_picker).  The channel keeps the
 * subchannels (a connection per address, gRPC's backoff) and hands the
 * picker every address set it gets (update, under the channel's lock: a
 * pick names an address the channel has).  Each call attempt asks pick
 * for an address (the call's affinity_key, or NULL), and tells done once,
 * when the attempt is over, how long it took from the pick and how it
 * went:
 *   TERN_GRPC_PICK_OK      the server answered (any status but UNAVAILABLE)
 *   TERN_GRPC_PICK_FAILED  the address's fault: the dial failed, the address
 *                          was still in connection backoff, the connection
 *                          broke, or the status is UNAVAILABLE
 *   TERN_GRPC_PICK_LOCAL   the caller's or nobody's: its ctx ended, it
 *                          cancelled, the attempt waited for another's dial
 * After a FAILED pick the channel picks again (up to twice the number of
 * addresses, then UNAVAILABLE, or with wait_for_ready a wait for the
 * earliest backoff's end).  The three functions run in the caller's
 * coroutine, update and pick under the channel's lock: they must not
 * block nor call the channel.  pick returns 0 with out->addr set (valid
 * until done), or -errno (-ENOENT: no addresses); out->state is the
 * picker's. */
typedef enum tern_grpc_pick_outcome {
    TERN_GRPC_PICK_OK = 0,
    TERN_GRPC_PICK_FAILED,
    TERN_GRPC_PICK_LOCAL,
} tern_grpc_pick_outcome;

typedef struct tern_grpc_pick {
    const char *addr;
    uint64_t state[4];
} tern_grpc_pick;

typedef struct tern_grpc_picker {
    int (*update)(void *arg, const char *const *addrs, const uint32_t *weights, size_t n);
    int (*pick)(void *arg, const void *key, size_t key_len, tern_grpc_pick *out);
    void (*done)(void *arg, tern_grpc_pick *p, int64_t latency, tern_grpc_pick_outcome outcome);
} tern_grpc_picker;

/* Client interceptors: run around every call on a channel, outermost
 * first, in the caller's coroutine, before the call is made.  An
 * interceptor may look at the call (method, ctx), add request metadata,
 * refuse it (return a negative errno without calling next: the call fails
 * with it), ask to be told when the call ends (tern_grpc_client_call_on_done),
 * and calls tern_grpc_client_call_next(cc) to run the rest of the chain and
 * the call.  For a unary call next returns when the call is over (its
 * status known: tern_grpc_client_call_code); for a streaming call it
 * returns once the stream is open, and the call ends later, when
 * tern_grpc_stream_recv returns <= 0 or the stream is freed: on_done is
 * how both kinds are observed alike.  Retries and hedging (the service
 * config) happen inside next: interceptors see one call, however many
 * attempts it took.  The client call lives until its done callbacks have
 * run (unary: until tern_grpc_unary returns). */
typedef struct tern_grpc_client_call tern_grpc_client_call;
typedef int tern_grpc_client_interceptor_fn(tern_grpc_client_call *cc, void *arg);
typedef struct tern_grpc_client_interceptor {
    tern_grpc_client_interceptor_fn *fn;
    void *arg;
} tern_grpc_client_interceptor;
/* Told once, when the call's status is final (code and message readable
 * through cc); in the coroutine that saw the end. */
typedef void tern_grpc_client_done_fn(tern_grpc_client_call *cc, void *arg);

/* The method called (the caller's desc, borrowed) and the caller's ctx
 * (NULL when the caller gave none; a service config's timeout applies
 * inside next, under it). */
const tern_grpc_method_desc *tern_grpc_client_call_method(const tern_grpc_client_call *cc);
tern_ctx *tern_grpc_client_call_ctx(tern_grpc_client_call *cc);
/* Add a request metadata entry (as tern_grpc_call_options.md: a "-bin"
 * name's value is len raw bytes, else len bytes of text); copied.  Before
 * next.  0, -EINVAL (bad or reserved name, bad value), -EALREADY after
 * next, -ENOSPC past 16 added, -ENOMEM. */
int tern_grpc_client_call_add_metadata(tern_grpc_client_call *cc, const char *name, const void *value,
                                       size_t len);
/* Up to 8 callbacks, called innermost first.  0, -ENOSPC, -EALREADY once done. */
int tern_grpc_client_call_on_done(tern_grpc_client_call *cc, tern_grpc_client_done_fn *fn, void *arg);
int tern_grpc_client_call_next(tern_grpc_client_call *cc);
/* The call's code and message (NULL if none) so far: OK until it ends. */
tern_grpc_code tern_grpc_client_call_code(const tern_grpc_client_call *cc);
const char *tern_grpc_client_call_message(const tern_grpc_client_call *cc);
/* The attempts made so far (1 without retries; more after retries or hedges). */
int tern_grpc_client_call_attempts(const tern_grpc_client_call *cc);

typedef struct tern_grpc_channel_options {
    tern_tls_config *tls;               /* a client config; NULL: h2c (clear text) */
    const char *authority;              /* :authority and TLS server name; NULL: the target's
                                           host:port (for unix: "localhost"; with a resolver,
                                           the target's endpoint, "etcd:///a/b" -> "a%2Fb",
                                           percent-encoded where an authority may not hold a
                                           character) */
    const char *lb_policy;              /* NULL or "pick_first", "round_robin", or "p2c" (the
                                           less loaded of two random addresses, by calls
                                           open on each); NULL with a picker */
    const tern_grpc_picker *picker;     /* NULL: lb_policy; else calls go where it picks
                                           (borrowed, as picker_arg: both must outlive
                                           the channel) */
    void *picker_arg;
    size_t max_recv_bytes;              /* a response message's size; 0: 4 MiB; larger:
                                           RESOURCE_EXHAUSTED */
    int64_t backoff_base;               /* ns; 0: 1 s (gRPC's INITIAL_BACKOFF) */
    int64_t backoff_max;                /* ns; 0: 120 s */
    int64_t min_connect_timeout;        /* ns; 0: 20 s */
    const char *user_agent;             /* NULL: "tern-grpc-c/<version>" */
    /* Keepalive (gRPC's A8): a PING after keepalive_time ns without one
     * (0: none), the connection closed (UNAVAILABLE, -ECONNABORTED for its
     * calls) when no ack comes within keepalive_timeout (0: 20 s); only
     * while calls are open unless keepalive_without_calls.  A server's
     * GOAWAY ENHANCE_YOUR_CALM "too_many_pings" doubles keepalive_time. */
    int64_t keepalive_time;
    int64_t keepalive_timeout;
    bool keepalive_without_calls;
    const tern_grpc_resolver *resolver; /* NULL: by the target's scheme (dns, ipv4, ipv6, unix) */
    void *resolver_arg;
    const tern_grpc_client_interceptor *interceptors;   /* copied; NULL or n_interceptors */
    size_t n_interceptors;
    /* A service config in gRPC's JSON (gRFC A6; NULL: none): methodConfig
     * entries (name [{service, method}], timeout "1.5s", retryPolicy
     * {maxAttempts, initialBackoff, maxBackoff, backoffMultiplier,
     * retryableStatusCodes}, hedgingPolicy {maxAttempts, hedgingDelay,
     * nonFatalStatusCodes}) and retryThrottling {maxTokens, tokenRatio}.
     * Retries cover unary calls and streams (until committed: response
     * headers or a message; a stream's request messages are replayed, up
     * to 64 KiB); hedging covers unary calls.  docs/grpc.md has the rules.
     * Copied.  channel_new fails with -EINVAL for one it cannot read (see
     * service_config_error). */
    const char *service_config;
    char *service_config_error;         /* NULL or a buffer of service_config_errlen for why */
    size_t service_config_errlen;
} tern_grpc_channel_options;

/* A channel to target (options copied; NULL: defaults; the TLS config is
 * borrowed and must outlive the channel).  Resolves now (dns: getaddrinfo
 * on the blocking pool), connects lazily.  -EINVAL for a target it cannot
 * parse, an unknown lb_policy, an lb_policy with a picker, or a picker
 * without pick, done or update; the resolver's error, -ENOMEM.  Must be
 * called from a coroutine. */
int tern_grpc_channel_new(const char *target, const tern_grpc_channel_options *o, tern_grpc_channel **out);
/* Closes every connection and waits for their coroutines; call it after
 * the channel's streams are freed (an open stream holds its connection,
 * and this would wait for it).  NULL: no-op. */
void tern_grpc_channel_free(tern_grpc_channel *ch);

/* Unary call: pack req with m->input, send, receive one response unpacked with m->output into *resp (the
 * caller's: free with protobuf_c_message_free_unpacked(*resp, NULL)).  0 (status OK) or -errno; when the server
 * answered with a non-OK status, -errno matching the code (see grpc.h's table) and *status (if not NULL) holds
 * code and message (also filled on success, code OK).  opts may be NULL. */
int tern_grpc_unary(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, const tern_grpc_call_options *opts, tern_grpc_status *status,
                    tern_ctx *ctx);

/* Streaming calls (any type). The stream is bounded by ctx for its whole life (ctx must outlive it).
 * A stream the server refused unprocessed (RST_STREAM REFUSED_STREAM before any response headers, as
 * when it was above a draining server's GOAWAY) is opened again once, at once, on another connection if
 * the picker gives one, with the messages sent so far replayed (gRFC A6's transparent retry): until its
 * first response headers, the stream keeps a copy of what it sent, up to 64 KiB (past that, no retry). */
int tern_grpc_stream_open(tern_grpc_channel *ch, const tern_grpc_method_desc *m,
                          const tern_grpc_call_options *opts, tern_grpc_stream **out, tern_ctx *ctx);
int tern_grpc_stream_send(tern_grpc_stream *st, const ProtobufCMessage *msg, tern_ctx *ctx);
int tern_grpc_stream_close_send(tern_grpc_stream *st, tern_ctx *ctx);     /* half-close */
/* Compress the next messages or not: only on a stream opened with
 * compression "gzip" (-ENOTSUP otherwise), whose grpc-encoding stays. */
int tern_grpc_stream_set_compression(tern_grpc_stream *st, bool on);
/* 1 with *msg (valid until the next recv or free), 0 at end with status OK, -errno otherwise (see _status). */
int tern_grpc_stream_recv(tern_grpc_stream *st, ProtobufCMessage **msg, tern_ctx *ctx);
/* The final status once recv returned <= 0 (code and message borrowed from the stream). */
const tern_grpc_status *tern_grpc_stream_status(const tern_grpc_stream *st);
void tern_grpc_stream_free(tern_grpc_stream *st);   /* cancels (RST_STREAM CANCEL) if not finished */

/* ---- the wire, for tools and fuzzers ---------------------------------- */

/* grpc-timeout (1-8 digits and a unit H M S m u n) to ns: 0 or -EINVAL. */
int tern_grpc_timeout_parse(const char *s, int64_t *ns);
/* ns (> 0) as grpc-timeout into buf (at least 16 bytes): the largest unit
 * that keeps 8 digits, rounded up.  Returns the length. */
size_t tern_grpc_timeout_format(int64_t ns, char *buf);
/* Percent-encode a grpc-message (RFC: bytes outside 0x20..0x7e and '%'
 * become %XX) / decode one (bad escapes kept as they are).  malloc'd;
 * NULL on ENOMEM. */
char *tern_grpc_message_encode(const char *msg);
char *tern_grpc_message_decode(const char *wire);

#ifdef __cplusplus
}
#endif
#endif
