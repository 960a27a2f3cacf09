/*
 * load.c - one snapshot from the four layers: defaults, then the
 * JSON file, then the environment, then the flags, each overriding the
 * one before; then the limits, checked on the values that won.
 *
 * Every problem is collected (not just the first), so that a person fixing
 * a ConfigMap sees all its mistakes at once; each message names the key
 * and the source: `config: http.port: "abc" is not an integer (from env
 * SVC_HTTP_PORT)`.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/json_depth.h"
#include "kit/config/internal.h"

void tern__cfg_errorf(tern_config_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t len = strlen(err->msg);
    if (err->count && len + 1 < sizeof err->msg)
        err->msg[len++] = '\n';
    err->msg[len] = 0;
    if (len + 1 < sizeof err->msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
        va_end(ap);
    }
    err->count++;
}

void tern__cfg_env_name(const tern_config *cfg, size_t idx, char *buf, size_t len)
{
    const char *prefix = cfg->o.env_prefix;
    const char *name = cfg->o.keys[idx].name;
    if (!prefix) {
        buf[0] = 0;
        return;
    }
    size_t n = (size_t)snprintf(buf, len, "%s%s", prefix, *prefix ? "_" : "");
    for (const char *p = name; *p && n + 1 < len; p++)
        buf[n++] = *p == '.' || *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n < len ? n : len - 1] = 0;
}

/* Where a value came from, for messages: "env SVC_HTTP_PORT". */
static void source_desc(const tern_config *cfg, size_t idx, int src, char *buf, size_t len)
{
    char env[256];
    switch (src) {
    case SRC_FILE:
        snprintf(buf, len, "file %s", cfg->o.file);
        break;
    case SRC_ENV:
        tern__cfg_env_name(cfg, idx, env, sizeof env);
        snprintf(buf, len, "env %s", env);
        break;
    case SRC_FLAG:
        snprintf(buf, len, "flag --%s", cfg->o.keys[idx].name);
        break;
    default:
        snprintf(buf, len, "default");
    }
}

/* Parse text for key idx from src into the snapshot, replacing what an
 * earlier layer put there; list, if not NULL, is a ready parsed list. */
static void set_val(tern_config *cfg, cfg_snap *s, size_t idx, const char *text, int src,
                    char **list, size_t nlist, tern_config_error *err)
{
    const tern_config_key *k = &cfg->o.keys[idx];
    cfg_val v = {.src = src, .list = list, .nlist = nlist};
    const char *why = list ? NULL : tern__cfg_parse(k->type, text, &v);
    if (!why && !(v.text = strdup(text)))
        why = "cannot be stored (out of memory)";
    if (why) {
        char desc[300];
        source_desc(cfg, idx, src, desc, sizeof desc);
        tern__cfg_errorf(err, "config: %s: \"%s\" %s (from %s)", k->name, text, why, desc);
        tern__cfg_val_free(&v);
        return;
    }
    tern__cfg_val_free(&s->vals[idx]);
    s->vals[idx] = v;
}

/* ---- the file ---------------------------------------------------------------- */

/* Whether some declared key starts with prefix + ".". */
static bool is_section(const tern_config *cfg, const char *prefix)
{
    size_t l = strlen(prefix);
    for (size_t i = 0; i < cfg->n; i++) {
        const char *name = cfg->o.keys[i].name;
        if (strncmp(name, prefix, l) == 0 && name[l] == '.')
            return true;
    }
    return false;
}

/* A JSON array of strings as a list, with its text ("a,b"). */
static bool json_list(json_t *arr, char ***list, size_t *n, char **text)
{
    size_t cnt = json_array_size(arr), tl = 1;
    for (size_t i = 0; i < cnt; i++) {
        if (!json_is_string(json_array_get(arr, i)))
            return false;
        tl += strlen(json_string_value(json_array_get(arr, i))) + 1;
    }
    *list = calloc(cnt + 1, sizeof **list);
    *text = calloc(1, tl);
    for (size_t i = 0; *list && *text && i < cnt; i++) {
        const char *e = json_string_value(json_array_get(arr, i));
        (*list)[i] = strdup(e);
        if (i)
            strcat(*text, ",");
        strcat(*text, e);
    }
    *n = cnt;
    return true;
}

