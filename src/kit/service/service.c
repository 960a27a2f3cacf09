/*
 * service.c - a service's life: serve, start up, become ready, wait
 * for a stop, then stop in the order that loses no request (readiness off,
 * pre-stop delay, drain, hooks in reverse order).
 *
 * Waiting for "a signal, tern_service_stop or the run's ctx ending":
 * tern_signal_wait takes a deadline and nothing else can interrupt it, so
 * the runner waits for signals in slices of STOP_POLL and looks at the
 * stop flag and the ctx between them; a programmatic stop or an ended ctx
 * is therefore seen within STOP_POLL, a signal at once.
 *
 * Hooks run one at a time, each in its own coroutine so that one past its
 * timeout can be abandoned; the state it shares with the runner (a
 * hook_run) is reference counted so that whichever finishes last frees it.
 */
#define _GNU_SOURCE
#include "tern/service.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tern/chan.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/signal.h"
#include "tern/sync.h"

#define STOP_POLL (50 * TERN_MS)
#define DEFAULT_DRAIN (10 * TERN_SEC)
#define DEFAULT_HOOK_TIMEOUT (5 * TERN_SEC)

typedef struct hook {
    char *name;
    tern_service_hook_fn *fn;
    void *arg;
} hook;

struct tern_service {
    tern_service_options o;
    tern_http_server *server;
    tern_health *health;
    hook *hooks;
    size_t nhooks, cap;
    atomic_bool stop;
    bool ran;
    int serve_rc;
    tern_waitgroup served;
};

int tern_service_new(const tern_service_options *o, tern_service **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !o->http.handler || !o->addr)
        return -EINVAL;
    tern_service *svc = calloc(1, sizeof *svc);
    if (!svc)
        return -ENOMEM;
    svc->o = *o;
    svc->o.addr = NULL;     /* the caller's string: used only here */
    if (svc->o.drain_timeout <= 0)
        svc->o.drain_timeout = DEFAULT_DRAIN;
    if (svc->o.hook_timeout <= 0)
        svc->o.hook_timeout = DEFAULT_HOOK_TIMEOUT;
    atomic_init(&svc->stop, false);
    int rc = tern_health_new(NULL, &svc->health);
    if (rc == 0)
        rc = tern_http_server_new(&svc->o.http, &svc->server);
    if (rc == 0)
        rc = tern_http_server_listen(svc->server, o->addr);
    if (rc < 0) {
        tern_service_free(svc);
        return rc;
    }
    *out = svc;
    return 0;
}

void tern_service_free(tern_service *svc)
{
    if (!svc)
        return;
    if (svc->server)
        tern_http_server_free(svc->server);
    tern_health_free(svc->health);
    for (size_t i = 0; i < svc->nhooks; i++)
        free(svc->hooks[i].name);
    free(svc->hooks);
    free(svc);
}

tern_health *tern_service_health(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    return svc->health;
}

tern_http_server *tern_service_server(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    return svc->server;
}

int tern_service_port(const tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    return tern_http_server_port(svc->server);
}

