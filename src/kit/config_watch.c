/*
 * config_watch.c - reload on SIGHUP, the Unix way to say "re-read your
 * configuration".
 *
 * A coroutine waits for the signal with tern_signal_wait (the signal is
 * turned into a netpoller event: no thread is spent) and reloads.  It
 * wakes every WATCH_POLL to look at its stop flag: tern_signal_wait has no
 * way to be interrupted, and a stop that takes 50 ms is fine for a
 * shutdown.  A failed reload keeps the old values and reports the error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>

#include "kit/config_internal.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/signal.h"

#define WATCH_POLL (50 * TERN_MS)

void tern_config_on_error(tern_config *cfg, tern_config_error_fn *fn, void *arg)
{
    cfg->on_error = fn;
    cfg->on_error_arg = arg;
}

static void report(tern_config *cfg, const char *msg)
{
    if (cfg->on_error)
        cfg->on_error(cfg, msg, cfg->on_error_arg);
    else
        tern_log_error("config reload failed", TERN_LOG_STR("error", msg));
}

static int watch_main(void *arg)
{
    tern_config *cfg = arg;
    while (!atomic_load(&cfg->watch_stop)) {
        static const int hup[] = { SIGHUP };
        int sig = tern_signal_wait(hup, 1, tern_now() + WATCH_POLL);
        if (sig != SIGHUP)
            continue;
        tern_config_error err;
        if (tern_config_reload(cfg, &err) == -EINVAL)
            report(cfg, err.msg);
    }
    atomic_store(&cfg->watching, false);
    return 0;
}

int tern_config_watch_sighup(tern_config *cfg)
{
    if (atomic_exchange(&cfg->watching, true))
        return -EALREADY;
    atomic_store(&cfg->watch_stop, false);
    int sigs[] = {SIGHUP};
    int r = tern_signal_notify(sigs, 1);
    if (r == 0) {
        tern_go_options o = {.name = "config-sighup"};
        r = tern_go_opts(watch_main, cfg, &o, NULL);
    }
    if (r != 0)
        atomic_store(&cfg->watching, false);
    return r;
}

void tern_config_watch_stop(tern_config *cfg)
{
    if (!atomic_load(&cfg->watching))
        return;
    atomic_store(&cfg->watch_stop, true);
    while (atomic_load(&cfg->watching))
        tern_sleep(WATCH_POLL / 10);
}
