/*
 * debug.c - the /debug/coroutines and /debug/vars endpoints, the variable
 * registry behind /debug/vars (Go's expvar), and tern_debug_mount.
 *
 * The registry is a small array under a pthread mutex: publishing is rare
 * and may happen from any thread, and a /vars request copies the entries
 * out before calling them, so a variable function that parks never holds
 * the lock.
 */
#define _GNU_SOURCE
#include "tern/debug.h"

#include "base/check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "tern/chan.h"
#include "tern/runtime.h"

typedef struct var {
    char *name;
    tern_debug_var_fn *fn;
    void *arg;
} var;

static pthread_mutex_t vars_lock = PTHREAD_MUTEX_INITIALIZER;
static var *vars;
static size_t nvars, capvars;

int tern_debug_publish(const char *name, tern_debug_var_fn *fn, void *arg)
{
    if (!name || !*name || !fn)
        return -EINVAL;
    if (!strcmp(name, "runtime") || !strcmp(name, "csp"))
        return -EEXIST;
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&vars_lock);
    for (size_t i = 0; i < nvars && rc == 0; i++)
        if (!strcmp(vars[i].name, name))
            rc = -EEXIST;
    if (rc == 0 && nvars == capvars) {
        size_t cap = capvars ? capvars * 2 : 8;
        var *v = realloc(vars, cap * sizeof *v);
        if (v) {
            vars = v;
            capvars = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        vars[nvars++] = (var){.name = copy, .fn = fn, .arg = arg};
    pthread_mutex_unlock(&vars_lock);
    if (rc < 0)
        free(copy);
    return rc;
}

int tern_debug_unpublish(const char *name)
{
    char *gone = NULL;
    pthread_mutex_lock(&vars_lock);
    for (size_t i = 0; i < nvars; i++) {
        if (!strcmp(vars[i].name, name)) {
            gone = vars[i].name;
            memmove(&vars[i], &vars[i + 1], (nvars - i - 1) * sizeof *vars);
            nvars--;
            break;
        }
    }
    pthread_mutex_unlock(&vars_lock);
    free(gone);
    return gone ? 0 : -ENOENT;
}

/* ---- /vars ------------------------------------------------------------------------ */

#define MAX_PROCS 256

static json_t *runtime_json(void)
{
    struct tern_runtime_stats st;
    tern_runtime_proc_stats *ps = calloc(MAX_PROCS, sizeof *ps);
    if (!ps)
        return NULL;
    int n = tern_runtime_stats(&st, ps, MAX_PROCS);
    if (n < 0) {
        free(ps);
        return json_object();   /* no runtime: nothing to say */
    }
    json_t *per = json_array();
    for (int i = 0; per && i < n && i < MAX_PROCS; i++)
        json_array_append_new(per, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                                             "switches", (json_int_t)ps[i].switches,
                                             "spawned", (json_int_t)ps[i].spawned,
                                             "steals", (json_int_t)ps[i].steals,
                                             "stolen", (json_int_t)ps[i].stolen,
                                             "wakeups", (json_int_t)ps[i].wakeups,
                                             "runq", (json_int_t)ps[i].runq,
                                             "timers", (json_int_t)ps[i].timers));
    free(ps);
    json_t *o = json_pack(
        "{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I}",
        "procs", st.procs, "coroutines", (json_int_t)st.alive, "running",
        (json_int_t)st.running, "runnable", (json_int_t)st.runnable, "parked",
        (json_int_t)st.parked, "spawned_total", (json_int_t)st.spawned_total, "switches",
        (json_int_t)st.switches, "steals", (json_int_t)st.steals, "wakeups",
        (json_int_t)st.wakeups, "global_runq", (json_int_t)st.global_runq, "fd_waiters",
        (json_int_t)st.fd_waiters, "timers", (json_int_t)st.timers, "blocking_threads",
        (json_int_t)st.blocking_threads, "blocking_queued", (json_int_t)st.blocking_queued,
        "blocking_running", (json_int_t)st.blocking_running, "stacks_mapped",
        (json_int_t)st.stacks_mapped, "stack_bytes_cached", (json_int_t)st.stack_bytes_cached,
        "stack_guard", st.stack_guard ? st.stack_guard : "", "long_runs",
        (json_int_t)st.long_runs);
    if (o) {
        json_object_set_new(o, "blocked_syscalls", json_integer((json_int_t)st.blocked_syscalls));
        json_object_set_new(o, "monitor_ticks", json_integer((json_int_t)st.monitor_ticks));
    }
    if (!o || !per || json_object_set_new(o, "per_proc", per) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int tern_debug_vars_json(json_t **result)
{
    TERN_CHECK_ARG(result);
    *result = NULL;
    json_t *out = json_object();
    json_t *rt = runtime_json();
    if (!out || !rt || json_object_set_new(out, "runtime", rt) < 0) {
        json_decref(out);
        return -ENOMEM;
    }
    /* live csp objects: a count that only grows is a leak */
    struct tern_csp_stats cs;
    tern_csp_stats(&cs);
    json_t *csp = json_pack("{s:I,s:I,s:I,s:I}", "chans", (json_int_t)cs.chans, "contexts",
                            (json_int_t)cs.contexts, "timers", (json_int_t)cs.timers, "pools",
                            (json_int_t)cs.pools);
    if (!csp || json_object_set_new(out, "csp", csp) < 0) {
        json_decref(out);
        return -ENOMEM;
    }
    pthread_mutex_lock(&vars_lock);
    size_t n = nvars;
    var *copy = malloc((n ? n : 1) * sizeof *copy);
    for (size_t i = 0; copy && i < n; i++) {
        copy[i] = vars[i];
        if (!(copy[i].name = strdup(vars[i].name)))
            n = i;
    }
    pthread_mutex_unlock(&vars_lock);
    if (!copy) {
        json_decref(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = copy[i].fn(copy[i].arg);
        if (v)
            json_object_set_new(out, copy[i].name, v);
        free(copy[i].name);
    }
    free(copy);
    *result = out;
    return 0;
}

int tern_debug_vars(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    json_t *v;
    int rc = tern_debug_vars_json(&v);
    if (rc < 0)
        return rc;
    tern_http_resp_set_header(w, "Cache-Control", "no-store");
    rc = tern_http_resp_json(w, 200, v);
    json_decref(v);
    return rc;
}

/* ---- /coroutines ---------------------------------------------------------------- */

int tern_debug_coroutines(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return -errno;
    tern_runtime_dump(f);
    if (fclose(f) != 0) {
        free(text);
        return -ENOMEM;
    }
    tern_http_resp_set_header(w, "Cache-Control", "no-store");
    int rc = tern_http_resp_send(w, 200, "text/plain; charset=utf-8", text, len);
    free(text);
    return rc;
}

/* ---- mounting ---------------------------------------------------------------------- */

int tern_debug_mount(tern_http_router *rt, const char *prefix)
{
    static const struct {
        const char *path;
        tern_http_handler_fn *fn;
    } routes[] = {
        {"/coroutines", tern_debug_coroutines},
        {"/vars", tern_debug_vars},
        {"/pprof/profile", tern_debug_pprof_profile},
    };
    if (!prefix)
        prefix = "/debug";
    size_t pl = strlen(prefix);
    if (prefix[0] != '/' || prefix[pl - 1] == '/')
        return -EINVAL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char pattern[256];
        if (snprintf(pattern, sizeof pattern, "%s%s", prefix, routes[i].path) >=
            (int)sizeof pattern)
            return -ENAMETOOLONG;
        int rc = tern_http_router_handle(rt, "GET", pattern, routes[i].fn, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}
