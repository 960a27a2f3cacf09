/*
 * server_internal.h - the HTTP server's structs, shared by the files that
 * implement it: server.c (listeners, accept, shutdown), serve_conn.c (the
 * per-connection loop), request.c, response.c.
 */
#ifndef TERN_HTTP_SERVER_INTERNAL_H
#define TERN_HTTP_SERVER_INTERNAL_H

#include <stdatomic.h>

#include "base/arena.h"
#include "base/check.h"
#include "base/growbuf.h"
#include "tern/chan.h"
#include "tern/http.h"
#include "tern/http_parse.h"
#include "tern/sync.h"

#define HTTP_MAX_LISTENERS 64
#define HTTP_MAX_PARAMS 16
#define HTTP_MAX_VALUES 8
#define HTTP_MAX_CTXS 8
#define HTTP_MAX_CTX_VALUES 4
#define HTTP_STREAM_THRESHOLD (64 * 1024)   /* buffered body before streaming */
#define HTTP_IN_INITIAL 4096
#define HTTP_BODY_INITIAL (16 * 1024)       /* tern_http_req_body's first reservation */
#define HTTP_DRAIN_MAX (256 * 1024)         /* unread body we discard to keep a conn */
/* A lingering close (413, 414, 431) reads and drops at most this much, for
 * at most this long: enough for the client to see the answer instead of a
 * reset, too little to be a way to hold the server. */
#define HTTP_LINGER_MAX (256 * 1024)
#define HTTP_LINGER_NS (1000 * 1000 * 1000LL)
/* max_conns 0: three quarters of RLIMIT_NOFILE, within these bounds */
#define HTTP_MIN_CONNS 64
#define HTTP_MAX_CONNS_CAP (1 << 20)
#define HTTP_LIMIT_REPORT_NS (10 * 1000 * 1000 * 1000LL)  /* one report per 10 s at most */

typedef struct hconn hconn;
typedef struct h2_stream h2_stream;

struct tern_http_req {
    hconn *conn;
    tern_http_request head;
    const char *path;               /* decoded, lazily */
    bool path_valid;                /* path's escapes decoded to UTF-8 without NUL */
    const char *raw_query;
    /* body */
    int64_t body_left;              /* Content-Length mode: bytes still to read */
    int64_t body_read;
    int64_t max_body;
    bool has_body, chunked, body_done, body_failed, continue_sent, body_started;
    int body_err;                   /* the first error a body call returned:
                                       tern_http_error_status tells the
                                       client's faults from a downstream's */
    tern_http_chunked dec;
    size_t pend_off, pend_len;
    tern_ctx *cancel_ctx;           /* tern_http_req_ctx's own, once made */
    bool peer_watched;              /* cancel_ctx ends if the client goes */
    bool upgraded;                  /* tern_http_resp_upgrade: the conn is the handler's */
    atomic_bool peer_gone;          /* ... and it went (set by the netpoller) */      /* decoded chunked bytes waiting in conn->in */
    const char *body_data;          /* tern_http_req_body's copy */
    char *body_heap;                /* the same, freed at the request's end */
    size_t body_len;
    bool body_loaded;
    /* chain */
    const tern_http_link *chain;
    size_t chain_len, chain_pos;
    /* route parameters (set by a router) */
    const char *param_names[HTTP_MAX_PARAMS];
    const char *param_values[HTTP_MAX_PARAMS];
    size_t nparams;
    const void *value_keys[HTTP_MAX_VALUES];
    void *value_vals[HTTP_MAX_VALUES];
    size_t nvalues;
    tern_ctx *ctx;
    tern_ctx *owned_ctx[HTTP_MAX_CTXS];
    size_t nowned;
    /* values for the context, added before anyone asked for it */
    const void *ctx_keys[HTTP_MAX_CTX_VALUES];
    void *ctx_vals[HTTP_MAX_CTX_VALUES];
    size_t nctx_values;
    int64_t start;
};

typedef struct resp_header {
    const char *name, *value;   /* NUL-terminated, in the arena */
    size_t name_len, value_len; /* measured once, when set */
} resp_header;

struct tern_http_resp {
    hconn *conn;
    tern_http_req *req;
    int status;
    resp_header *hdrs;
    size_t nhdrs, hdrs_cap;
    size_t start;                   /* this response's bytes in conn->out begin here */
    uint64_t body_bytes;
    resp_header *trailers;          /* tern_http_resp_set_trailer's, in the arena */
    size_t ntrailers, trailers_cap;
    bool committed, chunked, head_only, done, close_after;
};

