/*
 * router.c - the radix tree behind tern_http_router.
 *
 * Static text is stored on edges compressed as in a radix tree (a node's
 * label is the longest run shared by everything below it); a node may
 * also have one parameter child (":name", one path segment) and one
 * catch-all child ("*name", the rest).  Lookup tries static, then
 * parameter, then catch-all, backtracking on failure, so priority never
 * depends on registration order.  Each node holds its routes, one per
 * method, with the flattened middleware chain ready to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server_internal.h"
#include "tern/http_router.h"

typedef struct route {
    char *method;               /* NULL: any */
    char *pattern;
    tern_http_link *chain;      /* the route's part: group middleware + handler */
    size_t chain_len;
    tern_http_link *chain_mem;  /* the allocation (root links first) */
} route;

typedef struct node {
    char *label;
    size_t label_len;
    struct node **kids;         /* static children, by first byte */
    size_t nkids;
    struct node *param;
    char *param_name;
    struct node *wild;
    char *wild_name;
    route *routes;
    size_t nroutes;
} node;

struct tern_http_group {
    tern_http_router *rt;
    tern_http_group *parent;
    char *prefix;               /* full, from the root */
    tern_http_link *mws;
    size_t nmws;
    bool has_routes;
    tern_http_group *all_next;  /* every group, for freeing */
};

struct tern_http_router {
    node root;
    tern_http_group rootg;
    tern_http_group *groups;
    tern_http_link not_found;
};

static const char route_key;    /* request value: the matched pattern */

static int default_not_found(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_error(w, 404, NULL);
}

int tern_http_router_new(const tern_http_router_options *opts, tern_http_router **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_http_router *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->rootg.rt = rt;
    rt->rootg.prefix = strdup("");
    if (!rt->rootg.prefix) {
        free(rt);
        return -ENOMEM;
    }
    if (opts && opts->not_found)
        rt->not_found = (tern_http_link){ opts->not_found, opts->not_found_arg };
    else
        rt->not_found = (tern_http_link){ default_not_found, NULL };
    *out = rt;
    return 0;
}

static void node_free(node *n, bool self)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i], true);
    free(n->kids);
    node_free(n->param, true);
    node_free(n->wild, true);
    free(n->param_name);
    free(n->wild_name);
    for (size_t i = 0; i < n->nroutes; i++) {
        free(n->routes[i].method);
        free(n->routes[i].pattern);
        free(n->routes[i].chain_mem);
    }
    free(n->routes);
    free(n->label);
    if (self)
        free(n);
}

void tern_http_router_free(tern_http_router *rt)
{
    if (!rt)
        return;
    node_free(&rt->root, false);
    for (tern_http_group *g = rt->groups, *n; g; g = n) {
        n = g->all_next;
        free(g->prefix);
        free(g->mws);
        free(g);
    }
    free(rt->rootg.prefix);
    free(rt->rootg.mws);
    free(rt);
}

tern_http_group *tern_http_router_root(tern_http_router *rt)
{
    TERN_CHECK_ARG(rt);
    return &rt->rootg;
}

int tern_http_group_new(tern_http_group *parent, const char *prefix, tern_http_group **out)
{
    TERN_CHECK_ARG(parent);
    TERN_CHECK_ARG(out);
    *out = NULL;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl && (prefix[0] != '/' || prefix[pl - 1] == '/'))
        return -EINVAL;
    tern_http_group *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    size_t ppl = strlen(parent->prefix);
    g->prefix = malloc(ppl + pl + 1);
    if (!g->prefix) {
        free(g);
        return -ENOMEM;
    }
    memcpy(g->prefix, parent->prefix, ppl);
    memcpy(g->prefix + ppl, prefix ? prefix : "", pl + 1);
    g->rt = parent->rt;
    g->parent = parent;
    g->all_next = g->rt->groups;
    g->rt->groups = g;
    *out = g;
    return 0;
}

int tern_http_group_use(tern_http_group *g, tern_http_handler_fn *mw, void *arg)
{
    TERN_CHECK_ARG(g);
    if (!mw)
        return -EINVAL;
    if (g->has_routes)
        return -EBUSY;
    tern_http_link *m = realloc(g->mws, (g->nmws + 1) * sizeof *m);
    if (!m)
        return -ENOMEM;
    m[g->nmws++] = (tern_http_link){ mw, arg };
    g->mws = m;
    return 0;
}

