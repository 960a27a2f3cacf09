/*
 * expose.c - the Prometheus text format, version 0.0.4: # HELP and
 * # TYPE per family, then one line per sample, in a fixed order (families
 * by name, children by label values) so that two scrapes of the same
 * state are the same bytes.
 *
 * A scrape runs the registry's hooks, copies the family list (so that
 * registrations need not wait for the writing) and, per family, its child
 * pointers (under the family's mutex: a child added meanwhile shows next
 * time).  Values are read with relaxed loads while increments carry on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kit/metrics/internal.h"

/* Shortest text that reads back as the same double (Go's 'g', -1), with
 * the format's spellings of the infinities and NaN. */
static void fmt_double(char *buf, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* %g turns 10 into "1e+01" at one digit: whole numbers below 1e17 are
     * written out with the digits their magnitude needs. */
    int exp = v != 0 ? (int)floor(log10(fabs(v))) : 0;
    if (exp >= prec && exp < 17)
        prec = exp + 1;
    snprintf(buf, n, "%.*g", prec, v);
}

/* HELP escapes \ and newline; label values also ". */
static void put_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* {a="x",b="y"[,le="..."]}, or nothing without labels. */
static void put_labels(FILE *out, const tern_metrics_family *f, char *const *values,
                       const char *le)
{
    if (!f->nlabels && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->nlabels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(out, values[i], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static const char *type_name(tern__metrics_kind k)
{
    switch (k) {
    case TERN_METRIC_COUNTER:
    case TERN_METRIC_COUNTER_FUNC:
        return "counter";
    case TERN_METRIC_HISTOGRAM:
        return "histogram";
    default:
        return "gauge";
    }
}

static void put_histogram(FILE *out, const tern_metrics_family *f, const tern_metrics_histogram *h)
{
    /* Per bucket over all shards first, so that the cumulative counts and
     * _count come from one read of each slot and always agree. */
    uint64_t counts[TERN_METRICS_MAX_BUCKETS + 1] = {0};
    double sum = 0;
    TERN_ASSERT(h->nbounds <= TERN_METRICS_MAX_BUCKETS && h->nbounds == f->nbounds);
    for (int sh = 0; sh < TERN_METRICS_SHARDS; sh++) {
        _Atomic uint64_t *w = (_Atomic uint64_t *)(h->shards + (size_t)sh * h->stride);
        for (size_t i = 0; i <= h->nbounds; i++)
            counts[i] += atomic_load_explicit(&w[i], memory_order_relaxed);
        sum += tern__metrics_bitsd(atomic_load_explicit(&w[h->nbounds + 1], memory_order_relaxed));
    }
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += counts[i];
        if (i < h->nbounds)
            fmt_double(le, sizeof le, h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        fprintf(out, "%s_bucket", f->name);
        put_labels(out, f, h->h.values, le);
        fprintf(out, " %" PRIu64 "\n", cum);
    }
    char num[40];
    fmt_double(num, sizeof num, sum);
    fprintf(out, "%s_sum", f->name);
    put_labels(out, f, h->h.values, NULL);
    fprintf(out, " %s\n%s_count", num, f->name);
    put_labels(out, f, h->h.values, NULL);
    fprintf(out, " %" PRIu64 "\n", cum);
}

static void put_child(FILE *out, const tern_metrics_family *f, const tern__metrics_child *c)
{
    char num[40];
    switch (f->kind) {
    case TERN_METRIC_COUNTER:
        fputs(f->name, out);
        put_labels(out, f, c->values, NULL);
        fprintf(out, " %" PRIu64 "\n", tern_metrics_counter_value((const tern_metrics_counter *)c));
        break;
    case TERN_METRIC_GAUGE:
        fmt_double(num, sizeof num, tern_metrics_gauge_value((const tern_metrics_gauge *)c));
        fputs(f->name, out);
        put_labels(out, f, c->values, NULL);
        fprintf(out, " %s\n", num);
        break;
    case TERN_METRIC_HISTOGRAM:
        put_histogram(out, f, (const tern_metrics_histogram *)c);
        break;
    default:
        break;
    }
}

static int child_cmp(const void *a, const void *b, void *family)
{
    const tern_metrics_family *f = family;
    const tern__metrics_child *x = *(tern__metrics_child *const *)a;
    const tern__metrics_child *y = *(tern__metrics_child *const *)b;
    for (size_t i = 0; i < f->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static int family_cmp(const void *a, const void *b)
{
    return strcmp((*(tern_metrics_family *const *)a)->name, (*(tern_metrics_family *const *)b)->name);
}

/* Called with the registry's scrape mutex held. */
static int put_family(FILE *out, tern_metrics_family *f)
{
    if (f->kind == TERN_METRIC_COUNTER_FUNC || f->kind == TERN_METRIC_GAUGE_FUNC) {
        char num[40];
        fmt_double(num, sizeof num, f->fn(f->fn_arg));
        fprintf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, false);
        fprintf(out, "\n# TYPE %s %s\n%s %s\n", f->name, type_name(f->kind), f->name, num);
        return 0;
    }
    pthread_mutex_lock(&f->lock);
    size_t n = f->nchildren, k = 0;
    tern__metrics_child **kids = malloc((n ? n : 1) * sizeof *kids);
    for (size_t i = 0; kids && i < TERN_METRICS_TABLE; i++)
        for (tern__metrics_child *c = atomic_load_explicit(&f->table[i], memory_order_relaxed); c;
             c = atomic_load_explicit(&c->next, memory_order_relaxed))
            kids[k++] = c;
    pthread_mutex_unlock(&f->lock);
    if (!kids)
        return -ENOMEM;
    if (n) {
        qsort_r(kids, n, sizeof *kids, child_cmp, f);
        fprintf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, false);
        fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->kind));
        for (size_t i = 0; i < n; i++)
            put_child(out, f, kids[i]);
    }
    free(kids);
    return 0;
}

int tern_metrics_write(tern_metrics_registry *r, FILE *out)
{
    r = tern__metrics_reg(r);
    pthread_mutex_lock(&r->scrape);
    pthread_mutex_lock(&r->lock);
    size_t nh = r->nhooks, nf = r->nfams;
    tern_metrics_hook *hooks = malloc((nh ? nh : 1) * sizeof *hooks);
    tern_metrics_family **fams = malloc((nf ? nf : 1) * sizeof *fams);
    if (hooks && nh)
        memcpy(hooks, r->hooks, nh * sizeof *hooks);
    if (fams && nf)
        memcpy(fams, r->fams, nf * sizeof *fams);
    pthread_mutex_unlock(&r->lock);
    int rc = hooks && fams ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < nh; i++)
        hooks[i].fn(hooks[i].arg);
    if (rc == 0)
        qsort(fams, nf, sizeof *fams, family_cmp);
    for (size_t i = 0; rc == 0 && i < nf; i++)
        rc = put_family(out, fams[i]);
    pthread_mutex_unlock(&r->scrape);
    free(hooks);
    free(fams);
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    return rc;
}

int tern_metrics_format(tern_metrics_registry *r, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return -ENOMEM;
    int rc = tern_metrics_write(r, f);
    if (fclose(f) != 0 && rc == 0)
        rc = -ENOMEM;
    if (rc) {
        free(buf);
        return rc == -EIO ? -ENOMEM : rc;
    }
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

int tern_metrics_handler(tern_http_req *req, tern_http_resp *w, void *registry)
{
    (void)req;
    char *buf;
    size_t len;
    int rc = tern_metrics_format(registry, &buf, &len);
    if (rc)
        return rc;
    rc = tern_http_resp_send(w, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return rc;
}