int tern_service_on_shutdown(tern_service *svc, const char *name, tern_service_hook_fn *fn,
                             void *arg)
{
    TERN_CHECK_ARG(svc);
    if (!name || !fn)
        return -EINVAL;
    if (svc->nhooks == svc->cap) {
        size_t cap = svc->cap ? svc->cap * 2 : 4;
        hook *h = realloc(svc->hooks, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        svc->hooks = h;
        svc->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    svc->hooks[svc->nhooks++] = (hook){.name = copy, .fn = fn, .arg = arg};
    return 0;
}

void tern_service_stop(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    atomic_store(&svc->stop, true);
}

/* ---- running -------------------------------------------------------------------- */

static int serve_co(void *arg)
{
    tern_service *svc = arg;
    int rc = tern_http_server_serve(svc->server, NULL);
    if (rc < 0) {
        svc->serve_rc = rc;     /* read after the waitgroup */
        tern_service_stop(svc);
    }
    tern_waitgroup_done(&svc->served);
    return 0;
}

typedef struct hook_run {
    atomic_int refs;
    tern_ctx *ctx;
    tern_chan *done;            /* one int: the hook's result */
    tern_service_hook_fn *fn;
    void *arg;
} hook_run;

static void hook_run_unref(hook_run *hr)
{
    if (atomic_fetch_sub(&hr->refs, 1) == 1) {
        tern_ctx_free(hr->ctx);
        tern_chan_free(hr->done);
        free(hr);
    }
}

static int hook_co(void *arg)
{
    hook_run *hr = arg;
    int rc = hr->fn(hr->ctx, hr->arg);
    tern_chan_try_send(hr->done, &rc);
    hook_run_unref(hr);
    return 0;
}

/* Run one hook, waiting for it no longer than timeout. */
static int run_hook(const hook *h, int64_t timeout)
{
    hook_run *hr = calloc(1, sizeof *hr);
    if (!hr)
        return -ENOMEM;
    atomic_init(&hr->refs, 2);
    hr->fn = h->fn;
    hr->arg = h->arg;
    int rc = tern_ctx_with_timeout(NULL, timeout, &hr->ctx);
    if (rc == 0)
        rc = tern_chan_new(sizeof(int), 1, &hr->done);
    if (rc == 0)
        rc = tern_go_opts(hook_co, hr, &(tern_go_options){.name = "shutdown-hook"}, NULL);
    if (rc < 0) {
        tern_ctx_free(hr->ctx);
        tern_chan_free(hr->done);
        free(hr);
        return rc;
    }
    int result;
    bool ok;
    rc = tern_chan_recv(hr->done, &result, &ok, hr->ctx);
    hook_run_unref(hr);
    return rc < 0 ? rc : result;
}

/* Until a notified signal comes, tern_service_stop is called or ctx ends. */
static void wait_for_stop(tern_service *svc, tern_ctx *ctx)
{
    bool signals = !svc->o.no_signals;
    while (!atomic_load(&svc->stop)) {
        if (ctx && tern_ctx_err(ctx) < 0) {
            tern_log_info("service stopping", TERN_LOG_STR("reason", "context ended"));
            return;
        }
        if (!signals) {
            tern_sleep(STOP_POLL);
            continue;
        }
        static const int stop_sigs[] = { SIGTERM, SIGINT };
        int sig = tern_signal_wait(stop_sigs, 2, tern_deadline_after(STOP_POLL));
        if (sig > 0) {
            tern_log_info("service stopping", TERN_LOG_STR("signal", sigabbrev_np(sig)));
            return;
        }
        if (sig != -ETIMEDOUT)
            signals = false;    /* another coroutine owns the signals: poll */
    }
    tern_log_info("service stopping", TERN_LOG_STR("reason", "stop requested"));
}

int tern_service_run(tern_service *svc, tern_ctx *ctx)
{
    TERN_CHECK_ARG(svc);
    if (svc->ran)
        return -EALREADY;
    svc->ran = true;
    if (!svc->o.no_signals) {
        static const int sigs[] = {SIGTERM, SIGINT};
        int rc = tern_signal_notify(sigs, 2);
        if (rc < 0)
            return rc;
    }
    tern_waitgroup_add(&svc->served, 1);
    int rc = tern_go_opts(serve_co, svc, &(tern_go_options){.name = "service-serve"}, NULL);
    if (rc < 0) {
        tern_waitgroup_done(&svc->served);
        return rc;
    }
    if (svc->o.start)
        rc = svc->o.start(svc->o.start_arg);
    bool was_ready = rc == 0 && !atomic_load(&svc->stop) && !(ctx && tern_ctx_err(ctx) < 0);
    if (was_ready) {
        tern_health_set_ready(svc->health, true);
        tern_log_info("service ready", TERN_LOG_STR("addr", tern_http_server_addr(svc->server)));
        wait_for_stop(svc, ctx);
    } else if (rc < 0) {
        tern_log_error("service start-up failed", TERN_LOG_STR("error", tern_strerror(rc)));
    }

    tern_health_set_ready(svc->health, false);
    /* Load balancers only need time to notice if they were sending. */
    if (was_ready && svc->o.pre_stop_delay > 0)
        tern_sleep(svc->o.pre_stop_delay);
    tern_ctx *drain_ctx;
    if (tern_ctx_with_timeout(NULL, svc->o.drain_timeout, &drain_ctx) < 0)
        tern_log_warn("service drain unbounded", TERN_LOG_STR("error", tern_strerror(-ENOMEM)));
    int drain = tern_http_server_shutdown(svc->server, drain_ctx);
    tern_ctx_free(drain_ctx);
    if (drain < 0)
        tern_log_warn("service drain deadline passed", TERN_LOG_STR("error", tern_strerror(drain)));
    tern_waitgroup_wait(&svc->served, NULL);
    for (size_t i = svc->nhooks; i-- > 0;) {
        int hr = run_hook(&svc->hooks[i], svc->o.hook_timeout);
        if (hr < 0)
            tern_log_warn("shutdown hook failed", TERN_LOG_STR("hook", svc->hooks[i].name),
                          TERN_LOG_STR("error", tern_strerror(hr)));
    }
    tern_log_info("service stopped");
    /* The caller is about to exit, and lines still in the ring would be
     * lost with the process. */
    tern_ctx *flush;
    if (tern_ctx_with_timeout(NULL, TERN_SEC, &flush) == 0) {
        tern_log_flush(flush);
        tern_ctx_free(flush);
    }
    if (rc == 0)
        rc = svc->serve_rc;
    return rc;
}
