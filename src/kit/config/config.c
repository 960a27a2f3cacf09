/*
 * config.c - the config object: declarations checked once, the current
 * snapshot published through one atomic pointer, getters, and reloads.
 *
 * Readers load `cur` (acquire) and read an immutable snapshot: no lock, no
 * reference count, so a getter is a binary search and a load.  A reload
 * links the snapshot it replaces onto the new one's `older` chain and
 * frees those replaced more than `retain` ago (a grace period, as in
 * epoch-based reclamation with time for the epoch): a reader that loaded
 * an old snapshot, or holds a string from it, has that long to finish.
 * Keeping every snapshot forever (as before) grew a service by a copy of
 * its values per SIGHUP (issue 15: +934 KB each with a 1 MB value).
 *
 * A value a reload leaves unchanged (same text, same source) is handed on:
 * the new snapshot takes the old one's allocation instead of its fresh
 * copy, so strings and lists of keys that do not change stay valid for as
 * long as they do not, however many reloads pass, and an unchanged 1 MB
 * value costs nothing per reload.  One reload at a time (`reloading`), so
 * the chain, the hand-over marks and the callbacks need no other lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/config/internal.h"

long tern__cfg_find(const tern_config *cfg, const char *key)
{
    size_t lo = 0, hi = cfg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        TERN_ASSERT(cfg->by_name[mid] < cfg->n);
        /* the binary search relies on by_name being sorted */
        TERN_ASSERT(mid == 0 || strcmp(cfg->o.keys[cfg->by_name[mid - 1]].name,
                                       cfg->o.keys[cfg->by_name[mid]].name) <= 0);
        int c = strcmp(cfg->o.keys[cfg->by_name[mid]].name, key);
        if (c == 0)
            return (long)cfg->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int by_name_cmp(const void *a, const void *b, void *keys)
{
    const tern_config_key *k = keys;
    const char *x = k[*(const size_t *)a].name, *y = k[*(const size_t *)b].name;
    return strcmp(x ? x : "", y ? y : "");
}

static bool valid_name(const char *s)
{
    if (!s || !*s || *s == '.' || s[strlen(s) - 1] == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
              *s == '-'))
            return false;
    return true;
}

/* Check the declarations and parse their limits. */
static int declare(tern_config *cfg, tern_config_error *err)
{
    const tern_config_key *keys = cfg->o.keys;
    for (size_t i = 0; i < cfg->n; i++) {
        const tern_config_key *k = &keys[i];
        if (!valid_name(k->name)) {
            tern__cfg_errorf(err, "config: %s: bad key name (use a-z 0-9 _ - and dots)",
                            k->name ? k->name : "(null)");
            continue;
        }
        if (k->type < TERN_CONFIG_STRING || k->type > TERN_CONFIG_LIST) {
            tern__cfg_errorf(err, "config: %s: unknown type %d", k->name, (int)k->type);
            continue;
        }
        const char *lim[2] = {k->min, k->max};
        cfg_val *out[2] = {&cfg->min[i], &cfg->max[i]};
        for (int j = 0; j < 2; j++) {
            if (!lim[j])
                continue;
            bool numeric = k->type == TERN_CONFIG_INT || k->type == TERN_CONFIG_DOUBLE ||
                           k->type == TERN_CONFIG_DURATION;
            const char *why = numeric ? tern__cfg_parse(k->type, lim[j], out[j])
                                      : "is a limit on a type without order";
            if (why) {
                tern__cfg_errorf(err, "config: %s: %s \"%s\" %s (in the declaration)", k->name,
                                j ? "max" : "min", lim[j], why);
                continue;
            }
            out[j]->text = (char *)lim[j];      /* borrowed; never freed */
        }
    }
    for (size_t i = 0; i < cfg->n; i++)
        cfg->by_name[i] = i;
    qsort_r(cfg->by_name, cfg->n, sizeof cfg->by_name[0], by_name_cmp, (void *)keys);
    for (size_t i = 1; i < cfg->n; i++) {
        const char *a = keys[cfg->by_name[i - 1]].name, *b = keys[cfg->by_name[i]].name;
        if (a && b && strcmp(a, b) == 0)
            tern__cfg_errorf(err, "config: %s: declared twice", a);
    }
    return err->count ? -EINVAL : 0;
}

void tern_config_free(tern_config *cfg)
{
    if (!cfg)
        return;
    tern_config_watch_stop(cfg);
    cfg_snap *s = atomic_load(&cfg->cur);
    while (s) {
        cfg_snap *older = s->older;
        tern__cfg_snap_free(s, cfg->n);
        s = older;
    }
    for (int i = 0; i < cfg->argc; i++)
        free(cfg->argv[i]);
    free(cfg->argv);
    free(cfg->flag_file);
    free(cfg->by_name);
    free(cfg->min);
    free(cfg->max);
    free(cfg);
}

