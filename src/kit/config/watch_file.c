/*
 * watch_file.c - reload when the file changes: Kubernetes never
 * sends SIGHUP when a mounted ConfigMap changes, and people editing a
 * file expect it to be picked up.
 *
 * inotify through the netpoller: a coroutine parks in tern_fd_wait on a
 * non-blocking inotify fd, so no thread is spent.
 *
 * What is watched is the file's directory, not the file: editors write a
 * temp file and rename it over the file, `cp` rewrites it, and the kubelet
 * swaps a symlink, and a watch on the file's inode would miss the first
 * and the last.  Events are kept by name: the file's own, and, when the
 * file is a symlink with a relative target, the target's first component.
 * For a ConfigMap that is the kubelet's layout:
 *
 *     config.json -> ..data/config.json
 *     ..data      -> ..2026_01_02_03_04_05.123       (swapped by a rename)
 *
 * so a change shows as "..data" being replaced, never as config.json.
 * When the file resolves into another directory, that one is watched too
 * (for the resolved name), so an in-place edit of the target is seen; the
 * resolution is redone at every check, following the swaps.
 *
 * Debounce: one save is several events (the kubelet makes five), so a
 * check waits until SETTLE has passed without a kept event (and no longer
 * than MAX_DELAY after the first).  A check reads the file and compares
 * its hash with that of the bytes the last load parsed (file_sum,
 * recorded by tern__cfg_build, so the first load and SIGHUP reloads count):
 * the same bytes (a `touch`, a save without changes, a SIGHUP reload that
 * came first) reload nothing, and neither does a file that is still
 * unreadable (hash 0).  A failed reload keeps the old values and is
 * reported like SIGHUP's; its bytes count as seen, so a broken file is
 * reported once, and the next write that changes it is loaded.  The file
 * is read as tern_config_reload reads it (tern__cfg_read_file: opened
 * non-blocking, only a regular file, bounded in size, on the blocking
 * pool), so a FIFO or a stalled mount swapped in stalls no worker.
 *
 * Re-arming: when the directory goes away (deleted, moved, unmounted:
 * IN_IGNORED and friends), the watch is added again by path, with a
 * backoff from RETRY_MIN doubling up to RETRY_MAX, and once it is back the
 * file is checked (it may have changed meanwhile).  A queue overflow
 * counts as a change.
 *
 * Stopping: the coroutine wakes every CFG_WATCH_POLL to look at its stop
 * flag (SIGHUP's watcher is woken by the stop instead; this one would need
 * a second fd to be).  It owns the inotify fd and closes it itself:
 * closing it from the stopper could let the number be reused by another
 * open while the watcher still reads it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "base/check.h"
#include "kit/config/internal.h"
#include "runtime/export.h"

#define SETTLE    (100 * TERN_MS)
#define MAX_DELAY (1 * TERN_SEC)
#define RETRY_MIN (100 * TERN_MS)
#define RETRY_MAX (5 * TERN_SEC)

/* IN_ONLYDIR: a path that is no longer a directory is not armed. */
#define DIR_EVENTS                                                                      \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* The watched directory itself went away. */
#define GONE (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)

typedef struct fwatch {
    tern_config *cfg;
    int fd;                             /* inotify */
    int wd;                             /* on dir; -1 while lost */
    char dir[PATH_MAX], base[NAME_MAX + 1];
    char link_head[NAME_MAX + 1];       /* first component of a relative symlink target */
    int real_wd;                        /* on real_dir; -1: none (may equal wd) */
    char real_dir[PATH_MAX], real_base[NAME_MAX + 1];
    int64_t retry_at, backoff;          /* re-arming, while wd < 0 */
    int64_t first_event, check_at;      /* check_at 0: no check pending */
} fwatch;

/* path into its directory and last component; false if either won't fit. */
static bool split(const char *path, char *dir, char *base)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t dlen = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    if (!*name || strlen(name) > NAME_MAX || dlen >= PATH_MAX)
        return false;
    memcpy(dir, slash ? path : ".", dlen);
    dir[dlen] = 0;
    strcpy(base, name);
    return true;
}

static void drop_real(fwatch *w)
{
    if (w->real_wd >= 0 && w->real_wd != w->wd)
        inotify_rm_watch(w->fd, w->real_wd);
    w->real_wd = -1;
}

/* Follow the file's symlink, if it is one: the name in dir that leads
 * to the target, and a watch on the directory the target is in. */
static void resolve(fwatch *w)
{
    const char *path = w->cfg->o.file;
    char head[NAME_MAX + 2];            /* only the first component matters */
    w->link_head[0] = 0;
    ssize_t n = readlink(path, head, sizeof head - 1);
    char *real = n > 0 ? realpath(path, NULL) : NULL;
    char *slash = real ? strrchr(real, '/') : NULL;
    if (n > 0 && head[0] != '/') {
        head[n] = 0;
        size_t l = strcspn(head, "/");
        if (l <= NAME_MAX)
            snprintf(w->link_head, sizeof w->link_head, "%.*s", (int)l, head);
    }
    if (!slash || strlen(slash + 1) > NAME_MAX) {
        drop_real(w);                   /* not a symlink, dangling, or gone */
        free(real);
        return;
    }
    strcpy(w->real_base, slash + 1);
    slash[slash == real] = 0;           /* "/x" is in "/" */
    if (w->real_wd < 0 || strcmp(real, w->real_dir) != 0) {
        drop_real(w);
        /* dir itself gives back wd (one watch per inode), which
         * drop_real then leaves alone. */
        w->real_wd = inotify_add_watch(w->fd, real, DIR_EVENTS);
        snprintf(w->real_dir, sizeof w->real_dir, "%s", real);
    }
    free(real);
}