/* ---- insertion ---------------------------------------------------------- */

static node *new_node(const char *label, size_t len)
{
    node *n = calloc(1, sizeof *n);
    if (!n || !(n->label = strndup(label, len))) {
        free(n);
        return NULL;
    }
    n->label_len = len;
    return n;
}

static int add_kid(node *parent, node *kid)
{
    /* lookup takes the first kid whose first byte matches and never tries
     * another: static kids have a label, each starting with its own byte */
    TERN_ASSERT(kid->label_len > 0 && kid->label[0] != '\0');
    for (size_t i = 0; i < parent->nkids; i++)
        TERN_ASSERT(parent->kids[i]->label[0] != kid->label[0]);
    node **k = realloc(parent->kids, (parent->nkids + 1) * sizeof *k);
    if (!k)
        return -ENOMEM;
    k[parent->nkids++] = kid;
    parent->kids = k;
    return 0;
}

/* Follow or create the static run s[0..len) below n. */
static node *insert_static(node *n, const char *s, size_t len)
{
    while (len > 0) {
        node *kid = NULL;
        for (size_t i = 0; i < n->nkids; i++)
            if (n->kids[i]->label[0] == s[0]) {
                kid = n->kids[i];
                break;
            }
        if (!kid) {
            kid = new_node(s, len);
            if (!kid || add_kid(n, kid) < 0) {
                node_free(kid, true);
                return NULL;
            }
            return kid;
        }
        size_t l = 0;
        while (l < len && l < kid->label_len && s[l] == kid->label[l])
            l++;
        TERN_ASSERT(l > 0);     /* the first byte matched */
        if (l < kid->label_len) {
            /* split: kid keeps its tail under a new node holding the common part */
            node *tail = new_node(kid->label + l, kid->label_len - l);
            if (!tail)
                return NULL;
            tail->kids = kid->kids, tail->nkids = kid->nkids;
            tail->param = kid->param, tail->param_name = kid->param_name;
            tail->wild = kid->wild, tail->wild_name = kid->wild_name;
            tail->routes = kid->routes, tail->nroutes = kid->nroutes;
            kid->kids = NULL, kid->nkids = 0;
            kid->param = NULL, kid->param_name = NULL;
            kid->wild = NULL, kid->wild_name = NULL;
            kid->routes = NULL, kid->nroutes = 0;
            kid->label[l] = '\0';
            kid->label_len = l;
            if (add_kid(kid, tail) < 0) {
                node_free(tail, true);
                return NULL;
            }
        }
        n = kid;
        s += l;
        len -= l;
    }
    return n;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':' || s[i] == '*')
            return 0;
    return 1;
}

static int build_chain(tern_http_group *g, tern_http_handler_fn *h, void *arg, route *r)
{
    size_t n = 1;
    for (tern_http_group *x = g; x; x = x->parent)
        n += x->nmws;
    tern_http_link *c = malloc(n * sizeof *c);
    if (!c)
        return -ENOMEM;
    size_t i = n - 1;
    c[i] = (tern_http_link){ h, arg };
    for (tern_http_group *x = g; x; x = x->parent)
        for (size_t j = x->nmws; j-- > 0;)
            c[--i] = x->mws[j];
    TERN_ASSERT(i == 0 && g->rt->rootg.nmws < n);
    /* the root's middleware runs around the whole router, not per route */
    r->chain_mem = c;
    r->chain = c + g->rt->rootg.nmws;
    r->chain_len = n - g->rt->rootg.nmws;
    return 0;
}

