/*
 * child.c - children: one per tuple of label values, found by a
 * hash of the values in the family's table.
 *
 * Lookups take no lock: a child is built completely before a release
 * store links it at its chain's head, and is never unlinked before the
 * registry is freed, so a reader that acquires a pointer sees a finished
 * child.  Inserts serialise on the family's mutex and look again under it,
 * so that two threads asking for the same new values get one child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/metrics/internal.h"

static uint64_t values_hash(const tern_metrics_family *f, const char *const *v)
{
    uint64_t h = 1469598103934665603ull;                 /* FNV-1a */
    for (size_t i = 0; i < f->nlabels; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;               /* ("a","b") != ("ab","") */
    }
    return h;
}

static bool values_equal(const tern_metrics_family *f, char *const *a, const char *const *b)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static tern__metrics_child *find(tern_metrics_family *f, uint64_t h, const char *const *v)
{
    tern__metrics_child *c =
        atomic_load_explicit(&f->table[h % TERN_METRICS_TABLE], memory_order_acquire);
    for (; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) {
        /* children are published fully built, in the chain of their hash */
        TERN_ASSERT(c->family == f && c->hash % TERN_METRICS_TABLE == h % TERN_METRICS_TABLE);
        if (c->hash == h && values_equal(f, c->values, v))
            return c;
    }
    return NULL;
}

/* The values' pointer array and their bytes in one block. */
static char **values_copy(const tern_metrics_family *f, const char *const *v)
{
    size_t bytes = f->nlabels * sizeof(char *);
    for (size_t i = 0; i < f->nlabels; i++)
        bytes += strlen(v[i]) + 1;
    char **out = malloc(bytes ? bytes : 1);
    if (!out)
        return NULL;
    char *p = (char *)(out + f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(v[i]) + 1;
        out[i] = memcpy(p, v[i], n);
        p += n;
    }
    return out;
}

tern__metrics_child *tern__metric_child(tern_metrics_family *f, const char *const *v)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (!v[i])
            return NULL;
    uint64_t h = values_hash(f, v);
    tern__metrics_child *c = find(f, h, v);
    if (c)
        return c;
    pthread_mutex_lock(&f->lock);
    c = find(f, h, v);
    if (!c) {
        c = tern__metric_child_alloc(f);
        char **copy = c ? values_copy(f, v) : NULL;
        if (copy) {
            c->family = f;
            c->hash = h;
            c->values = copy;
            _Atomic(tern__metrics_child *) *head = &f->table[h % TERN_METRICS_TABLE];
            atomic_store_explicit(&c->next, atomic_load_explicit(head, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(head, c, memory_order_release);
            f->nchildren++;
            TERN_ASSERT(find(f, h, v) == c);
        } else if (c) {
            tern__metric_child_free(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return c;
}

tern__metrics_child *tern__metric_child_alloc(tern_metrics_family *f)
{
    switch (f->kind) {
    case TERN_METRIC_COUNTER: {
        tern_metrics_counter *c = aligned_alloc(TERN_METRICS_LINE, sizeof *c);
        if (c)
            memset(c, 0, sizeof *c);
        return c ? &c->h : NULL;
    }
    case TERN_METRIC_GAUGE: {
        tern_metrics_gauge *g = calloc(1, sizeof *g);
        return g ? &g->h : NULL;
    }
    case TERN_METRIC_HISTOGRAM: {
        tern_metrics_histogram *hg = calloc(1, sizeof *hg);
        if (!hg)
            return NULL;
        size_t words = f->nbounds + 2;                  /* counts, +Inf, sum */
        hg->stride = (words * 8 + TERN_METRICS_LINE - 1) / TERN_METRICS_LINE * TERN_METRICS_LINE;
        /* a shard's block holds every word and starts on its own line */
        TERN_ASSERT(hg->stride >= words * 8 && hg->stride % TERN_METRICS_LINE == 0);
        hg->shards = aligned_alloc(TERN_METRICS_LINE, hg->stride * TERN_METRICS_SHARDS);
        if (!hg->shards) {
            free(hg);
            return NULL;
        }
        memset(hg->shards, 0, hg->stride * TERN_METRICS_SHARDS);
        hg->bounds = f->bounds;
        hg->nbounds = f->nbounds;
        return &hg->h;
    }
    default:
        return NULL;
    }
}

void tern__metric_child_free(tern__metrics_child *c)
{
    free(c->values);
    if (c->family->kind == TERN_METRIC_HISTOGRAM)
        free(((tern_metrics_histogram *)c)->shards);
    free(c);
}

/* The child for values, telling a NULL value (-EINVAL) from a failed
 * allocation (-ENOMEM). */
static int with_values_checked(tern_metrics_family *f, const char *const *v,
                               tern__metrics_child **out)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (!v[i])
            return -EINVAL;
    tern__metrics_child *c = tern__metric_child(f, v);
    if (!c)
        return -ENOMEM;
    *out = c;
    return 0;
}

/* The family's values from ap (exactly its label count), then the child. */
static int with_va(tern_metrics_family *f, tern__metrics_kind kind, tern__metrics_child **out,
                   va_list ap)
{
    *out = NULL;
    if (f->kind != kind)
        return -EINVAL;
    const char *v[TERN_METRICS_MAX_LABELS];
    for (size_t i = 0; i < f->nlabels; i++)
        v[i] = va_arg(ap, const char *);
    return with_values_checked(f, v, out);
}

int tern_metrics_counter_with(tern_metrics_family *f, tern_metrics_counter **out, ...)
{
    va_list ap;
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    va_start(ap, out);
    int rc = with_va(f, TERN_METRIC_COUNTER, &c, ap);
    va_end(ap);
    *out = (tern_metrics_counter *)c;
    return rc;
}

int tern_metrics_gauge_with(tern_metrics_family *f, tern_metrics_gauge **out, ...)
{
    va_list ap;
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    va_start(ap, out);
    int rc = with_va(f, TERN_METRIC_GAUGE, &c, ap);
    va_end(ap);
    *out = (tern_metrics_gauge *)c;
    return rc;
}

int tern_metrics_histogram_with(tern_metrics_family *f, tern_metrics_histogram **out, ...)
{
    va_list ap;
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    va_start(ap, out);
    int rc = with_va(f, TERN_METRIC_HISTOGRAM, &c, ap);
    va_end(ap);
    *out = (tern_metrics_histogram *)c;
    return rc;
}

static int with_values(tern_metrics_family *f, tern__metrics_kind kind, const char *const *values,
                       tern__metrics_child **out)
{
    *out = NULL;
    if (f->kind != kind || (f->nlabels && !values))
        return -EINVAL;
    return with_values_checked(f, values, out);
}

int tern_metrics_counter_with_values(tern_metrics_family *f, const char *const *values,
                                     tern_metrics_counter **out)
{
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    int rc = with_values(f, TERN_METRIC_COUNTER, values, &c);
    *out = (tern_metrics_counter *)c;
    return rc;
}

int tern_metrics_gauge_with_values(tern_metrics_family *f, const char *const *values,
                                   tern_metrics_gauge **out)
{
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    int rc = with_values(f, TERN_METRIC_GAUGE, values, &c);
    *out = (tern_metrics_gauge *)c;
    return rc;
}

int tern_metrics_histogram_with_values(tern_metrics_family *f, const char *const *values,
                                       tern_metrics_histogram **out)
{
    TERN_CHECK_ARG(f);
    TERN_CHECK_ARG(out);
    tern__metrics_child *c;
    int rc = with_values(f, TERN_METRIC_HISTOGRAM, values, &c);
    *out = (tern_metrics_histogram *)c;
    return rc;
}
