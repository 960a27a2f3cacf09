/*
 * service.c - a service's life: serve, start up, become ready, wait
 * for a stop, then stop in the order that loses no request (readiness off,
 * pre-stop delay, drain, hooks in reverse order).
 *
 * Waiting for "a signal, tern_service_stop or the run's ctx ending" costs
 * no wake-up: every stop request (tern_service_stop from any thread, a
 * failed serve, or a SIGTERM/SIGINT that the signal coroutine takes with
 * no deadline) counts itself and cancels stop_req, and the runner waits
 * on stop_req's done channel bounded by the run's ctx.  A second request
 * cancels `hurry` instead, the parent of every wait of the stop (the
 * pre-stop delay, the drain, the hooks' contexts): an operator who asks
 * twice gets out at once, as a Go program usually does.  At the end the
 * signal coroutine is told to leave (tern__signal_interrupt).  Waiting in
 * slices (50 ms, and 10 ms while stopping) woke an idle service 20 to 100
 * times a second, and kept the runtime's monitor from its idle sleep.
 *
 * Hooks run one at a time, each in its own coroutine so that one past its
 * timeout can be abandoned; the state it shares with the runner (a
 * hook_run) is reference counted so that whichever finishes last frees it.
 *
 * The server's connection counts are metrics read at scrape time from the
 * running services' servers (conn_metrics.c).
 *
 * The admin listener (admin_addr) is a second server with its own router,
 * the /debug endpoints and the probes mounted: the debug endpoints reveal the
 * program's internals and cost CPU, so they do not belong on the public
 * port (issue 15).  It serves from the start and through the main drain
 * (a stuck drain is what /debug/coroutines is for), then gets ADMIN_DRAIN.
 */
#define _GNU_SOURCE
#include "tern/service.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/service/internal.h"
#include "runtime/export.h"
#include "tern/chan.h"
#include "tern/debug.h"
#include "tern/error.h"
#include "tern/http_router.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/runtime.h"
#include "tern/signal.h"
#include "tern/sync.h"

#define DEFAULT_DRAIN (10 * TERN_SEC)
#define DEFAULT_HOOK_TIMEOUT (5 * TERN_SEC)
#define ADMIN_DRAIN TERN_SEC

typedef struct hook {
    char *name;
    tern_service_hook_fn *fn;
    void *arg;
} hook;

struct tern_service {
    tern_service_options o;
    tern_http_server *server;
    tern_http_server *admin;    /* NULL: no admin listener */
    tern_http_router *admin_rt;
    tern_health *health;
    hook *hooks;
    size_t nhooks, cap;
    atomic_int stops;           /* stop requests: the first stops, a second hurries */
    tern_ctx *stop_req;         /* cancelled by the first request: the runner wakes */
    tern_ctx *hurry;            /* cancelled by a second request: stop at once */
    atomic_bool sig_quit;       /* the run is over: the signal coroutine leaves */
    bool signals;               /* the service takes SIGTERM/SIGINT */
    bool ran;
    int serve_rc;
    int admin_serve_rc;
    tern_waitgroup served;      /* the main and the admin server's serve_co */
    tern_waitgroup watching;    /* the signal coroutine */
};

/* The admin server: its router has the /debug endpoints and the probes; the caller
 * may add more (tern_service_admin_router). */
static int admin_new(tern_service *svc, const char *addr)
{
    int rc = tern_http_router_new(NULL, &svc->admin_rt);
    if (rc == 0)
        rc = tern_debug_mount(svc->admin_rt, "/debug");
    if (rc == 0)
        rc = tern_health_mount(svc->admin_rt, svc->health);
    tern_http_server_options ao = {.handler = tern_http_router_serve, .arg = svc->admin_rt};
    if (rc == 0)
        rc = tern_http_server_new(&ao, &svc->admin);
    if (rc == 0)
        rc = tern_http_server_listen(svc->admin, addr);
    return rc;
}

