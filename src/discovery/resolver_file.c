/*
 * resolver_file.c - endpoints from a file, watched: the way a ConfigMap
 * or a deploy script hands a static service its upstreams.
 *
 * A watcher coroutine looks at the file every poll_interval (stat: mtime,
 * size, inode, so a ConfigMap's symlink swap and a rename over the file
 * both count) and on a change reads and parses it, on the blocking pool:
 * a file system may block.  A file gone or malformed is reported as an
 * update with an error and the consumers keep the last good set; the next
 * good version is delivered.  Formats:
 *   JSON   ["10.0.0.1:80", {"addr": "10.0.0.2:80", "weight": 3}, ...]
 *   lines  10.0.0.1:80
 *          10.0.0.2:80 3      # a weight; '#' starts a comment
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/check.h"
#include "tern/context.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define MAX_FILE (4 << 20)
#define MAX_ENDPOINTS 100000

typedef struct file_res {
    char *path;
    int64_t poll;
    tern_resolver_update_fn *update;
    void *arg;
    tern_ctx *stop;             /* cancelled by stop */
    tern_waitgroup running;     /* the watcher */
    struct stat seen;           /* the version last read, good or bad */
    int last_err;               /* the last look's error; 0: it delivered a set */
} file_res;

typedef struct parsed {
    tern_endpoint *eps;
    size_t n, cap;
} parsed;

static void parsed_free(parsed *p)
{
    for (size_t i = 0; i < p->n; i++)
        free((char *)p->eps[i].addr);
    free(p->eps);
    *p = (parsed){0};
}

static int add(parsed *p, const char *addr, size_t len, long long weight)
{
    if (len == 0 || weight < 0 || weight > 10000 || p->n >= MAX_ENDPOINTS)
        return -EBADMSG;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        tern_endpoint *e = realloc(p->eps, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        p->eps = e;
        p->cap = cap;
    }
    char *a = strndup(addr, len);
    if (!a)
        return -ENOMEM;
    p->eps[p->n++] = (tern_endpoint){.addr = a, .weight = (uint32_t)weight};
    return 0;
}

static int parse_json(const char *text, size_t len, parsed *p)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_array(root)) {
        json_decref(root);
        return -EBADMSG;
    }
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v) {
        if (json_is_string(v)) {
            rc = add(p, json_string_value(v), json_string_length(v), 0);
        } else if (json_is_object(v)) {
            json_t *a = json_object_get(v, "addr"), *w = json_object_get(v, "weight");
            if (!json_is_string(a) || (w && !json_is_integer(w)))
                rc = -EBADMSG;
            else
                rc = add(p, json_string_value(a), json_string_length(a),
                         w ? (long long)json_integer_value(w) : 0);
        } else {
            rc = -EBADMSG;
        }
        if (rc < 0)
            break;
    }
    json_decref(root);
    return rc;
}

static int parse_lines(const char *text, size_t len, parsed *p)
{
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *hash = memchr(s, '#', (size_t)(le - s));
        const char *ce = hash ? hash : le;
        while (s < ce && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        const char *a = s;
        while (s < ce && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
        size_t alen = (size_t)(s - a);
        while (s < ce && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        long long weight = 0;
        if (s < ce) {
            char num[16];
            size_t nlen = 0;
            while (s < ce && *s >= '0' && *s <= '9' && nlen < sizeof num - 1)
                num[nlen++] = *s++;
            while (s < ce && (*s == ' ' || *s == '\t' || *s == '\r'))
                s++;
            if (nlen == 0 || s < ce)
                return -EBADMSG;        /* something after the addr that is not a weight */
            num[nlen] = 0;
            weight = atoll(num);
        }
        if (alen) {
            int rc = add(p, a, alen, weight);
            if (rc < 0)
                return rc;
        }
        s = nl ? nl + 1 : end;
    }
    return 0;
}

typedef struct read_job {
    const char *path;
    struct stat st;
    parsed out;
    int rc;
} read_job;

/* On the blocking pool: read the whole file and parse it. */
static int read_file(void *arg)
{
    read_job *j = arg;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return j->rc = -errno;
    if (fstat(fd, &j->st) < 0 || !S_ISREG(j->st.st_mode) || j->st.st_size > MAX_FILE) {
        j->rc = S_ISREG(j->st.st_mode) ? -EFBIG : -EINVAL;
        close(fd);
        return j->rc;
    }
    size_t size = (size_t)j->st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return j->rc = -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    const char *s = buf;
    while (s < buf + got && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    j->rc = s < buf + got && (*s == '[' || *s == '{') ? parse_json(buf, got, &j->out)
                                                      : parse_lines(buf, got, &j->out);
    if (j->rc < 0)
        parsed_free(&j->out);
    free(buf);
    return j->rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read and deliver if the file changed since the last look (or always,
 * the first time). */
static void look(file_res *f, bool first)
{
    struct stat st;
    int src = stat(f->path, &st) < 0 ? -errno : 0;
    if (!first) {
        if (src == 0 && same_file(&st, &f->seen))
            return;                     /* unchanged, good or bad */
        if (src < 0 && f->last_err == src)
            return;                     /* still missing: said so already */
    }
    read_job j = {.path = f->path};
    int rc = src < 0 ? src : tern_blocking(read_file, &j);
    if (rc < 0) {
        tern_log_warn("resolver file unusable, keeping the last set", TERN_LOG_STR("path", f->path),
                      TERN_LOG_STR("error", tern_strerror(rc)));
        f->last_err = rc;
        f->seen = src == 0 ? j.st : (struct stat){0};  /* a bad version is not read again */
        f->update(NULL, 0, rc, f->arg);
        return;
    }
    f->seen = j.st;
    f->last_err = 0;
    f->update(j.out.eps, j.out.n, 0, f->arg);
    parsed_free(&j.out);
}

static int watch_co(void *arg)
{
    file_res *f = arg;
    while (tern_ctx_sleep(f->poll, f->stop) == 0)
        look(f, false);
    tern_waitgroup_done(&f->running);
    return 0;
}

static int file_start(void *impl, tern_resolver_update_fn *update, void *arg)
{
    file_res *f = impl;
    f->update = update;
    f->arg = arg;
    look(f, true);
    tern_waitgroup_add(&f->running, 1);
    int rc = tern_go(watch_co, f);
    if (rc < 0)
        tern_waitgroup_done(&f->running);
    return rc;
}

static void file_stop(void *impl)
{
    file_res *f = impl;
    tern_ctx_cancel(f->stop);
    (void)tern_waitgroup_wait(&f->running, NULL);
}

static void file_free(void *impl)
{
    file_res *f = impl;
    tern_ctx_free(f->stop);
    free(f->path);
    free(f);
}

static const tern_resolver_ops file_ops = {file_start, file_stop, file_free};

int tern_resolver_file_new(const char *path, const tern_resolver_file_options *o,
                           tern_resolver **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!path || !*path || (o && o->poll_interval < 0))
        return -EINVAL;
    file_res *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->poll = o && o->poll_interval ? o->poll_interval : TERN_SEC;
    if (!(f->path = strdup(path)) || tern_ctx_with_cancel(NULL, &f->stop) < 0) {
        free(f->path);
        free(f);
        return -ENOMEM;
    }
    return tern_resolver_new(&file_ops, f, out);
}
