/*
 * gateway.c - the gateway's face (tern/gateway.h): creation, the handler,
 * reloads (by call, or by the file watcher), stats, metrics, and the
 * generations' reference counting (internal.h says why).
 *
 * Taking a reference must not race with a reload dropping the pointer's:
 * the pointer is read and its count raised under a spinlock held for
 * those two instructions, and the reload swaps the pointer under it.  The
 * generation that loses its last reference is freed in a coroutine of its
 * own, so no request waits for health checkers and resolvers to stop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dec.h"
#include "gateway/internal.h"
#include "tern/log.h"
#include "tern/runtime.h"

#define GW_MAX_CONFIG_BYTES (4 << 20)

/* ---- answers and counts ---- */

int tern__gw_error(tern_http_resp *w, int status, const char *msg)
{
    json_t *j = json_pack("{s:s, s:i}", "error", msg ? msg : "", "status", status);
    if (!j)
        return -ENOMEM;
    int rc = tern_http_resp_json(w, status, j);
    json_decref(j);
    return rc;
}

void tern__gw_count(tern_gateway *gw, gw_route *rt, const char *upstream, int status)
{
    if (!gw->requests)
        return;
    char code[TERN__DEC_MAX];
    if (status >= 0)
        tern__dec_u64(code, (uint64_t)status);
    else
        snprintf(code, sizeof code, "%d", status);
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(gw->requests, &c, rt ? rt->name : "-", upstream, code) == 0)
        tern_metrics_counter_inc(c);
}

static void metrics_setup(tern_gateway *gw)
{
    static const char *const req_labels[] = {"route", "upstream", "code", NULL};
    static const char *const lat_labels[] = {"upstream", NULL};
    tern_metrics_family_options o = {.type = TERN_METRICS_COUNTER, .name = "tern_gateway_requests_total",
                                     .help = "Requests the gateway answered, by route, upstream and status.",
                                     .labels = req_labels};
    if (tern_metrics_family_new(gw->metrics, &o, &gw->requests) < 0)
        gw->requests = NULL;    /* a second gateway on one registry: the first one counts */
    o = (tern_metrics_family_options){.type = TERN_METRICS_HISTOGRAM,
                                      .name = "tern_gateway_upstream_duration_seconds",
                                      .help = "Time to an upstream's response head, by upstream.",
                                      .labels = lat_labels};
    if (tern_metrics_family_new(gw->metrics, &o, &gw->latency) < 0)
        gw->latency = NULL;
    (void)tern__gw_epm_new(gw);     /* fails as the others do: the first gateway reports */
}

/* ---- generations ---- */

static gw_gen *acquire(tern_gateway *gw)
{
    tern__spin_lock(&gw->lock);
    gw_gen *g = gw->cur;
    /* the pointer's own reference keeps cur alive while the lock is held */
    TERN_ASSERT(g && atomic_load(&g->refs) > 0);
    atomic_fetch_add(&g->refs, 1);
    tern__spin_unlock(&gw->lock);
    return g;
}

static int free_gen_co(void *arg)
{
    gw_gen *g = arg;
    tern_gateway *gw = g->gw;
    tern__gw_gen_free(g);
    atomic_fetch_sub(&gw->freeing, 1);
    return 0;
}

static void release(gw_gen *g)
{
    long before = atomic_fetch_sub(&g->refs, 1);
    TERN_ASSERT(before > 0);
    if (before != 1)
        return;
    tern_gateway *gw = g->gw;
    atomic_fetch_add(&gw->freeing, 1);
    if (tern_go(free_gen_co, g) < 0)
        free_gen_co(g);
}

gw_gen *tern__gw_acquire(tern_gateway *gw) { return acquire(gw); }
void tern__gw_release(gw_gen *g) { release(g); }

/* ---- loading ---- */

typedef struct read_job {
    const char *path;
    char *buf;
    size_t len;
    struct stat st;
    int rc;
} read_job;