static void file_value(tern_config *cfg, cfg_snap *s, size_t idx, json_t *v, tern_config_error *err)
{
    const tern_config_key *k = &cfg->o.keys[idx];
    char num[64];
    const char *text = NULL;
    if (json_is_null(v))
        return;                 /* as if absent */
    if (json_is_string(v))
        text = json_string_value(v);
    else if (k->type == TERN_CONFIG_LIST && json_is_array(v)) {
        char **list = NULL, *joined = NULL;
        size_t n = 0;
        if (json_list(v, &list, &n, &joined) && list && joined) {
            set_val(cfg, s, idx, joined, SRC_FILE, list, n, err);
            free(joined);
            return;
        }
        cfg_val tmp = {.list = list};
        tern__cfg_val_free(&tmp);
        free(joined);
    } else if (k->type != TERN_CONFIG_STRING && k->type != TERN_CONFIG_LIST) {
        if (json_is_integer(v))
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            snprintf(num, sizeof num, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
            snprintf(num, sizeof num, "%s", json_is_true(v) ? "true" : "false");
        text = json_is_number(v) || json_is_boolean(v) ? num : NULL;
    }
    if (text) {
        set_val(cfg, s, idx, text, SRC_FILE, NULL, 0, err);
        return;
    }
    char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    tern__cfg_errorf(err, "config: %s: %s is not %s (from file %s)", k->name, dump ? dump : "?",
                    tern__cfg_type_noun(k->type), cfg->o.file);
    free(dump);
}

static void walk(tern_config *cfg, cfg_snap *s, json_t *obj, const char *prefix,
                 tern_config_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        char full[512];
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", k);
        long idx = tern__cfg_find(cfg, full);
        if (idx >= 0)
            file_value(cfg, s, (size_t)idx, v, err);
        else if (json_is_object(v) && is_section(cfg, full))
            walk(cfg, s, v, full, err);
        else
            tern__cfg_errorf(err, "config: %s: unknown key (from file %s)", full, cfg->o.file);
    }
}

/* What kind of file a non-regular mode is, for the message. */
static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a file";
}

typedef struct read_job {
    const char *path;
    size_t max;
    char *buf;
    size_t len;
    char *why;
    size_t whylen;
    bool ran;
} read_job;

/* The file into j->buf, refusing what could block or grow without
 * bound.  O_NONBLOCK: open(2) of a FIFO waits for a writer otherwise, and
 * a worker thread stuck there stops every coroutine of its P (and a
 * SIGHUP's reload stuck the next).  It has no effect on a regular
 * file's reads.  The size is checked twice: fstat's before reading, and
 * the bytes read (a file that grows meanwhile), never reading more than
 * max + 1. */