/* Find --config FILE / --config=FILE among the flags, walking them as
 * load_flags does (so a key's value that happens to read "--config" is
 * that key's), and make it the file layer.  The last one wins.  0,
 * -EINVAL (err filled), -ENOMEM. */
static int config_flag(tern_config *cfg, tern_config_error *err)
{
    if (tern__cfg_find(cfg, "config") >= 0) {
        tern__cfg_errorf(err, "config: config: the name is --config FILE's (declare another)");
        return -EINVAL;
    }
    for (int i = 1; i < cfg->argc; i++) {
        const char *a = cfg->argv[i], *file = NULL;
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= cfg->argc) {
                tern__cfg_errorf(err, "config: --config: no file given (from flags)");
                return -EINVAL;
            }
            file = cfg->argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            file = a + 9;
        } else if (strncmp(a, "--", 2) == 0 && !strchr(a, '=')) {
            long idx = tern__cfg_find(cfg, a + 2);
            if (idx >= 0 && cfg->o.keys[idx].type != TERN_CONFIG_BOOL)
                i++;            /* its value */
            continue;
        } else {
            continue;
        }
        if (!*file) {
            tern__cfg_errorf(err, "config: --config: empty file name (from flags)");
            return -EINVAL;
        }
        free(cfg->flag_file);
        if (!(cfg->flag_file = strdup(file)))
            return -ENOMEM;
    }
    if (cfg->flag_file)
        cfg->o.file = cfg->flag_file;
    return 0;
}

int tern_config_new(int argc, char **argv, tern_config_error *err,
                    const tern_config_options *opts, tern_config **out)
{
    TERN_CHECK_ARG(opts);
    TERN_CHECK_ARG(out);
    tern_config_error local;
    if (!err)
        err = &local;
    *err = (tern_config_error){0};
    *out = NULL;
    tern_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    cfg->o = *opts;
    cfg->opts_file = opts->file;
    cfg->n = opts->nkeys;
    cfg->by_name = calloc(cfg->n + 1, sizeof *cfg->by_name);
    cfg->min = calloc(cfg->n + 1, sizeof *cfg->min);
    cfg->max = calloc(cfg->n + 1, sizeof *cfg->max);
    cfg->argv = calloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof *cfg->argv);
    if (!cfg->by_name || !cfg->min || !cfg->max || !cfg->argv) {
        tern_config_free(cfg);
        return -ENOMEM;
    }
    for (; cfg->argc < argc; cfg->argc++) {
        if (!(cfg->argv[cfg->argc] = strdup(argv[cfg->argc]))) {
            tern_config_free(cfg);
            return -ENOMEM;
        }
    }
    if (declare(cfg, err) < 0) {
        tern_config_free(cfg);
        return -EINVAL;
    }
    int rc = config_flag(cfg, err);
    if (rc < 0) {
        tern_config_free(cfg);
        return rc;
    }
    bool help = false;
    cfg_snap *s = tern__cfg_build(cfg, err, &help);
    if (!s) {
        tern_config_free(cfg);
        return -EINVAL;
    }
    atomic_store(&cfg->cur, s);
    *out = cfg;
    return help ? 1 : 0;
}

/* ---- getters ------------------------------------------------------------------- */

static const cfg_val *get(tern_config *cfg, const char *key, tern_config_type want)
{
    long i = tern__cfg_find(cfg, key);
    if (i < 0) {
        fprintf(stderr, "tern_config: no key \"%s\" was declared\n", key);
        abort();
    }
    if (want && cfg->o.keys[i].type != want) {
        fprintf(stderr, "tern_config: key \"%s\" is %s, not %s\n", key,
                tern__cfg_type_noun(cfg->o.keys[i].type), tern__cfg_type_noun(want));
        abort();
    }
    return &atomic_load_explicit(&cfg->cur, memory_order_acquire)->vals[i];
}

const char *tern_config_str(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    return get(cfg, key, TERN_CONFIG_STRING)->text;
}

int64_t tern_config_int(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    return get(cfg, key, TERN_CONFIG_INT)->v.i;
}

double tern_config_double(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    return get(cfg, key, TERN_CONFIG_DOUBLE)->v.d;
}

bool tern_config_bool(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    return get(cfg, key, TERN_CONFIG_BOOL)->v.b;
}

int64_t tern_config_duration(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    return get(cfg, key, TERN_CONFIG_DURATION)->v.i;
}