/* Requests the server refuses itself (malformed, too large, too slow)
 * never reach the handler's access log and metrics middleware: the
 * service logs and counts them where those do (the logger's writer, the
 * default registry), so a flood of bad requests shows (issue 15). */
static void log_and_count_refusal(const tern_http_refusal *rf, void *arg)
{
    (void)arg;
    tern_http_access_log_refused(rf, NULL);
    tern_http_metrics_refused(rf, NULL);
}

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
    svc->o.addr = NULL;     /* the caller's strings: used only here */
    svc->o.admin_addr = NULL;
    svc->o.tls = NULL;      /* used only to listen */
    if (svc->o.drain_timeout <= 0)
        svc->o.drain_timeout = DEFAULT_DRAIN;
    if (svc->o.hook_timeout <= 0)
        svc->o.hook_timeout = DEFAULT_HOOK_TIMEOUT;
    if (!svc->o.http.on_refused)
        svc->o.http.on_refused = log_and_count_refusal;
    atomic_init(&svc->stops, 0);
    atomic_init(&svc->sig_quit, false);
    int rc = tern_ctx_with_cancel(NULL, &svc->hurry);
    if (rc == 0)
        rc = tern_ctx_with_cancel(NULL, &svc->stop_req);
    if (rc == 0)
        rc = tern_health_new(NULL, &svc->health);
    if (rc == 0)
        rc = tern_http_server_new(&svc->o.http, &svc->server);
    if (rc == 0)
        rc = o->tls ? tern_http_server_listen_tls(svc->server, o->addr, o->tls)
                    : tern_http_server_listen(svc->server, o->addr);
    if (rc == 0 && o->admin_addr && *o->admin_addr)
        rc = admin_new(svc, o->admin_addr);
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
    if (svc->admin)
        tern_http_server_free(svc->admin);
    tern_http_router_free(svc->admin_rt);
    tern_health_free(svc->health);
    tern_ctx_free(svc->hurry);
    tern_ctx_free(svc->stop_req);
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

tern_http_server *tern_service_admin_server(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    return svc->admin;
}