int tern_http_group_handle(tern_http_group *g, const char *method, const char *pattern,
                           tern_http_handler_fn *handler, void *arg)
{
    TERN_CHECK_ARG(g);
    /* "" names the group's own prefix ("/notes" in group "/notes"); the
     * root has none, so there it is malformed like any pattern without
     * its leading '/' */
    if (!pattern || !handler || (pattern[0] != '/' && (pattern[0] || !g->prefix[0])))
        return -EINVAL;
    if (method && !strcmp(method, "*"))
        method = NULL;
    size_t full_len = strlen(g->prefix) + strlen(pattern);
    char *full = malloc(full_len + 1);
    if (!full)
        return -ENOMEM;
    strcpy(full, g->prefix);
    strcat(full, pattern);
    int rc = -EINVAL;
    node *n = &g->rt->root;
    const char *p = full;
    while (*p) {
        size_t run = strcspn(p, ":*");
        if (run > 0) {
            n = insert_static(n, p, run);
            if (!n) {
                rc = -ENOMEM;
                goto fail;
            }
            p += run;
            continue;
        }
        if (p == full || p[-1] != '/')
            goto fail;                  /* a parameter must start a segment */
        size_t nl = strcspn(p + 1, "/");
        if (!valid_name(p + 1, nl))
            goto fail;
        char **namep = p[0] == ':' ? &n->param_name : &n->wild_name;
        node **kidp = p[0] == ':' ? &n->param : &n->wild;
        if (p[0] == '*' && p[1 + nl] != '\0')
            goto fail;                  /* catch-all only at the end */
        if (*kidp) {
            if (strlen(*namep) != nl || strncmp(*namep, p + 1, nl)) {
                rc = -EEXIST;
                goto fail;
            }
        } else {
            *namep = strndup(p + 1, nl);
            *kidp = new_node("", 0);
            if (!*namep || !*kidp) {
                rc = -ENOMEM;
                goto fail;
            }
        }
        TERN_ASSERT(*namep && (*kidp)->label_len == 0);
        n = *kidp;
        p += 1 + nl;
    }
    for (size_t i = 0; i < n->nroutes; i++) {
        const char *m = n->routes[i].method;
        if ((!m && !method) || (m && method && !strcmp(m, method))) {
            rc = -EEXIST;
            goto fail;
        }
    }
    route r = { .pattern = full };
    if (method && !(r.method = strdup(method))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = build_chain(g, handler, arg, &r)) < 0) {
        free(r.method);
        goto fail;
    }
    route *rs = realloc(n->routes, (n->nroutes + 1) * sizeof *rs);
    if (!rs) {
        free(r.method);
        free(r.chain_mem);
        rc = -ENOMEM;
        goto fail;
    }
    rs[n->nroutes++] = r;
    n->routes = rs;
    for (tern_http_group *x = g; x; x = x->parent)
        x->has_routes = true;
    return 0;
fail:
    free(full);
    return rc;
}

int tern_http_router_use(tern_http_router *rt, tern_http_handler_fn *mw, void *arg)
{
    TERN_CHECK_ARG(rt);
    return tern_http_group_use(&rt->rootg, mw, arg);
}

int tern_http_router_handle(tern_http_router *rt, const char *method, const char *pattern,
                            tern_http_handler_fn *handler, void *arg)
{
    TERN_CHECK_ARG(rt);
    return tern_http_group_handle(&rt->rootg, method, pattern, handler, arg);
}

/* ---- lookup ------------------------------------------------------------- */

typedef struct match {
    const char *method;         /* NULL: any route will do (for 405) */
    bool is_head;
    const route *found;
    const node *found_node;
    /* parameters as spans of the path */
    const char *names[HTTP_MAX_PARAMS];
    const char *vals[HTTP_MAX_PARAMS];
    size_t lens[HTTP_MAX_PARAMS];
    size_t n;
} match;

static const route *pick(const node *n, match *m)
{
    if (n->nroutes == 0)
        return NULL;
    if (!m->method)
        return &n->routes[0];
    const route *any = NULL, *get = NULL;
    for (size_t i = 0; i < n->nroutes; i++) {
        const route *r = &n->routes[i];
        if (!r->method)
            any = r;
        else if (!strcmp(r->method, m->method))
            return r;
        else if (m->is_head && !strcmp(r->method, "GET"))
            get = r;
    }
    return get ? get : any;
}

