/*
 * mw_cors.c - cross-origin resource sharing, server side (Fetch standard,
 * "CORS protocol").
 *
 * The browser enforces CORS; the server only says which origins may read
 * its answers.  So a disallowed origin is not refused here: its response
 * simply carries no Access-Control-* fields and the browser withholds it.
 * A preflight is the one request answered here, because it is a question
 * about the route (may I send this method and these headers?) that no
 * handler should have to know about.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const any_origin[] = {"*", NULL};

/* The Access-Control-Allow-Origin value for origin (NULL: the request had
 * none), or NULL.  "*" goes even on requests without Origin, so that a
 * cache may hand that one response to every origin. */
static const char *allow_origin(const tern_http_cors_options *o, const char *origin)
{
    const char *const *list = o->origins ? o->origins : any_origin;
    for (; *list; list++) {
        if (strcmp(*list, "*") == 0)
            /* "*" cannot carry credentials: the browser would refuse it */
            return o->credentials ? origin : "*";
        /* scheme and host are case-insensitive; browsers send them lower */
        if (origin && strcasecmp(*list, origin) == 0)
            return origin;
    }
    return NULL;
}

static int preflight(tern_http_req *r, tern_http_resp *w, const tern_http_cors_options *o,
                     const char *allow)
{
    int rc = tern_http_resp_add_header(w, "Vary", "Access-Control-Request-Method");
    if (rc == 0)
        rc = tern_http_resp_add_header(w, "Vary", "Access-Control-Request-Headers");
    if (rc == 0 && allow) {
        const char *hdrs = o->headers ? o->headers
                                      : tern_http_req_header(r, "Access-Control-Request-Headers");
        rc = tern_http_resp_set_header(w, "Access-Control-Allow-Methods",
                                       o->methods ? o->methods
                                                  : "GET, HEAD, POST, PUT, PATCH, DELETE");
        if (rc == 0 && hdrs && *hdrs)
            rc = tern_http_resp_set_header(w, "Access-Control-Allow-Headers", hdrs);
        if (rc == 0 && o->max_age > 0) {
            char age[24];
            /* the header counts whole seconds: round down */
            snprintf(age, sizeof age, "%lld", (long long)(o->max_age / 1000000000));
            rc = tern_http_resp_set_header(w, "Access-Control-Max-Age", age);
        }
    }
    if (rc == 0)
        rc = tern_http_resp_set_status(w, 204);
    return rc;
}

int tern_http_mw_cors(tern_http_req *r, tern_http_resp *w, void *opts)
{
    static const tern_http_cors_options defaults = {0};
    const tern_http_cors_options *o = opts ? opts : &defaults;
    const char *origin = tern_http_req_header(r, "Origin");
    bool is_preflight = origin && strcmp(tern_http_req_method(r), "OPTIONS") == 0 &&
                        tern_http_req_header(r, "Access-Control-Request-Method");
    const char *allow = allow_origin(o, origin);

    /* Only a literal "*" is the same answer for every origin; anything
     * else (an echoed origin, or no field for a stranger or a same-origin
     * request) differs by Origin, and a cache must know. */
    bool same_for_all = allow && strcmp(allow, "*") == 0;
    int rc = same_for_all ? 0 : tern_http_resp_add_header(w, "Vary", "Origin");
    if (rc == 0 && allow) {
        rc = tern_http_resp_set_header(w, "Access-Control-Allow-Origin", allow);
        if (rc == 0 && o->credentials)
            rc = tern_http_resp_set_header(w, "Access-Control-Allow-Credentials", "true");
        if (rc == 0 && o->expose_headers && !is_preflight)
            rc = tern_http_resp_set_header(w, "Access-Control-Expose-Headers", o->expose_headers);
    }
    if (rc < 0)
        return rc;
    if (is_preflight)
        return preflight(r, w, o, allow);
    return tern_http_next(r, w);
}
