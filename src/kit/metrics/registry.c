/*
 * registry.c - registries and families: name checks, registration
 * (one family per name), function-valued metrics and scrape hooks.
 *
 * Families are never removed before their registry is freed, so a family
 * or child handle stays valid for the registry's whole life and the hot
 * path never has to check one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/metrics/internal.h"

static tern_metrics_registry *default_reg;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_make(void)
{
    if (tern_metrics_registry_new(&default_reg) != 0)
        abort();    /* a few hundred bytes at first use: nothing to recover */
}

tern_metrics_registry *tern_metrics_default(void)
{
    pthread_once(&default_once, default_make);
    return default_reg;
}

tern_metrics_registry *tern__metrics_reg(tern_metrics_registry *r)
{
    return r ? r : tern_metrics_default();
}

int tern_metrics_registry_new(tern_metrics_registry **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->scrape, NULL);
    *out = r;
    return 0;
}

static void family_free(tern_metrics_family *f)
{
    for (size_t i = 0; i < TERN_METRICS_TABLE; i++) {
        tern__metrics_child *c = atomic_load_explicit(&f->table[i], memory_order_relaxed);
        while (c) {
            tern__metrics_child *next = atomic_load_explicit(&c->next, memory_order_relaxed);
            tern__metric_child_free(c);
            c = next;
        }
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    pthread_mutex_destroy(&f->lock);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

_Atomic uint64_t tern__metrics_epoch;

void tern_metrics_registry_free(tern_metrics_registry *r)
{
    if (!r)
        return;
    atomic_fetch_add(&tern__metrics_epoch, 1);  /* memoised children go stale */
    for (size_t i = 0; i < r->nhooks; i++)
        if (r->hooks[i].release)
            r->hooks[i].release(r->hooks[i].arg);
    for (size_t i = 0; i < r->nfams; i++)
        family_free(r->fams[i]);
    free(r->hooks);
    free(r->fams);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->scrape);
    free(r);
}

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

/* Names, as the text format allows them. */
static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!name_char(*p, p == s, true))
            return false;
    return true;
}

static bool valid_label(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!name_char(*p, p == s, false))
            return false;
    return true;
}

static int check_labels(const char *const *labels, bool histogram, size_t *n)
{
    size_t k = 0;
    for (; labels && labels[k]; k++) {
        if (k == TERN_METRICS_MAX_LABELS || !valid_label(labels[k]))
            return -EINVAL;
        if (histogram && strcmp(labels[k], "le") == 0)
            return -EINVAL;
        for (size_t j = 0; j < k; j++)
            if (strcmp(labels[j], labels[k]) == 0)
                return -EINVAL;
    }
    *n = k;
    return 0;
}

static int check_bounds(const double *b, size_t n)
{
    if (n > TERN_METRICS_MAX_BUCKETS || (n && !b))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i]) || (i && b[i] <= b[i - 1]))
            return -EINVAL;
    return 0;
}

/* Add f to r unless the name is taken; f is r's from here. */
static int add_family(tern_metrics_registry *r, tern_metrics_family *f)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nfams; i++)
        if (strcmp(r->fams[i]->name, f->name) == 0)
            rc = -EEXIST;
    if (rc == 0 && r->nfams == r->capfams) {
        size_t cap = r->capfams ? 2 * r->capfams : 16;
        tern_metrics_family **a = realloc(r->fams, cap * sizeof *a);
        if (a) {
            r->fams = a;
            r->capfams = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        r->fams[r->nfams++] = f;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static const double default_bounds[] = {TERN_METRICS_DEFAULT_BUCKETS};

static int family_new(tern_metrics_registry *r, tern__metrics_kind kind, const char *name,
                      const char *help, const char *const *labels, const double *bounds,
                      size_t nbounds, tern_metrics_value_fn *fn, void *fn_arg,
                      tern_metrics_family **out)
{
    r = tern__metrics_reg(r);
    size_t nl = 0;
    if (!valid_name(name) || !help)
        return -EINVAL;
    int rc = check_labels(labels, kind == TERN_METRIC_HISTOGRAM, &nl);
    if (rc == 0 && kind == TERN_METRIC_HISTOGRAM) {
        if (!bounds && nbounds == 0) {
            bounds = default_bounds;
            nbounds = sizeof default_bounds / sizeof default_bounds[0];
        }
        rc = check_bounds(bounds, nbounds);
    }
    if (rc)
        return rc;
    tern_metrics_family *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->reg = r;
    f->kind = kind;
    f->fn = fn;
    f->fn_arg = fn_arg;
    f->name = strdup(name);
    f->help = strdup(help);
    bool ok = f->name && f->help;
    for (size_t i = 0; i < nl; i++, f->nlabels++)
        ok = ok && (f->labels[i] = strdup(labels[i]));
    if (ok && nbounds) {
        f->bounds = malloc(nbounds * sizeof *bounds);
        ok = f->bounds;
        if (ok)
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    pthread_mutex_init(&f->lock, NULL);
    rc = ok ? 0 : -ENOMEM;
    /* An unlabelled family has its one child from the start, so that it
     * shows (as 0) before anything happened. */
    if (rc == 0 && nl == 0 && kind <= TERN_METRIC_HISTOGRAM && !tern__metric_child(f, NULL))
        rc = -ENOMEM;
    if (rc == 0)
        rc = add_family(r, f);
    if (rc) {
        family_free(f);
        return rc;
    }
    if (out)
        *out = f;
    return 0;
}

int tern_metrics_family_new(tern_metrics_registry *r, const tern_metrics_family_options *opts,
                            tern_metrics_family **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!opts)
        return -EINVAL;
    tern__metrics_kind kind;
    switch (opts->type) {
    case TERN_METRICS_COUNTER: kind = TERN_METRIC_COUNTER; break;
    case TERN_METRICS_GAUGE: kind = TERN_METRIC_GAUGE; break;
    case TERN_METRICS_HISTOGRAM: kind = TERN_METRIC_HISTOGRAM; break;
    default: return -EINVAL;
    }
    if (kind != TERN_METRIC_HISTOGRAM && (opts->bounds || opts->nbounds))
        return -EINVAL;
    return family_new(r, kind, opts->name, opts->help, opts->labels, opts->bounds, opts->nbounds,
                      NULL, NULL, out);
}

static int func_new(tern_metrics_registry *r, tern__metrics_kind kind, const char *name,
                    const char *help, tern_metrics_value_fn *fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    return family_new(r, kind, name, help, NULL, NULL, 0, fn, arg, NULL);
}

int tern_metrics_gauge_func(tern_metrics_registry *r, const char *name, const char *help,
                            tern_metrics_value_fn *fn, void *arg)
{
    return func_new(r, TERN_METRIC_GAUGE_FUNC, name, help, fn, arg);
}

int tern_metrics_counter_func(tern_metrics_registry *r, const char *name, const char *help,
                              tern_metrics_value_fn *fn, void *arg)
{
    return func_new(r, TERN_METRIC_COUNTER_FUNC, name, help, fn, arg);
}

int tern_metrics_on_scrape(tern_metrics_registry *r, void (*fn)(void *arg),
                           void (*release)(void *arg), void *arg)
{
    r = tern__metrics_reg(r);
    if (!fn)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    tern_metrics_hook *h = realloc(r->hooks, (r->nhooks + 1) * sizeof *h);
    if (h) {
        r->hooks = h;
        h[r->nhooks++] = (tern_metrics_hook){fn, release, arg};
    } else {
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}
