/*
 * tls_watch.c - reload a server config when its files change.
 *
 * A coroutine looks at the files' identity (device, inode, size, mtime)
 * every interval and calls tern_tls_config_reload when any changed.
 * stat() follows symlinks, so the way Kubernetes updates a mounted
 * secret (a new directory, then one atomic symlink swap) is seen like an
 * editor's rename or a write in place.  A file caught half-written fails
 * to parse: the reload fails, the config keeps what it had, and the next
 * look tries again, because the identity recorded is only advanced by a
 * reload that succeeded.
 *
 * Polling, not inotify as the kit's config watch: certificates change
 * rarely, a look is a few stat() calls, and it needs no descriptor.
 * tern_tls_config_free cancels the watcher and waits for it to leave
 * (a sleep that ends at once) before the config goes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net/tls_internal.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define WATCH_MAX_FILES 34

typedef struct ident {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} ident;

struct tern__tls_watch {
    tern_tls_config *cfg;
    int64_t interval;
    tern_ctx *stop;
    tern_waitgroup done;
    ident ids[WATCH_MAX_FILES];
};

static void look(tern_tls_config *cfg, ident *ids)
{
    const char *files[WATCH_MAX_FILES];
    size_t n = tern__tls_config_files(cfg, files, WATCH_MAX_FILES);
    memset(ids, 0, WATCH_MAX_FILES * sizeof *ids);     /* compared whole */
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(files[i], &st) == 0)
            ids[i] = (ident){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    }
}

static int watch_loop(void *arg)
{
    tern__tls_watch *w = arg;
    while (tern_ctx_sleep(w->interval, w->stop) == 0) {
        ident now[WATCH_MAX_FILES];
        look(w->cfg, now);
        if (memcmp(now, w->ids, sizeof now) != 0 && tern_tls_config_reload(w->cfg) == 0)
            memcpy(w->ids, now, sizeof now);
    }
    tern_waitgroup_done(&w->done);      /* the last touch of w */
    return 0;
}

int tern__tls_watch_start(tern_tls_config *cfg, int64_t interval, tern__tls_watch **out)
{
    *out = NULL;
    tern__tls_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->cfg = cfg;
    w->interval = interval;
    look(cfg, w->ids);
    int rc = tern_ctx_with_cancel(NULL, &w->stop);
    if (rc < 0) {
        free(w);
        return rc;
    }
    tern_waitgroup_add(&w->done, 1);
    rc = tern_go_opts(watch_loop, w, &(tern_go_options){.name = "tls-watch"}, NULL);
    if (rc < 0) {
        tern_ctx_free(w->stop);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void tern__tls_watch_stop(tern__tls_watch *w)
{
    if (!w)
        return;
    tern_ctx_cancel(w->stop);
    tern_waitgroup_wait(&w->done, NULL);
    tern_ctx_free(w->stop);
    free(w);
}
