/*
 * health.c - registered checks and the /livez, /readyz, /healthz probes.
 *
 * A probe starts one coroutine per selected check and collects results
 * from a channel until all have come or the longest timeout has passed.
 * A check that ignores its context may run on after that, so the state it
 * writes into (a probe_run) is not the handler's: it is reference counted,
 * one reference per check coroutine plus one for the handler, and the last
 * one out frees it.  A check writes its slot before sending the slot's
 * index, and the handler reads only slots whose index it received, so the
 * channel orders every access to a slot; the rest are reported as timed
 * out without being looked at.
 */
#define _GNU_SOURCE
#include "tern/health.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/health/internal.h"
#include "tern/chan.h"
#include "tern/error.h"
#include "tern/runtime.h"

#define DEFAULT_TIMEOUT TERN_SEC

typedef struct check {
    char *name;
    tern_health_kind kind;
    int64_t timeout;
    tern_health_check_fn *fn;
    void *arg;
} check;

struct tern_health {
    int64_t default_timeout;    /* for checks added with timeout <= 0 */
    check *checks;
    size_t n, cap;
    atomic_bool ready;
};

typedef struct probe_run probe_run;

typedef struct probe_slot {
    probe_run *run;
    tern_health_check_fn *fn;   /* copies: the check may outlive the health object */
    void *arg;
    int64_t deadline;           /* the probe's for this check, so both agree */
    size_t index;
    int rc;                     /* written by the check before it sends index */
    char msg[TERN_HEALTH_MSG_MAX];
} probe_slot;

struct probe_run {
    atomic_int refs;
    tern_chan *results;         /* size_t indexes; one slot per check: sends never park */
    probe_slot slots[];
};

int tern_health_new(const tern_health_options *opts, tern_health **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (opts && opts->default_timeout < 0)
        return -EINVAL;
    tern_health *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->default_timeout = opts && opts->default_timeout ? opts->default_timeout : DEFAULT_TIMEOUT;
    atomic_init(&h->ready, false);
    *out = h;
    return 0;
}

void tern_health_free(tern_health *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->checks[i].name);
    free(h->checks);
    free(h);
}

static bool name_ok(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int tern_health_add(tern_health *h, const char *name, tern_health_kind kind, int64_t timeout,
                    tern_health_check_fn *fn, void *arg)
{
    TERN_CHECK_ARG(h);
    if (!name_ok(name) || !fn || kind < TERN_HEALTH_LIVENESS || kind > TERN_HEALTH_BOTH)
        return -EINVAL;
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->checks[i].name, name))
            return -EEXIST;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        check *c = realloc(h->checks, cap * sizeof *c);
        if (!c)
            return -ENOMEM;
        h->checks = c;
        h->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    h->checks[h->n++] = (check){
        .name = copy,
        .kind = kind,
        .timeout = timeout > 0 ? timeout : h->default_timeout,
        .fn = fn,
        .arg = arg,
    };
    return 0;
}

void tern_health_set_ready(tern_health *h, bool ready)
{
    TERN_CHECK_ARG(h);
    atomic_store(&h->ready, ready);
}

bool tern_health_ready(const tern_health *h)
{
    TERN_CHECK_ARG(h);
    return atomic_load(&((tern_health *)h)->ready);
}

/* ---- running checks ----------------------------------------------------------- */

static void run_unref(probe_run *run)
{
    int refs = atomic_fetch_sub(&run->refs, 1);
    TERN_ASSERT(refs >= 1);
    if (refs == 1) {
        tern_chan_free(run->results);
        free(run);
    }
}