static int read_run(void *arg)
{
    read_job *j = arg;
    j->ran = true;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(j->why, j->whylen, "%s", strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(j->why, j->whylen, "%s", strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(j->why, j->whylen, "not a regular file (%s)", file_kind(st.st_mode));
        close(fd);
        return -EINVAL;
    }
    if ((uintmax_t)st.st_size > j->max) {
        snprintf(j->why, j->whylen, "%jd bytes, over the limit of %zu (max_file_bytes)",
                 (intmax_t)st.st_size, j->max);
        close(fd);
        return -EFBIG;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;     /* +1: sees growth */
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        snprintf(j->why, j->whylen, "%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > j->max)
                break;
            size_t ncap = cap * 2 > j->max + 1 ? j->max + 1 : cap * 2;
            char *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                close(fd);
                snprintf(j->why, j->whylen, "%s", strerror(ENOMEM));
                return -ENOMEM;
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            snprintf(j->why, j->whylen, "%s", strerror(e));
            free(b);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > j->max) {
        snprintf(j->why, j->whylen, "over %zu bytes, the limit (max_file_bytes)", j->max);
        free(b);
        return -EFBIG;
    }
    j->buf = b;
    j->len = n;
    return 0;
}

int tern__cfg_read_file(const char *path, size_t max, char **buf, size_t *len, char *why,
                        size_t whylen)
{
    char spare[8];
    read_job *j = malloc(sizeof *j);       /* not on the stack: a shared-stack caller's moves */
    if (!j)
        return -ENOMEM;
    *j = (read_job){.path = path, .max = max ? max : TERN_CONFIG_MAX_FILE_BYTES,
                    .why = why ? why : spare, .whylen = why ? whylen : sizeof spare};
    /* On a coroutine the blocking pool does the I/O (an NFS or FUSE
     * mount can stall any call); before the runtime runs, a plain call. */
    int r = tern_self() ? tern_blocking(read_run, j) : read_run(j);
    if (!j->ran) {
        snprintf(j->why, j->whylen, "%s", strerror(-r));
    }
    *buf = j->buf;
    *len = j->len;
    free(j);
    return r;
}

uint64_t tern__cfg_sum(const char *buf, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

static bool is_yaml(const char *path)
{
    size_t n = strlen(path);
    return (n > 5 && strcmp(path + n - 5, ".yaml") == 0) || (n > 4 && strcmp(path + n - 4, ".yml") == 0);
}

static void load_yaml(tern_config *cfg, cfg_snap *s, const char *path, const char *buf, size_t len,
                      tern_config_error *err)
{
    json_t *root;
    char why[300];
    if (tern_config_parse_yaml(buf, len, &root, why, sizeof why) < 0) {
        tern__cfg_errorf(err, "config: file %s: %s", path, why);
        return;
    }
    if (!json_is_object(root))
        tern__cfg_errorf(err, "config: file %s: not a YAML mapping", path);
    else
        walk(cfg, s, root, "", err);
    json_decref(root);
}

/* Read whole, so that the sum the file watcher compares with is that of
 * exactly the bytes parsed here. */
static void load_file(tern_config *cfg, cfg_snap *s, tern_config_error *err)
{
    const char *path = cfg->o.file;
    char *buf;
    size_t len;
    char why[200];
    int r = tern__cfg_read_file(path, cfg->o.max_file_bytes, &buf, &len, why, sizeof why);
    atomic_store(&cfg->file_sum, r == 0 ? tern__cfg_sum(buf, len) : 0);
    if (r == -EINVAL || r == -EFBIG) {
        tern__cfg_errorf(err, "config: %s: %s", path, why);    /* the file is the problem */
        return;
    }
    if (r < 0) {
        if (!(r == -ENOENT && cfg->o.file_optional))
            tern__cfg_errorf(err, "config: cannot read file %s: %s", path, why);
        return;
    }
    if (is_yaml(path))
        load_yaml(cfg, s, path, buf, len, err);
    else
        tern__cfg_load_json(cfg, s, path, buf, len, err);
    free(buf);
}

void tern__cfg_load_json(tern_config *cfg, cfg_snap *s, const char *path, const char *buf,
                         size_t len, tern_config_error *err)
{
    /* Before jansson, which recurses per level: a file nested a few
     * hundred deep would overflow the stack of the coroutine reloading it. */
    if (!tern__json_depth_ok(buf, len, TERN_CONFIG_MAX_DEPTH)) {
        tern__cfg_errorf(err, "config: file %s: nested deeper than %d", path, TERN_CONFIG_MAX_DEPTH);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        tern__cfg_errorf(err, "config: file %s: line %d column %d: %s", path, je.line, je.column,
                        je.text);
        return;
    }
    if (!json_is_object(root))
        tern__cfg_errorf(err, "config: file %s: not a JSON object", path);
    else
        walk(cfg, s, root, "", err);
    json_decref(root);
}

/* ---- environment and flags ------------------------------------------------------ */

static void load_env(tern_config *cfg, cfg_snap *s, tern_config_error *err)
{
    for (size_t i = 0; i < cfg->n; i++) {
        char name[256];
        tern__cfg_env_name(cfg, i, name, sizeof name);
        const char *v = getenv(name);
        if (v)
            set_val(cfg, s, i, v, SRC_ENV, NULL, 0, err);
    }
}

static void load_flags(tern_config *cfg, cfg_snap *s, tern_config_error *err, bool *help)
{
    for (int i = 1; i < cfg->argc; i++) {
        const char *a = cfg->argv[i];
        if (strcmp(a, "--") == 0)
            break;              /* the rest is the program's */
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            continue;
        }
        /* The file layer's, taken by tern_config_new (config_flag). */
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            tern__cfg_errorf(err, "config: %s: unexpected argument (from flags)", a);
            continue;
        }
        const char *eq = strchr(a + 2, '=');
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)), a + 2);
        long idx = tern__cfg_find(cfg, key);
        if (idx < 0) {
            tern__cfg_errorf(err, "config: %s: unknown flag (from flag --%s)", key, key);
            if (!eq && i + 1 < cfg->argc && strncmp(cfg->argv[i + 1], "--", 2) != 0)
                i++;            /* its value, most likely */
            continue;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (cfg->o.keys[idx].type == TERN_CONFIG_BOOL)
            val = "true";
        else if (i + 1 < cfg->argc)
            val = cfg->argv[++i];
        else {
            tern__cfg_errorf(err, "config: %s: no value (from flag --%s)", key, key);
            continue;
        }
        set_val(cfg, s, (size_t)idx, val, SRC_FLAG, NULL, 0, err);
    }
}

