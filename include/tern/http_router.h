/*
 * tern/http_router.h - a radix-tree request router.
 *
 * Patterns are paths with named parameters and a catch-all:
 *     "/users/:id"   matches /users/42 (param "id" = "42");
 *     "/static/" followed by "*path" (a catch-all, last in a pattern)
 *                    matches /static/css/a.css ("path" = "css/a.css").
 * A static segment beats a parameter, which beats a catch-all, whatever
 * the order of registration; matching backtracks, so /users/new and
 * /users/:id coexist.  A path that matches no pattern gets 404; one that
 * matches with another method gets 405 and an Allow header.  HEAD is
 * served by the GET route unless a HEAD route exists.  Paths are matched
 * percent-decoded.
 *
 * Groups share a prefix and middleware:
 *     tern_http_group *api;
 *     int rc = tern_http_group_new(tern_http_router_root(rt), "/api", &api);
 *     tern_http_group_use(api, auth, NULL);
 *     tern_http_group_handle(api, "GET", "/users/:id", get_user, NULL);
 *     tern_http_group_handle(api, "GET", "", api_index, NULL);   // "/api" itself
 * In a group, pattern "" is the group's prefix itself ("/api") and "/"
 * is the prefix with a slash ("/api/"); they are different routes.
 * A request runs the root's middleware, then each enclosing group's, then
 * the handler.  The root's middleware also runs for 404 and 405 answers.
 * Add middleware to a group before routes: afterwards it is -EBUSY.
 *
 * Set up routes before serving; lookups are then lock-free and safe from
 * any number of coroutines.
 *
 * Ownership: the router is the caller's (tern_http_router_free, after the
 * server using it is freed) and owns its groups, which live as long as
 * it.  Patterns and prefixes are copied; handler and middleware args must
 * outlive the router.  A NULL router or group aborts with a message naming
 * the function.
 */
#ifndef TERN_HTTP_ROUTER_H
#define TERN_HTTP_ROUTER_H

#include "tern/http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_http_router tern_http_router;
typedef struct tern_http_group tern_http_group;

typedef struct tern_http_router_options {
    /* The answer for a path no route matches (runs after the root's
     * middleware).  NULL: 404 with "404 Not Found\n" as text. */
    tern_http_handler_fn *not_found;
    void *not_found_arg;
} tern_http_router_options;

/* A router; opts may be NULL (the defaults) and is copied.  *out is the
 * caller's to tern_http_router_free; NULL on failure (-ENOMEM). */
int tern_http_router_new(const tern_http_router_options *opts, tern_http_router **out);
/* Release the router and its groups.  NULL is a no-op. */
void tern_http_router_free(tern_http_router *rt);

/* The router's own group (prefix ""). */
tern_http_group *tern_http_router_root(tern_http_router *rt);
/* A group under parent with a prefix ("/api"; no trailing '/'), owned by
 * the router.  0, -EINVAL for a malformed prefix, -ENOMEM; *out is NULL
 * on failure. */
int tern_http_group_new(tern_http_group *parent, const char *prefix, tern_http_group **out);
/* Add middleware mw (with arg) to g, run in the order added.  0,
 * -EINVAL for a NULL mw, -EBUSY once g (or a group under it) has routes,
 * -ENOMEM. */
int tern_http_group_use(tern_http_group *g, tern_http_handler_fn *mw, void *arg);
/* Register a route.  method NULL or "*": any method.  -EINVAL for a
 * malformed pattern (not starting with '/' and not "" in a group with a
 * prefix, an empty or mid-segment
 * parameter, a catch-all not at the end), -EEXIST for a duplicate
 * method+pattern or a parameter named differently at the same place as
 * an existing one, -ENOMEM. */
int tern_http_group_handle(tern_http_group *g, const char *method, const char *pattern,
                           tern_http_handler_fn *handler, void *arg);

/* The same on the root group. */
int tern_http_router_use(tern_http_router *rt, tern_http_handler_fn *mw, void *arg);
int tern_http_router_handle(tern_http_router *rt, const char *method, const char *pattern,
                            tern_http_handler_fn *handler, void *arg);

/* The router as a handler: pass it as tern_http_server_options.handler
 * with the router as arg. */
int tern_http_router_serve(tern_http_req *r, tern_http_resp *w, void *router);

/* The pattern that matched this request ("/users/:id"), for metrics and
 * logs; NULL before routing or when nothing matched. */
const char *tern_http_req_route(const tern_http_req *r);

#ifdef __cplusplus
}
#endif
#endif