static int check_co(void *arg)
{
    probe_slot *s = arg;
    char msg[TERN_HEALTH_MSG_MAX] = "";
    tern_ctx *ctx;
    int rc = tern_ctx_with_deadline(NULL, s->deadline, &ctx);
    if (rc == 0) {
        rc = s->fn(msg, sizeof msg, ctx, s->arg);
        /* A check that finished only after its time is a timeout whatever
         * it returned: the probe may already have answered so. */
        if (tern_ctx_err(ctx) == -ETIMEDOUT)
            rc = -ETIMEDOUT;
        tern_ctx_free(ctx);
    }
    s->rc = rc > 0 ? 0 : rc;
    if (rc == -ETIMEDOUT)
        snprintf(s->msg, sizeof s->msg, "timeout");
    else if (rc < 0 && !msg[0])
        snprintf(s->msg, sizeof s->msg, "%s", tern_strerror(rc));
    else
        memcpy(s->msg, msg, sizeof msg);
    s->msg[sizeof s->msg - 1] = '\0';
    probe_run *run = s->run;
    int sent = tern_chan_try_send(run->results, &s->index);
    TERN_ASSERT(sent == 0);     /* one slot per check: never full */
    (void)sent;
    run_unref(run);
    return 0;
}

/* What the handler reports for one check: its own copy, because the
 * slot of a check that is late stays the check's. */
typedef struct outcome {
    const char *name;
    int rc;
    int64_t deadline;           /* while awaited; 0 once in (or never started) */
    char msg[TERN_HEALTH_MSG_MAX];
} outcome;

/* A check a probe runs: its kind meets mask and, when only is set, it is
 * the check of that name. */
static bool selected(const check *c, unsigned mask, const char *only)
{
    return (c->kind & mask) && (!only || !strcmp(c->name, only));
}

static size_t count_checks(const tern_health *h, unsigned mask, const char *only)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += selected(&h->checks[i], mask, only);
    return n;
}

/* Run the n checks selected by mask and only, concurrently, and fill out[]
 * in registration order; a check not back by its timeout is -ETIMEDOUT.
 * 0 or -ENOMEM. */
static int run_checks(tern_health *h, unsigned mask, const char *only, tern_ctx *parent, outcome *out,
                      size_t n)
{
    probe_run *run = calloc(1, sizeof *run + n * sizeof run->slots[0]);
    if (!run)
        return -ENOMEM;
    atomic_init(&run->refs, 1);
    int err = tern_chan_new(sizeof(size_t), n, &run->results);
    if (err < 0) {
        free(run);
        return err;
    }
    int64_t start = tern_now();
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++) {
        const check *c = &h->checks[i];
        if (!selected(c, mask, only))
            continue;
        probe_slot *s = &run->slots[k];
        *s = (probe_slot){.run = run, .fn = c->fn, .arg = c->arg,
                          .deadline = start + c->timeout, .index = k};
        out[k] = (outcome){.name = c->name, .rc = -ETIMEDOUT, .msg = "timeout",
                           .deadline = start + c->timeout};
        atomic_fetch_add(&run->refs, 1);
        if (tern_go_opts(check_co, s, &(tern_go_options){.name = "health-check"}, NULL) < 0) {
            atomic_fetch_sub(&run->refs, 1);
            out[k].rc = -ENOMEM;
            out[k].deadline = 0;    /* nothing to wait for */
            snprintf(out[k].msg, sizeof out[k].msg, "cannot start the check");
        }
        k++;
    }
    TERN_ASSERT(k == n);        /* count_checks and this loop select alike */
    /* Wait while some check is both outstanding and within its timeout:
     * a quick check with a long timeout must not hold up the answer once
     * it is in, so the deadline is recomputed after every result. */
    for (;;) {
        int64_t until = 0;
        for (size_t i = 0; i < n; i++)
            if (out[i].deadline > until)
                until = out[i].deadline;
        if (until <= tern_now())
            break;
        tern_ctx *wait;
        if ((err = tern_ctx_with_deadline(parent, until, &wait)) < 0)
            break;              /* reported: not "every check timed out" */
        size_t idx;
        bool ok;
        int rc = tern_chan_recv(run->results, &idx, &ok, wait);
        tern_ctx_free(wait);
        if (rc < 0 || !ok)
            break;
        /* each check sends its own index, once */
        TERN_ASSERT(idx < n && out[idx].deadline != 0);
        out[idx].rc = run->slots[idx].rc;
        out[idx].deadline = 0;
        memcpy(out[idx].msg, run->slots[idx].msg, sizeof out[idx].msg);
    }
    run_unref(run);
    return err;
}