const char *const *tern_config_list(tern_config *cfg, const char *key, size_t *n)
{
    TERN_CHECK_ARG(cfg);
    const cfg_val *v = get(cfg, key, TERN_CONFIG_LIST);
    if (n)
        *n = v->nlist;
    return (const char *const *)v->list;
}

const char *tern_config_source(tern_config *cfg, const char *key)
{
    TERN_CHECK_ARG(cfg);
    static const char *names[] = {"default", "file", "env", "flag"};
    return names[get(cfg, key, 0)->src];
}

const char *tern_config_file(const tern_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    return cfg->o.file;
}

uint64_t tern_config_generation(tern_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    return atomic_load(&cfg->generation);
}

/* ---- reloading ------------------------------------------------------------------ */

int tern_config_on_change(tern_config *cfg, tern_config_change_fn *fn, void *arg)
{
    TERN_CHECK_ARG(cfg);
    if (cfg->ncb == CFG_MAX_CALLBACKS)
        return -ENOSPC;
    cfg->cb[cfg->ncb].fn = fn;
    cfg->cb[cfg->ncb].arg = arg;
    cfg->ncb++;
    return 0;
}

static bool same_text(const cfg_val *a, const cfg_val *b)
{
    return a->src == b->src &&
           (a->text == b->text || (a->text && b->text && strcmp(a->text, b->text) == 0));
}

/* Give the new snapshot the old one's copy of every value that did not
 * change (see the top).  Without memory for the marks, nothing is handed
 * on: correct, only less frugal. */
static void hand_on(tern_config *cfg, cfg_snap *old, cfg_snap *s)
{
    TERN_ASSERT(old->gave == NULL);     /* replaced once */
    old->gave = calloc(cfg->n ? cfg->n : 1, sizeof *old->gave);
    for (size_t i = 0; old->gave && i < cfg->n; i++) {
        if (!same_text(&old->vals[i], &s->vals[i]))
            continue;
        tern__cfg_val_free(&s->vals[i]);
        s->vals[i] = old->vals[i];
        old->gave[i] = true;
    }
}

/* Free the snapshots replaced more than retain ago.  The chain runs newest
 * first, so they are its tail. */
static void reclaim(tern_config *cfg, cfg_snap *cur)
{
    int64_t retain = cfg->o.retain ? cfg->o.retain : TERN_CONFIG_RETAIN;
    if (retain < 0)
        return;
    int64_t now = tern_now();
    cfg_snap **link = &cur->older;
    while (*link && now - (*link)->retired_at < retain) {
        TERN_ASSERT(!(*link)->older || (*link)->older->retired_at <= (*link)->retired_at);
        link = &(*link)->older;
    }
    cfg_snap *s = *link;
    *link = NULL;
    while (s) {
        cfg_snap *older = s->older;
        tern__cfg_snap_free(s, cfg->n);
        s = older;
    }
}

int tern_config_reload(tern_config *cfg, tern_config_error *err)
{
    TERN_CHECK_ARG(cfg);
    if (atomic_exchange(&cfg->reloading, true))
        return -EBUSY;
    bool help = false;
    cfg_snap *s = tern__cfg_build(cfg, err, &help);
    if (!s) {
        atomic_store(&cfg->reloading, false);
        return -EINVAL;
    }
    cfg_snap *old = atomic_load(&cfg->cur);
    /* a config always has a snapshot; a new one is linked to nothing yet */
    TERN_ASSERT(old != NULL && s != old && s->older == NULL);
    tern_config_change *ch = calloc(cfg->n + 1, sizeof *ch);
    size_t nch = 0;
    for (size_t i = 0; ch && i < cfg->n; i++) {
        if (!tern__cfg_equal(cfg->o.keys[i].type, &old->vals[i], &s->vals[i]))
            ch[nch++] = (tern_config_change){cfg->o.keys[i].name, old->vals[i].text,
                                             s->vals[i].text};
    }
    TERN_ASSERT(nch <= cfg->n);
    TERN_ASSERT(cfg->ncb >= 0 && cfg->ncb <= CFG_MAX_CALLBACKS);
    hand_on(cfg, old, s);
    s->older = old;
    atomic_store_explicit(&cfg->cur, s, memory_order_release);
    old->retired_at = tern_now();
    for (int i = 0; nch && i < cfg->ncb; i++)
        cfg->cb[i].fn(cfg, ch, nch, cfg->cb[i].arg);
    free(ch);
    reclaim(cfg, s);
    atomic_fetch_add(&cfg->generation, 1);      /* after the callbacks: tests wait on it */
    bool was = atomic_exchange(&cfg->reloading, false);
    TERN_ASSERT(was);           /* one reload at a time, this one */
    (void)was;
    return 0;
}
