/*
 * mw_body_limit.c - a route's own request-body limit, below the server's.
 *
 * A declared length over the limit is refused before a byte of the body is
 * read, so an upload that could never be accepted costs the client one
 * round trip and the server nothing; a chunked body has no declared length
 * and is stopped by the request's read limit instead.
 */
#include "tern/http_mw.h"

#include <errno.h>

int tern_http_mw_body_limit(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_body_limit_options *o = opts;
    if (!o || o->max < 0)
        return -EINVAL;
    if (tern_http_req_content_length(r) > o->max)
        return tern_http_resp_error(w, 413, NULL);
    tern_http_req_set_max_body(r, o->max);
    return tern_http_next(r, w);
}