static bool lookup(const node *n, const char *p, match *m)
{
    TERN_ASSERT(m->n <= HTTP_MAX_PARAMS);
    TERN_ASSERT(!n->param == !n->param_name && !n->wild == !n->wild_name);
    if (*p == '\0') {
        const route *r = pick(n, m);
        if (r) {
            m->found = r;
            m->found_node = n;
            return true;
        }
        /* "/static/" matches a catch-all right after it, with an empty rest */
        if (n->wild && (r = pick(n->wild, m)) && m->n < HTTP_MAX_PARAMS) {
            m->names[m->n] = n->wild_name, m->vals[m->n] = p, m->lens[m->n++] = 0;
            m->found = r;
            m->found_node = n->wild;
            return true;
        }
        return false;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        const node *k = n->kids[i];
        if (k->label[0] == *p) {
            if (!strncmp(p, k->label, k->label_len) && lookup(k, p + k->label_len, m))
                return true;
            break;
        }
    }
    if (n->param && *p != '/' && m->n < HTTP_MAX_PARAMS) {
        size_t seg = strcspn(p, "/");
        size_t saved = m->n;
        m->names[m->n] = n->param_name, m->vals[m->n] = p, m->lens[m->n++] = seg;
        if (lookup(n->param, p + seg, m))
            return true;
        m->n = saved;
    }
    if (n->wild && m->n < HTTP_MAX_PARAMS) {
        const route *r = pick(n->wild, m);
        if (r) {
            m->names[m->n] = n->wild_name, m->vals[m->n] = p, m->lens[m->n++] = strlen(p);
            m->found = r;
            m->found_node = n->wild;
            return true;
        }
    }
    return false;
}

static int method_not_allowed(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const node *n = arg;
    char allow[256];
    size_t len = 0;
    bool get = false, head = false;
    allow[0] = '\0';
    for (size_t i = 0; i < n->nroutes && len < sizeof allow - 16; i++) {
        const char *m = n->routes[i].method;
        TERN_ASSERT(m != NULL);     /* an any-method route would have matched */
        get |= !strcmp(m, "GET");
        head |= !strcmp(m, "HEAD");
        len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s", len ? ", " : "", m);
    }
    if (get && !head && len < sizeof allow - 8)
        snprintf(allow + len, sizeof allow - len, ", HEAD");
    (void)r;
    tern_http_resp_set_header(w, "Allow", allow);
    return tern_http_resp_error(w, 405, NULL);
}

static int dispatch(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_http_router *rt = arg;
    const char *path = tern_http_req_path(r);
    match m;
    m.method = tern_http_req_method(r);
    m.is_head = tern_http_req_is_head(r);
    m.found = NULL;
    m.n = 0;
    if (!lookup(&rt->root, path, &m)) {
        m.method = NULL;
        m.n = 0;
        if (lookup(&rt->root, path, &m))
            return tern_http_run_chain(r, w, &(tern_http_link){ method_not_allowed, (void *)m.found_node }, 1);
        return tern_http_run_chain(r, w, &rt->not_found, 1);
    }
    TERN_ASSERT(m.found && m.n <= HTTP_MAX_PARAMS);
    for (size_t i = 0; i < m.n; i++) {
        char *v = tern_http_req_alloc(r, m.lens[i] + 1);
        if (!v)
            return -ENOMEM;
        memcpy(v, m.vals[i], m.lens[i]);
        v[m.lens[i]] = '\0';
        tern__http_req_add_param(r, m.names[i], v);
    }
    tern_http_req_set_value(r, &route_key, m.found->pattern);
    return tern_http_run_chain(r, w, m.found->chain, m.found->chain_len);
}

int tern_http_router_serve(tern_http_req *r, tern_http_resp *w, void *router)
{
    TERN_CHECK_ARG(router);
    tern_http_router *rt = router;
    if (rt->rootg.nmws == 0)
        return dispatch(r, w, rt);
    /* root middleware, then the dispatcher as the chain's last link */
    size_t n = rt->rootg.nmws + 1;
    tern_http_link chain[n];
    memcpy(chain, rt->rootg.mws, rt->rootg.nmws * sizeof *chain);
    chain[n - 1] = (tern_http_link){ dispatch, rt };
    return tern_http_run_chain(r, w, chain, n);
}

const char *tern_http_req_route(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return tern_http_req_value(r, &route_key);
}