static int arm(fwatch *w)
{
    int wd = inotify_add_watch(w->fd, w->dir, DIR_EVENTS);
    if (wd < 0)
        return -errno;
    w->wd = wd;
    w->backoff = 0;
    resolve(w);
    return 0;
}

/* A check SETTLE after the latest event, but at most MAX_DELAY after the
 * first one of the burst (a file rewritten without pause still loads). */
static void schedule_check(fwatch *w, int64_t now)
{
    if (!w->check_at)
        w->first_event = now;
    w->check_at = now + SETTLE;
    if (w->check_at > w->first_event + MAX_DELAY)
        w->check_at = w->first_event + MAX_DELAY;
}

/* Whether e says something about the file. */
static bool matters(fwatch *w, const struct inotify_event *e, int64_t now)
{
    if (e->mask & IN_Q_OVERFLOW)
        return true;                    /* events were lost: look */
    bool in_dir = e->wd == w->wd, in_real = e->wd == w->real_wd;
    if (!in_dir && !in_real)
        return false;                   /* a watch dropped earlier */
    if (e->mask & GONE) {
        if (e->mask & IN_MOVE_SELF)
            inotify_rm_watch(w->fd, e->wd);     /* the path is what counts */
        if (in_real)
            w->real_wd = -1;
        if (in_dir) {
            w->wd = -1;
            w->retry_at = now;
        }
        return true;
    }
    if (!e->len)
        return false;
    return (in_dir && (strcmp(e->name, w->base) == 0 ||
                       (w->link_head[0] && strcmp(e->name, w->link_head) == 0))) ||
           (in_real && strcmp(e->name, w->real_base) == 0);
}

/* Read every queued event (to EAGAIN: the netpoller is edge-triggered). */
static bool drain(fwatch *w, int64_t now)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return hit;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            hit |= matters(w, e, now);
            p += sizeof *e + e->len;
        }
    }
}

/* The events have settled: reload if the bytes differ from the last load. */
static void check(fwatch *w)
{
    tern_config *cfg = w->cfg;
    w->check_at = 0;
    resolve(w);
    char *buf;
    size_t len;
    uint64_t sum = tern__cfg_read_file(cfg->o.file, cfg->o.max_file_bytes, &buf, &len, NULL, 0) == 0
                       ? tern__cfg_sum(buf, len)
                       : 0;
    free(buf);
    if (sum == atomic_load(&cfg->file_sum))
        return;                         /* also: still unreadable, already reported */
    tern_config_error err;
    int r = tern_config_reload(cfg, &err);
    if (r == -EBUSY)
        schedule_check(w, tern_now());  /* another reload runs: look again after it */
    else if (r == -EINVAL)
        tern__cfg_report(cfg, err.msg);
}

static void rearm(fwatch *w, int64_t now)
{
    if (arm(w) == 0) {
        schedule_check(w, now);
        return;
    }
    w->backoff = w->backoff ? w->backoff * 2 : RETRY_MIN;
    if (w->backoff > RETRY_MAX)
        w->backoff = RETRY_MAX;
    w->retry_at = now + w->backoff;
}

static int watch_file_main(void *arg)
{
    fwatch *w = arg;
    tern_config *cfg = w->cfg;
    while (!atomic_load(&cfg->file.stop)) {
        int64_t until = tern_now() + CFG_WATCH_POLL;
        if (w->check_at && w->check_at < until)
            until = w->check_at;
        if (w->wd < 0 && w->retry_at < until)
            until = w->retry_at;
        int r = tern_fd_wait(w->fd, TERN_FD_READ, until);
        if (r < 0 && r != -ETIMEDOUT)
            tern_sleep_until(until);    /* never spin on a failing wait */
        int64_t now = tern_now();
        if (drain(w, now))
            schedule_check(w, now);
        if (w->wd < 0 && now >= w->retry_at)
            rearm(w, now);
        if (w->check_at && now >= w->check_at)
            check(w);
    }
    tern_fd_close(w->fd);
    free(w);
    atomic_store(&cfg->file.on, false);
    return 0;
}

/* The watcher's state with its first watch; -errno. */
static int setup(fwatch *w, tern_config *cfg)
{
    *w = (fwatch){.cfg = cfg, .fd = -1, .wd = -1, .real_wd = -1};
    if (!split(cfg->o.file, w->dir, w->base))
        return -EINVAL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0)
        return -errno;
    tern__fd_adopt(w->fd);
    int r = arm(w);
    if (r == -ENOENT)
        r = 0;                          /* an optional file's directory may come later */
    /* Changes between the load and now were not seen; a check is cheap. */
    schedule_check(w, tern_now());
    return r;
}

int tern_config_watch_file(tern_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    if (!cfg->o.file)
        return -EINVAL;
    if (atomic_exchange(&cfg->file.on, true))
        return -EALREADY;
    atomic_store(&cfg->file.stop, false);
    fwatch *w = malloc(sizeof *w);
    int r = w ? setup(w, cfg) : -ENOMEM;
    if (r == 0) {
        tern_go_options o = {.name = "config-file"};
        r = tern_go_opts(watch_file_main, w, &o, NULL);
    }
    if (r != 0) {
        if (w && w->fd >= 0)
            close(w->fd);
        free(w);
        atomic_store(&cfg->file.on, false);
    }
    return r;
}