struct hconn {
    tern_http_server *srv;
    tern_conn *c;
    tern_tls_config *tls;           /* HTTPS: handshake first (borrowed from the server) */
    char *in;                       /* in the serving frame, or the heap once grown */
    size_t in_cap, in_len, in_pos;
    bool in_fixed;
    tern__growbuf out;
    tern__growbuf scratch;          /* response heads are built here */
    tern_http_header *hdrs;
    bool hdrs_fixed;
    tern__arena arena;
    hconn *prev, *next;             /* server's list, under srv->mu */
    _Atomic int state;              /* CONN_* */
    unsigned nreq;
    tern_http_resp *cur;            /* the response being built, during serve_one */
    int64_t idle_until;             /* set when a burst ends quiet: the idle deadline */
    int64_t head_start;             /* when the current head began to arrive */
    bool closing;                   /* answer with Connection: close and stop */
    bool linger;                    /* refused while the client may still send:
                                       read and drop a while before closing */
    int io_error;                   /* a write failed: stop */
    /* An HTTP/2 stream's own hconn (h2_stream.c): the request and response
     * code divert here to the stream's body and frames; c is the shared
     * connection (for its addresses only), arena/out/scratch the stream's. */
    h2_stream *h2;
};

enum { CONN_ACTIVE, CONN_IDLE };

struct tern_http_server {
    tern_http_server_options o;
    tern_listener *ls[HTTP_MAX_LISTENERS];
    tern_tls_config *ls_tls[HTTP_MAX_LISTENERS];   /* NULL: plain HTTP */
    int nls;
    tern_mutex mu;
    hconn *conns;
    atomic_bool shutting_down;
    atomic_bool serving;
    tern_ctx *base;                 /* parent of request contexts; cancelled when forced */
    tern_ctx *accepting;            /* cancelled when shutdown begins */
    tern_waitgroup accepters;
    tern_chan *drained;             /* closed when shutting down and no conn is left */
    bool drained_closed;
    bool orphaned;                  /* freed by its owner while abandoned conns live:
                                       the last of them frees it (under mu) */
    tern_chan *finished;            /* closed as the first shutdown call's last act */
    tern_sem conn_slots;
    _Atomic uint64_t accepted, requests, rejected, conn_limit_hits;
    _Atomic int64_t limit_reported;     /* when max_conns was last reported */
    _Atomic uint32_t nconns, nactive;
};

/* serve_conn.c */
int tern__http_serve_conn(void *arg);   /* a coroutine per hconn */
void tern__http_conn_gone(tern_http_server *s, hconn *hc);
int tern__http_flush_out(hconn *hc);

/* response.c */
/* "Date: <IMF-fixdate>\r\n", cached per thread for a second. */
const char *tern__http_date_line(void);
void tern__http_resp_init(tern_http_resp *w, hconn *hc, tern_http_req *r);
int tern__http_resp_finish(tern_http_resp *w);
int tern__http_resp_commit(tern_http_resp *w);
/* tern_http_resp_set_header for a name and value the caller knows to be
 * valid (a token; no control characters; not a framing field): no checks
 * but `committed`. */
int tern__http_resp_set_header_valid(tern_http_resp *w, const char *name, const char *value);
/* The same without copying: name and value (of the lengths given) are
 * kept as they are, so they must stay unchanged until the response has
 * been sent (static, or in the request's arena). */
int tern__http_resp_set_header_ref(tern_http_resp *w, const char *name, size_t name_len,
                                   const char *value, size_t value_len);
/* A response the server writes itself (400, 413, 431, ...), then close. */
int tern__http_send_error(hconn *hc, int status, bool head_only);
/* refused.c: tell on_refused about a request the server answers itself
 * with status; h is what was parsed of it (NULL: nothing usable). */
void tern__http_refused(hconn *hc, int status, const tern_http_request *h);
/* request.c */
void tern__http_req_end(tern_http_req *r);
/* peer_gone.c: once r's context exists and its body is read, the client's
 * FIN or reset cancels the context; unwatch before freeing it. */
void tern__http_req_watch_peer(tern_http_req *r);
void tern__http_req_unwatch_peer(tern_http_req *r);
/* router.c: route parameters */
int tern__http_req_add_param(tern_http_req *r, const char *name, const char *value);
/* Whether r's path is well-formed: valid percent-escapes and, decoded, no
 * NUL and valid UTF-8 (what handlers get as C strings, route parameters
 * included).  The server answers 400 to the others. */
bool tern__http_req_path_ok(tern_http_req *r);

#endif
