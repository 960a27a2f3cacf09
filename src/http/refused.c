/*
 * refused.c - telling the server's owner about the requests it refused
 * itself (400, 408, 413, 414, 431, 501, 505): they never reach a handler,
 * so the access log and the metrics, which are middleware, never saw them
 * (issue 15), and a flood of malformed requests went unrecorded.  The
 * owner's hook (tern_http_server_options.on_refused) gets what the server
 * knew of the request, copied and cut, since the head may be half-parsed
 * and its strings are not terminated.
 */
#include <string.h>

#include "http/server_internal.h"

#define METHOD_MAX 32
#define TARGET_MAX 256

static void copy_cut(char *to, size_t cap, const char *from, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(to, from, n);
    to[n] = '\0';
}

void tern__http_refused(hconn *hc, int status, const tern_http_request *h)
{
    tern_http_server *s = hc->srv;
    if (!s->o.on_refused)
        return;
    char method[METHOD_MAX + 1] = "", target[TARGET_MAX + 1] = "";
    /* the parser sets the method before the target: no method, no target */
    if (h && h->method_len > 0) {
        copy_cut(method, sizeof method, h->method, h->method_len);
        if (h->target_len > 0)
            copy_cut(target, sizeof target, h->target, h->target_len);
    }
    tern_http_refusal rf = { .status = status, .method = method, .target = target,
                             .remote_addr = tern_conn_remote_addr(hc->c),
                             .start = hc->head_start };
    s->o.on_refused(&rf, s->o.on_refused_arg);
}
