/*
 * split.c - which leg of a weighted split (a canary) serves a request.
 *
 * In order: the override header naming a leg's upstream (testers reach
 * the canary on purpose), then the cookie naming one (set by us on an
 * earlier answer, or by the tester), then a draw by weight.  A draw with
 * a cookie configured sets that cookie, so a browser stays on the leg it
 * drew (sticky): a user does not flip between versions mid-session.  A
 * value that names no leg is ignored (a leg removed by a reload, say), and
 * the request draws again.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "base/rand.h"
#include "gateway/internal.h"

static gw_upstream *by_name(const gw_route *rt, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < rt->nlegs; i++)
        if (strcmp(rt->legs[i].up->name, name) == 0)
            return rt->legs[i].up;
    return NULL;
}

gw_upstream *tern__gw_split_pick(gw_route *rt, tern_http_req *r, tern_http_resp *w)
{
    gw_upstream *up = NULL;
    if (rt->split_header && (up = by_name(rt, tern_http_req_header(r, rt->split_header))))
        return up;
    if (rt->split_cookie && (up = by_name(rt, tern_http_req_cookie(r, rt->split_cookie))))
        return up;
    int draw = (int)(tern__rand64() % 100);
    for (size_t i = 0; i < rt->nlegs && !up; i++) {
        if (draw < rt->legs[i].weight)
            up = rt->legs[i].up;
        draw -= rt->legs[i].weight;
    }
    TERN_ASSERT(up != NULL);                /* the weights sum to 100 (route.c checks) */
    if (!up)
        up = rt->legs[rt->nlegs - 1].up;
    if (rt->split_cookie) {
        char c[512];
        snprintf(c, sizeof c, "%s=%s; Path=/; HttpOnly; SameSite=Lax", rt->split_cookie, up->name);
        tern_http_resp_add_header(w, "Set-Cookie", c);
    }
    return up;
}
