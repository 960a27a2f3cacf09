/*
 * tern/debug.h - debug endpoints, as Go's net/http/pprof and expvar:
 *     <prefix>/coroutines      every coroutine (tern_runtime_dump), text/plain
 *     <prefix>/vars            runtime statistics and application variables,
 *                              one JSON object
 *     <prefix>/pprof/profile   a CPU profile over ?seconds=N (default 30),
 *                              gzipped profile.proto: `go tool pprof`
 *                              reads it
 *
 *     tern_debug_publish("queue", queue_var, q);   // in /debug/vars as "queue"
 *     tern_debug_mount(rt, "/debug");
 *
 * These endpoints reveal the program's internals and the profiler costs
 * CPU: mount them on an internal listener (tern_service's admin_addr
 * does), or behind authentication.  A published variable must not hold
 * secrets: pass URLs through tern_http_url_redact (tern/http_parse.h).
 *
 * The CPU profile samples with setitimer(ITIMER_PROF) at 100 Hz: each
 * SIGPROF records the interrupted thread's stack by walking frame
 * pointers (tern builds with -fno-omit-frame-pointer; frames of code built
 * without them are cut short), into memory allocated before the profile
 * starts.  One profile runs at a time, and the process's SIGPROF handler
 * and ITIMER_PROF timer belong to the profiler while it runs.
 */
#ifndef TERN_DEBUG_H
#define TERN_DEBUG_H

#include "tern/context.h"
#include "tern/http.h"
#include "tern/http_router.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- variables ---------------------------------------------------------------- */

/* A variable's current value, a new reference (NULL: the variable is left
 * out this time).  Called from the /vars handler's coroutine; may park. */
typedef json_t *tern_debug_var_fn(void *arg);

/* Publish a variable under name (copied).  -EINVAL for an empty name or
 * NULL fn, -EEXIST for a name in use ("runtime" and "csp" are tern's), -ENOMEM.  Any
 * thread; the registry is process-wide. */
int tern_debug_publish(const char *name, tern_debug_var_fn *fn, void *arg);
/* Withdraw a variable: 0, or -ENOENT. */
int tern_debug_unpublish(const char *name);

/* Every variable, "runtime" (tern_runtime_stats: totals and "per_proc")
 * and "csp" (tern_csp_stats: live channels, contexts, timers, pools),
 * as one object in *out: a new reference, the caller's to json_decref.
 * 0, or -ENOMEM (*out NULL). */
int tern_debug_vars_json(json_t **out);

/* ---- CPU profiles --------------------------------------------------------------- */

/* Sampling rate of CPU profiles. */
#define TERN_DEBUG_PROFILE_HZ 100

/* Profile the process's CPU use for `ns` (the calling coroutine sleeps
 * meanwhile) and return the gzipped profile.proto in *out (malloc'd, *len
 * bytes; yours to free).  When ctx (NULL: none) ends first the profile
 * stops at once and is thrown away: -ETIMEDOUT or -ECANCELED, *out NULL
 * (the pprof handler passes the request's context, so a client that goes
 * away ends its profile).  -EBUSY if a profile is running, -EINVAL for
 * ns <= 0, -ENOMEM, -errno from setitimer/sigaction.  From a coroutine. */
int tern_debug_cpu_profile(int64_t ns, void **out, size_t *len, tern_ctx *ctx);

/* ---- handlers --------------------------------------------------------------------- */

/* tern_http_handler_fn; arg unused. */
int tern_debug_coroutines(tern_http_req *r, tern_http_resp *w, void *arg);
int tern_debug_vars(tern_http_req *r, tern_http_resp *w, void *arg);
/* ?seconds=N, 1..3600, default 30; 400 for anything else, 409 while
 * another profile runs. */
int tern_debug_pprof_profile(tern_http_req *r, tern_http_resp *w, void *arg);

/* Route GET <prefix>/coroutines, <prefix>/vars and <prefix>/pprof/profile
 * (prefix NULL: "/debug").  Errors as tern_http_router_handle, -EINVAL for a
 * prefix not starting with '/' or ending with one, -ENAMETOOLONG. */
int tern_debug_mount(tern_http_router *rt, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