static int read_run(void *arg)
{
    read_job *j = arg;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return j->rc = -errno;
    if (fstat(fd, &j->st) < 0 || !S_ISREG(j->st.st_mode) || j->st.st_size > GW_MAX_CONFIG_BYTES) {
        j->rc = S_ISREG(j->st.st_mode) ? -EFBIG : -EINVAL;
        close(fd);
        return j->rc;
    }
    j->buf = malloc((size_t)j->st.st_size + 1);
    size_t got = 0;
    while (j->buf && got < (size_t)j->st.st_size) {
        ssize_t n = read(fd, j->buf + got, (size_t)j->st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!j->buf)
        return j->rc = -ENOMEM;
    j->len = got;
    return j->rc = 0;
}

static int read_config(tern_gateway *gw, char **buf, size_t *len, gw_err *e)
{
    read_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->path = gw->config_path;
    int rc = tern_self() ? tern_blocking(read_run, j) : read_run(j);
    if (rc >= 0)
        rc = j->rc;
    if (rc == 0) {
        *buf = j->buf;
        *len = j->len;
        gw->seen.ino = j->st.st_ino;
        gw->seen.size = (uint64_t)j->st.st_size;
        gw->seen.mtime = (int64_t)j->st.st_mtim.tv_sec * GW_SEC + j->st.st_mtim.tv_nsec;
    } else {
        free(j->buf);
        tern__gw_fail(e, NULL, "cannot read: %s", rc == -EINVAL ? "not a regular file"
                                            : rc == -EFBIG ? "larger than 4 MiB" : tern_strerror(rc));
    }
    free(j);
    return rc;
}

static bool json_name(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && strcmp(path + n - 5, ".json") == 0;
}

/* The program's config_edit on root, replaced by what it gives back. */
static int edit_config(tern_gateway *gw, json_t **root, gw_err *e)
{
    char *in = json_dumps(*root, JSON_COMPACT), *out = NULL;
    json_decref(*root);
    *root = NULL;
    if (!in)
        return -ENOMEM;
    char why[256] = "";
    int rc = gw->config_edit(in, strlen(in), &out, gw->config_edit_arg, why, sizeof why);
    free(in);
    if (rc < 0) {
        free(out);
        return rc == -ENOMEM ? rc : tern__gw_fail(e, NULL, "config_edit: %s", why[0] ? why : tern_strerror(rc));
    }
    if (!out)
        return tern__gw_fail(e, NULL, "config_edit: returned 0 without a configuration");
    json_error_t je;
    *root = json_loads(out, 0, &je);
    free(out);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return tern__gw_fail(e, NULL, "config_edit: what it returned is not a JSON object (%s)", je.text);
    }
    return 0;
}

/* Build a generation from text (NULL: the file, or the stored text). */
static int load(tern_gateway *gw, const char *text, size_t len, gw_gen **out, gw_err *e)
{
    char *buf = NULL;
    int rc;
    bool from_file = !text && gw->config_path;
    if (from_file) {
        if ((rc = read_config(gw, &buf, &len, e)) < 0)
            return rc == -ENOMEM ? rc : -EINVAL;   /* the sentence says which */
        text = buf;
    } else if (!text) {
        text = gw->config_text;
        len = gw->config_len;
    }
    json_t *root;
    rc = tern__gw_parse_text(text, len, from_file && json_name(gw->config_path), &root, e);
    free(buf);
    if (rc == 0 && gw->config_edit)
        rc = edit_config(gw, &root, e);
    if (rc < 0)
        return rc;
    return tern__gw_gen_new(gw, root, gw->config_dir, out, e);
}

static int watch_co(void *arg);

int tern_gateway_new(const tern_gateway_options *o, tern_gateway **out, char *err, size_t errlen)
{
    TERN_CHECK_ARG(o);
    TERN_CHECK_ARG(out);
    *out = NULL;
    char spare[512];
    gw_err e = {.buf = err && errlen ? err : spare, .len = err && errlen ? errlen : sizeof spare,
                .file = o->config_path ? o->config_path : "config"};
    e.buf[0] = '\0';
    if (!o->config_path && !o->config_text)
        return tern__gw_fail(&e, NULL, "neither config_path nor config_text given");
    if (o->watch_interval < 0)
        return tern__gw_fail(&e, NULL, "watch_interval: negative");
    tern_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return -ENOMEM;
    int rc = -ENOMEM;
    if (o->config_path) {
        char *dup = strdup(o->config_path);
        if (!dup || !(gw->config_path = strdup(o->config_path)) || !(gw->config_dir = strdup(dirname(dup)))) {
            free(dup);
            goto fail;
        }
        free(dup);
    } else {
        if (!(gw->config_text = malloc(o->config_len + 1)))
            goto fail;
        memcpy(gw->config_text, o->config_text, o->config_len);
        gw->config_text[o->config_len] = '\0';
        gw->config_len = o->config_len;
    }
    gw->config_edit = o->config_edit;
    gw->config_edit_arg = o->config_edit_arg;
    gw->metrics = o->metrics ? o->metrics : tern_metrics_default();
    metrics_setup(gw);
    tern_http_client_options h1 = {.max_idle_per_host = 256};
    tern_http_client_options h2 = {.h2c_prior_knowledge = true};
    if ((rc = tern_http_client_new(&h1, &gw->h1)) < 0 || (rc = tern_http_client_new(&h2, &gw->h2)) < 0)
        goto fail;
    if ((rc = load(gw, NULL, 0, &gw->cur, &e)) < 0)
        goto fail;
    gw->cur->number = 1;
    atomic_store(&gw->generation, 1);
    if (o->watch && gw->config_path) {
        gw->watch_interval = o->watch_interval ? o->watch_interval : GW_DEFAULT_WATCH_INTERVAL;
        if ((rc = tern_ctx_with_cancel(NULL, &gw->watch_stop)) < 0)
            goto fail;
        gw->watching = true;
        if ((rc = tern_go(watch_co, gw)) < 0) {
            gw->watching = false;
            goto fail;
        }
    }
    *out = gw;
    return 0;
fail:
    tern_gateway_free(gw);
    return rc;
}

