/*
 * watch.c - reload on SIGHUP, the Unix way to say "re-read your
 * configuration".
 *
 * A coroutine waits for the signal with no deadline (the signal is turned
 * into a netpoller event: no thread is spent, and an idle process wakes
 * for nothing) and reloads; tern_config_watch_stop sets its stop flag and
 * wakes it (tern__signal_wait_or, tern__signal_interrupt).  A failed
 * reload keeps the old values and reports the error.
 * tern_config_watch_stop stops this watcher and the file watcher
 * (watch_file.c) alike.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>

#include "base/check.h"
#include "kit/config/internal.h"
#include "runtime/export.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/signal.h"

void tern_config_on_error(tern_config *cfg, tern_config_error_fn *fn, void *arg)
{
    TERN_CHECK_ARG(cfg);
    cfg->on_error = fn;
    cfg->on_error_arg = arg;
}

void tern__cfg_report(tern_config *cfg, const char *msg)
{
    if (cfg->on_error)
        cfg->on_error(cfg, msg, cfg->on_error_arg);
    else
        tern_log_error("config reload failed", TERN_LOG_STR("error", msg));
}

static int watch_main(void *arg)
{
    tern_config *cfg = arg;
    while (!atomic_load(&cfg->sighup.stop)) {
        static const int hup[] = { SIGHUP };
        int sig = tern__signal_wait_or(hup, 1, TERN_FOREVER, &cfg->sighup.stop);
        if (sig == -EINTR)
            break;
        if (sig < 0) {
            tern__cfg_report(cfg, "SIGHUP can no longer be waited for: reloads on it stop");
            break;
        }
        tern_config_error err;
        if (tern_config_reload(cfg, &err) == -EINVAL)
            tern__cfg_report(cfg, err.msg);
    }
    atomic_store(&cfg->sighup.on, false);
    return 0;
}

int tern_config_watch_sighup(tern_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    if (atomic_exchange(&cfg->sighup.on, true))
        return -EALREADY;
    atomic_store(&cfg->sighup.stop, false);
    int sigs[] = {SIGHUP};
    int r = tern_signal_notify(sigs, 1);
    if (r == 0) {
        tern_go_options o = {.name = "config-sighup"};
        r = tern_go_opts(watch_main, cfg, &o, NULL);
    }
    if (r != 0)
        atomic_store(&cfg->sighup.on, false);
    return r;
}

void tern_config_watch_stop(tern_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    /* Both flags even if one watcher is off: starting one clears its own. */
    atomic_store(&cfg->sighup.stop, true);
    atomic_store(&cfg->file.stop, true);
    tern__signal_interrupt();
    while (atomic_load(&cfg->sighup.on) || atomic_load(&cfg->file.on))
        tern_sleep(CFG_WATCH_POLL / 10);
}