/* ---- limits ------------------------------------------------------------------------ */

static void check_limits(tern_config *cfg, cfg_snap *s, size_t i, tern_config_error *err)
{
    const tern_config_key *k = &cfg->o.keys[i];
    const cfg_val *v = &s->vals[i], *lo = &cfg->min[i], *hi = &cfg->max[i];
    char desc[300];
    source_desc(cfg, i, v->src, desc, sizeof desc);
    bool below = false, above = false;
    switch (k->type) {
    case TERN_CONFIG_INT:
    case TERN_CONFIG_DURATION:
        below = lo->text && v->v.i < lo->v.i;
        above = hi->text && v->v.i > hi->v.i;
        break;
    case TERN_CONFIG_DOUBLE:
        below = lo->text && v->v.d < lo->v.d;
        above = hi->text && v->v.d > hi->v.d;
        break;
    case TERN_CONFIG_STRING:
        if (k->one_of) {
            bool ok = false;
            char allowed[400] = "";
            for (const char *const *p = k->one_of; *p; p++) {
                ok |= strcmp(*p, v->text) == 0;
                size_t l = strlen(allowed);
                snprintf(allowed + l, sizeof allowed - l, "%s%s", l ? ", " : "", *p);
            }
            if (!ok)
                tern__cfg_errorf(err, "config: %s: \"%s\" is not one of %s (from %s)", k->name,
                                v->text, allowed, desc);
        }
        break;
    default:
        break;
    }
    if (below)
        tern__cfg_errorf(err, "config: %s: \"%s\" is below the minimum %s (from %s)", k->name,
                        v->text, lo->text, desc);
    if (above)
        tern__cfg_errorf(err, "config: %s: \"%s\" is above the maximum %s (from %s)", k->name,
                        v->text, hi->text, desc);
}

/* ---- the snapshot ---------------------------------------------------------------------- */

void tern__cfg_snap_free(cfg_snap *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        if (!s->gave || !s->gave[i])
            tern__cfg_val_free(&s->vals[i]);
    free(s->gave);
    free(s);
}

cfg_snap *tern__cfg_build(tern_config *cfg, tern_config_error *err, bool *help)
{
    tern_config_error local;
    if (!err)
        err = &local;
    *err = (tern_config_error){0};
    cfg_snap *s = calloc(1, sizeof *s + cfg->n * sizeof s->vals[0]);
    if (!s) {
        tern__cfg_errorf(err, "config: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n; i++) {
        const char *d = cfg->o.keys[i].def;
        set_val(cfg, s, i, d ? d : (cfg->o.keys[i].type == TERN_CONFIG_STRING ||
                                    cfg->o.keys[i].type == TERN_CONFIG_LIST
                                        ? ""
                                        : cfg->o.keys[i].type == TERN_CONFIG_BOOL ? "false" : "0"),
                SRC_DEFAULT, NULL, 0, err);
    }
    if (cfg->o.file)
        load_file(cfg, s, err);
    if (cfg->o.env_prefix)
        load_env(cfg, s, err);
    load_flags(cfg, s, err, help);
    /* Limits only once everything parsed: a value that failed to parse
     * left an earlier layer's in place, and judging that would mislead. */
    bool parsed = !err->count;
    for (size_t i = 0; i < cfg->n && parsed; i++)
        check_limits(cfg, s, i, err);
    if (err->count) {
        tern__cfg_snap_free(s, cfg->n);
        return NULL;
    }
    return s;
}