tern_http_router *tern_service_admin_router(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    return svc->admin_rt;
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

/* A stop request: signal sig, or tern_service_stop (sig 0).  The first
 * wakes the runner, a later one hurries the stop.  Any thread. */
static void request_stop(tern_service *svc, int sig)
{
    const char *why = sig ? sigabbrev_np(sig) : NULL;
    if (atomic_fetch_add(&svc->stops, 1) == 0) {
        tern_log_info("service stopping", why ? TERN_LOG_STR("signal", why)
                                              : TERN_LOG_STR("reason", "stop requested"));
        tern_ctx_cancel(svc->stop_req);
    } else {
        tern_log_warn("service stopping at once", why ? TERN_LOG_STR("signal", why)
                                                      : TERN_LOG_STR("reason", "stop requested again"));
        tern_ctx_cancel(svc->hurry);
    }
}

void tern_service_stop(tern_service *svc)
{
    TERN_CHECK_ARG(svc);
    request_stop(svc, 0);
}

/* A stop from within (serve failed, the run's ctx ended): it never counts
 * as a second request.  True if it was the first. */
static bool stop_once(tern_service *svc)
{
    int none = 0;
    if (!atomic_compare_exchange_strong(&svc->stops, &none, 1))
        return false;
    tern_ctx_cancel(svc->stop_req);
    return true;
}

/* ---- running -------------------------------------------------------------------- */

static int serve_co(void *arg)
{
    tern_service *svc = arg;
    int rc = tern_http_server_serve(svc->server, NULL);
    if (rc < 0) {
        svc->serve_rc = rc;     /* read after the waitgroup */
        stop_once(svc);
    }
    tern_waitgroup_done(&svc->served);
    return 0;
}

/* The admin server failing to serve stops the service too: an operator
 * counts on it being there. */
static int admin_serve_co(void *arg)
{
    tern_service *svc = arg;
    int rc = tern_http_server_serve(svc->admin, NULL);
    if (rc < 0) {
        svc->admin_serve_rc = rc;
        stop_once(svc);
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

/* Run one hook, waiting for it no longer than timeout or until hurry
 * ends (its ctx ends with either). */
static int run_hook(const hook *h, int64_t timeout, tern_ctx *hurry)
{
    hook_run *hr = calloc(1, sizeof *hr);
    if (!hr)
        return -ENOMEM;
    atomic_init(&hr->refs, 2);
    hr->fn = h->fn;
    hr->arg = h->arg;
    int rc = tern_ctx_with_timeout(hurry, timeout, &hr->ctx);
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

static const int stop_sigs[] = { SIGTERM, SIGINT };

/* Until a stop request (a signal, tern_service_stop, a failed serve)
 * or the end of ctx: parked, no polling. */
static void wait_for_stop(tern_service *svc, tern_ctx *ctx)
{
    tern_chan_case c = {.ch = tern_ctx_done(svc->stop_req), .op = TERN_CHAN_RECV};
    int rc = tern_chan_select(&c, 1, ctx);
    if (rc < 0 && stop_once(svc))
        tern_log_info("service stopping",
                      TERN_LOG_STR("reason", rc == -ENOMEM ? "out of memory" : "context ended"));
}

/* The run is over: the signal coroutine leaves (it waits with no deadline). */
static void end_signals(tern_service *svc)
{
    if (!svc->signals)
        return;
    atomic_store(&svc->sig_quit, true);
    tern__signal_interrupt();
    tern_waitgroup_wait(&svc->watching, NULL);
}

/* Takes SIGTERM/SIGINT for the whole run, with no deadline, until the
 * run is over (sig_quit and tern__signal_interrupt). */
static int signal_co(void *arg)
{
    tern_service *svc = arg;
    int sig;
    while ((sig = tern__signal_wait_or(stop_sigs, 2, TERN_FOREVER, &svc->sig_quit)) > 0)
        request_stop(svc, sig);
    if (sig != -EINTR)
        tern_log_warn("service no longer takes SIGTERM and SIGINT",
                      TERN_LOG_STR("error", tern_strerror(sig)));
    tern_waitgroup_done(&svc->watching);
    return 0;
}

int tern_service_run(tern_service *svc, tern_ctx *ctx)
{
    TERN_CHECK_ARG(svc);
    if (svc->ran)
        return -EALREADY;
    svc->ran = true;
    if (!svc->o.no_signals) {
        int rc = tern_signal_notify(stop_sigs, 2);
        if (rc < 0)
            return rc;
        tern_waitgroup_add(&svc->watching, 1);
        rc = tern_go_opts(signal_co, svc, &(tern_go_options){.name = "service-signals"}, NULL);
        if (rc < 0) {
            tern_waitgroup_done(&svc->watching);
            return rc;
        }
        svc->signals = true;
    }
    tern_waitgroup_add(&svc->served, 1);
    int rc = tern_go_opts(serve_co, svc, &(tern_go_options){.name = "service-serve"}, NULL);
    if (rc < 0) {
        tern_waitgroup_done(&svc->served);
        end_signals(svc);
        return rc;
    }
    tern__service_conn_metrics_attach(svc->server);
    if (svc->admin) {
        tern_waitgroup_add(&svc->served, 1);
        rc = tern_go_opts(admin_serve_co, svc, &(tern_go_options){.name = "service-admin-serve"},
                          NULL);
        if (rc < 0) {
            tern_waitgroup_done(&svc->served);
            /* the main server serves already: stop it as a failed start-up */
            tern_log_error("service admin listener failed", TERN_LOG_STR("error", tern_strerror(rc)));
            svc->admin_serve_rc = rc;
            stop_once(svc);
            rc = 0;
        }
    }
    if (svc->o.start)
        rc = svc->o.start(svc->o.start_arg);
    bool was_ready = rc == 0 && atomic_load(&svc->stops) == 0 && !(ctx && tern_ctx_err(ctx) < 0);
    if (was_ready) {
        tern_health_set_ready(svc->health, true);
        tern_log_info("service ready", TERN_LOG_STR("addr", tern_http_server_addr(svc->server)),
                      TERN_LOG_STR("admin_addr", svc->admin ? tern_http_server_addr(svc->admin) : ""));
        wait_for_stop(svc, ctx);
    } else if (rc < 0) {
        tern_log_error("service start-up failed", TERN_LOG_STR("error", tern_strerror(rc)));
    }

    /* From here on a second signal or stop request cuts every wait short
     * (request_stop cancels hurry). */
    tern_health_set_ready(svc->health, false);
    /* Load balancers only need time to notice if they were sending. */
    if (was_ready && svc->o.pre_stop_delay > 0)
        tern_ctx_sleep(svc->o.pre_stop_delay, svc->hurry);
    /* The drain ends at its deadline or at once when hurried; the server
     * then waits at most its shutdown_grace for handlers that ignore
     * their request's ctx, and abandons them. */
    tern_ctx *drain_ctx;
    if (tern_ctx_with_timeout(svc->hurry, svc->o.drain_timeout, &drain_ctx) < 0) {
        tern_log_warn("service drain bounded by a second signal only",
                      TERN_LOG_STR("error", tern_strerror(-ENOMEM)));
        drain_ctx = NULL;
    }
    int drain = tern_http_server_shutdown(svc->server, drain_ctx ? drain_ctx : svc->hurry);
    tern_ctx_free(drain_ctx);
    bool hurried = tern_ctx_err(svc->hurry) < 0;
    if (drain < 0)
        tern_log_warn(hurried ? "service drain cut short" : "service drain deadline passed",
                      TERN_LOG_STR("error", tern_strerror(drain)));
    struct tern_http_server_stats st;
    if (tern_http_server_stats(svc->server, &st) == 0 && st.conns > 0)
        tern_log_warn("service abandoned requests whose handlers ignore their context",
                      TERN_LOG_INT("conns", (int64_t)st.conns));
    if (svc->admin) {
        /* Last to go: it showed the drain; a profile running on it ends. */
        tern_ctx *admin_ctx = NULL;
        tern_ctx_with_timeout(svc->hurry, ADMIN_DRAIN, &admin_ctx);
        int ad = tern_http_server_shutdown(svc->admin, admin_ctx ? admin_ctx : svc->hurry);
        tern_ctx_free(admin_ctx);
        if (ad < 0)
            tern_log_warn("service admin drain cut short", TERN_LOG_STR("error", tern_strerror(ad)));
    }
    tern_waitgroup_wait(&svc->served, NULL);
    for (size_t i = svc->nhooks; i-- > 0;) {
        if (tern_ctx_err(svc->hurry) < 0) {
            tern_log_warn("shutdown hooks skipped", TERN_LOG_INT("hooks", (int64_t)i + 1));
            break;
        }
        int hr = run_hook(&svc->hooks[i], svc->o.hook_timeout, svc->hurry);
        if (hr < 0)
            tern_log_warn("shutdown hook failed", TERN_LOG_STR("hook", svc->hooks[i].name),
                          TERN_LOG_STR("error", tern_strerror(hr)));
    }
    tern__service_conn_metrics_detach(svc->server);
    end_signals(svc);
    tern_log_info("service stopped");
    /* The caller is about to exit, and lines still in the ring would be
     * lost with the process. */
    tern_ctx *flush;
    if (tern_ctx_with_timeout(NULL, TERN_SEC, &flush) == 0) {
        tern_log_flush(flush);
        tern_ctx_free(flush);
    }
    if (rc == 0)
        rc = svc->serve_rc ? svc->serve_rc : svc->admin_serve_rc;
    return rc;
}