void tern_gateway_free(tern_gateway *gw)
{
    if (!gw)
        return;
    tern__gw_epm_detach(gw);
    if (gw->watching) {
        atomic_store(&gw->stop_watch, true);
        tern_ctx_cancel(gw->watch_stop);    /* ends its sleep at once */
        while (atomic_load(&gw->stop_watch))
            tern_sleep(GW_MS);  /* the watcher clears it on its way out */
    }
    tern_ctx_free(gw->watch_stop);
    if (gw->cur)
        release(gw->cur);
    while (atomic_load(&gw->freeing) > 0)
        tern_sleep(GW_MS);
    tern_http_client_free(gw->h1);
    tern_http_client_free(gw->h2);
    free(gw->config_path);
    free(gw->config_dir);
    free(gw->config_text);
    free(gw);
}

int tern_gateway_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_gateway *gw = arg;
    TERN_CHECK_ARG(gw);
    atomic_fetch_add(&gw->requests_n, 1);
    gw_gen *g = acquire(gw);
    int rc = tern_http_router_serve(r, w, g->router);
    release(g);
    /* an error before anything was sent (the client's body, memory) is
     * answered in the gateway's JSON shape, with the server's status */
    if (rc < 0 && rc != -ECANCELED && !tern_http_resp_committed(w)) {
        int status = tern_http_error_status(r, rc);
        char msg[128];
        snprintf(msg, sizeof msg, "%s", tern_strerror(rc));
        tern_http_resp_replace_body(w, "", 0);
        return tern__gw_error(w, status, msg);
    }
    return rc;
}

int tern_gateway_reload(tern_gateway *gw, const char *text, size_t len, char *err, size_t errlen)
{
    TERN_CHECK_ARG(gw);
    char spare[512];
    gw_err e = {.buf = err && errlen ? err : spare, .len = err && errlen ? errlen : sizeof spare,
                .file = text || !gw->config_path ? "config" : gw->config_path};
    e.buf[0] = '\0';
    tern_mutex_lock(&gw->reload_mu);
    gw_gen *g = NULL;
    int rc = load(gw, text, len, &g, &e);
    if (rc < 0) {
        atomic_fetch_add(&gw->reload_failures, 1);
        tern_mutex_unlock(&gw->reload_mu);
        return rc;
    }
    g->number = atomic_fetch_add(&gw->generation, 1) + 1;
    tern__spin_lock(&gw->lock);
    gw_gen *old = gw->cur;
    gw->cur = g;
    tern__spin_unlock(&gw->lock);
    atomic_fetch_add(&gw->reloads, 1);
    tern_mutex_unlock(&gw->reload_mu);
    release(old);
    return 0;
}

int tern_gateway_stats(const tern_gateway *gw, struct tern_gateway_stats *out)
{
    TERN_CHECK_ARG(gw);
    TERN_CHECK_ARG(out);
    *out = (struct tern_gateway_stats){
        .requests = atomic_load(&gw->requests_n),
        .no_route = atomic_load(&gw->no_route),
        .upstream_errors = atomic_load(&gw->upstream_errors),
        .rejected_auth = atomic_load(&gw->rejected_auth),
        .rejected_limit = atomic_load(&gw->rejected_limit),
        .reloads = atomic_load(&gw->reloads),
        .reload_failures = atomic_load(&gw->reload_failures),
        .generation = atomic_load(&gw->generation),
    };
    return 0;
}

/* ---- the file watcher ---- */

/* Polls stat(2): inode, size and mtime, so an editor's rename and a
 * ConfigMap's symlink swap count as changes.  A failed reload is logged
 * once per content (the stat it saw is remembered).  Between checks it
 * sleeps the whole interval on watch_stop, which tern_gateway_free
 * cancels: a 10 ms poll of a stop flag woke an idle gateway's runtime
 * 100 times a second (~2% of a CPU each, more on a busy machine). */
static int watch_co(void *arg)
{
    tern_gateway *gw = arg;
    int64_t next = tern_now() + gw->watch_interval;
    while (tern_ctx_sleep(next - tern_now(), gw->watch_stop) == 0) {
        if (tern_now() < next)
            continue;
        next = tern_now() + gw->watch_interval;
        struct stat st;
        if (stat(gw->config_path, &st) < 0)
            continue;
        int64_t mtime = (int64_t)st.st_mtim.tv_sec * GW_SEC + st.st_mtim.tv_nsec;
        tern_mutex_lock(&gw->reload_mu);
        bool same = st.st_ino == gw->seen.ino && (uint64_t)st.st_size == gw->seen.size &&
                    mtime == gw->seen.mtime;
        tern_mutex_unlock(&gw->reload_mu);
        if (same)
            continue;
        char err[512];
        if (tern_gateway_reload(gw, NULL, 0, err, sizeof err) < 0) {
            tern_log_error("gateway reload failed", TERN_LOG_STR("error", err));
            tern_mutex_lock(&gw->reload_mu);
            gw->seen.ino = st.st_ino;   /* not again until it changes */
            gw->seen.size = (uint64_t)st.st_size;
            gw->seen.mtime = mtime;
            tern_mutex_unlock(&gw->reload_mu);
        } else {
            tern_log_info("gateway configuration reloaded", TERN_LOG_STR("file", gw->config_path));
        }
    }
    atomic_store(&gw->stop_watch, false);
    return 0;
}