/* ---- the probes ------------------------------------------------------------------ */

static int probe(tern_http_req *r, tern_http_resp *w, tern_health *h, unsigned mask,
                 bool with_ready, const char *what)
{
    size_t n = count_checks(h, mask, NULL);
    outcome *out = n ? calloc(n, sizeof *out) : NULL;
    if (n && !out)
        return -ENOMEM;
    /* The flag is read after the checks have run, so a shutdown that
     * began while they ran is already reflected in the answer. */
    int rc = n ? run_checks(h, mask, NULL, tern_http_req_ctx(r), out, n) : 0;
    if (rc < 0) {
        free(out);
        return rc;
    }
    bool ready = !with_ready || tern_health_ready(h);
    bool pass = ready;
    for (size_t i = 0; i < n; i++)
        pass = pass && out[i].rc == 0;
    bool verbose = tern_http_req_query(r, "verbose") != NULL;
    tern_http_resp_set_header(w, "Content-Type", "text/plain; charset=utf-8");
    tern_http_resp_set_header(w, "Cache-Control", "no-store");
    tern_http_resp_set_status(w, pass ? 200 : 503);
    if (pass && !verbose) {
        rc = tern_http_resp_printf(w, "ok");
        free(out);
        return rc < 0 ? rc : 0;
    }
    rc = 0;
    if (with_ready)
        rc = tern_http_resp_printf(w, ready ? "[+]ready ok\n" : "[-]ready failed: not ready\n");
    for (size_t i = 0; i < n && rc >= 0; i++) {
        if (out[i].rc == 0)
            rc = tern_http_resp_printf(w, "[+]%s ok\n", out[i].name);
        else
            rc = tern_http_resp_printf(w, "[-]%s failed: %s\n", out[i].name, out[i].msg);
    }
    if (rc >= 0)
        rc = tern_http_resp_printf(w, "%s check %s\n", what, pass ? "passed" : "failed");
    free(out);
    return rc < 0 ? rc : 0;
}

int tern__health_eval(tern_health *h, unsigned mask, bool with_ready, const char *only, tern_ctx *ctx)
{
    size_t n = count_checks(h, only ? TERN_HEALTH_BOTH : mask, only);
    if (only && n == 0)
        return -ENOENT;
    outcome *out = n ? calloc(n, sizeof *out) : NULL;
    if (n && !out)
        return -ENOMEM;
    int rc = n ? run_checks(h, only ? TERN_HEALTH_BOTH : mask, only, ctx, out, n) : 0;
    /* the flag after the checks, as the probes read it */
    bool pass = rc == 0 && (!with_ready || tern_health_ready(h));
    for (size_t i = 0; i < n; i++)
        pass = pass && out[i].rc == 0;
    free(out);
    return rc < 0 ? rc : pass;
}

int tern_health_livez(tern_http_req *r, tern_http_resp *w, void *health)
{
    return probe(r, w, health, TERN_HEALTH_LIVENESS, false, "livez");
}

int tern_health_readyz(tern_http_req *r, tern_http_resp *w, void *health)
{
    return probe(r, w, health, TERN_HEALTH_READINESS, true, "readyz");
}

int tern_health_healthz(tern_http_req *r, tern_http_resp *w, void *health)
{
    return probe(r, w, health, TERN_HEALTH_BOTH, true, "healthz");
}

int tern_health_mount(tern_http_router *rt, tern_health *h)
{
    TERN_CHECK_ARG(rt);
    TERN_CHECK_ARG(h);
    int rc = tern_http_router_handle(rt, "GET", "/livez", tern_health_livez, h);
    if (rc == 0)
        rc = tern_http_router_handle(rt, "GET", "/readyz", tern_health_readyz, h);
    if (rc == 0)
        rc = tern_http_router_handle(rt, "GET", "/healthz", tern_health_healthz, h);
    return rc;
}
