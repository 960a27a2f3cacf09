/*
 * internal.h - what the parts of tern_config share: values and
 * snapshots (config.c), parsing text by type (parse.c), building a
 * snapshot from the layers (load.c), the SIGHUP watcher
 * (watch.c), the file watcher (watch_file.c) and --help
 * (help.c).
 */
#ifndef TERN_KIT_CONFIG_INTERNAL_H
#define TERN_KIT_CONFIG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/config.h"
#include "tern/runtime.h"

enum { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };

/* One key's value: its text as the source wrote it, and that text parsed. */
typedef struct cfg_val {
    char *text;
    int src;
    union {
        int64_t i;              /* int, duration */
        double d;
        bool b;
    } v;
    char **list;                /* list: NULL-terminated, owned */
    size_t nlist;
} cfg_val;

/* An immutable set of values (to readers: the fields below vals' are the
 * reloader's, never read by a getter).  Replaced snapshots wait on
 * `older`, newest first, for the retain period (config.c), so readers
 * never need a reference count. */
typedef struct cfg_snap {
    struct cfg_snap *older;
    int64_t retired_at;         /* tern_now() when a reload replaced it */
    bool *gave;                 /* [n]: values handed on to the newer snapshot
                                   (unchanged ones): not this one's to free */
    cfg_val vals[];
} cfg_snap;

#define CFG_MAX_CALLBACKS 16

struct tern_config {
    tern_config_options o;
    size_t n;
    size_t *by_name;            /* key indexes sorted by name */
    cfg_val *min, *max;         /* parsed limits; text NULL when none */
    int argc;
    char **argv;                /* copy of the flags, re-applied on reload */
    /* --config FILE's path (owned), which o.file then points to; the
     * options' own file is kept for --help. */
    char *flag_file;
    const char *opts_file;
    _Atomic(cfg_snap *) cur;
    atomic_bool reloading;
    _Atomic uint64_t generation;
    struct {
        tern_config_change_fn *fn;
        void *arg;
    } cb[CFG_MAX_CALLBACKS];
    int ncb;
    tern_config_error_fn *on_error;
    void *on_error_arg;
    /* A watcher coroutine runs while `on` and leaves when it sees `stop`. */
    struct {
        atomic_bool on, stop;
    } sighup, file;
    /* tern__cfg_sum of the file as the last build read it (0: it could not
     * be read): the file watcher reloads only when the bytes differ. */
    _Atomic uint64_t file_sum;
};

/* How often a watcher looks at its stop flag: the longest a stop takes. */
#define CFG_WATCH_POLL (50 * TERN_MS)

/* Parse text as type into *v (text not copied); NULL, or why it failed:
 * "is not an integer" and the like. */
const char *tern__cfg_parse(tern_config_type type, const char *text, cfg_val *v);
/* Values equal by meaning. */
bool tern__cfg_equal(tern_config_type type, const cfg_val *a, const cfg_val *b);
void tern__cfg_val_free(cfg_val *v);
/* "a string", "an integer", ... for messages; "string", "int", ... for help. */
const char *tern__cfg_type_noun(tern_config_type type);
const char *tern__cfg_type_name(tern_config_type type);

/* Index of key, or -1. */
long tern__cfg_find(const tern_config *cfg, const char *key);
/* The environment variable of key idx into buf ("" without a prefix). */
void tern__cfg_env_name(const tern_config *cfg, size_t idx, char *buf, size_t len);

/* Append "config: <key>: <what> (from <source>)" to err. */
void tern__cfg_errorf(tern_config_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Build a snapshot from every layer; NULL with err filled on failure.
 * *help set when --help was among the flags. */
cfg_snap *tern__cfg_build(tern_config *cfg, tern_config_error *err, bool *help);
void tern__cfg_snap_free(cfg_snap *s, size_t n);

/* The whole file into *buf (malloc'd, not NUL-terminated; free it) and
 * *len: 0, or -errno with *buf NULL and why (if not NULL) saying what is
 * wrong: -EINVAL not a regular file, -EFBIG over max bytes (0: the
 * default), else open's or read's error.  Never blocks a worker: opened
 * O_NONBLOCK, read on the tern_blocking pool when called on a coroutine. */
int tern__cfg_read_file(const char *path, size_t max, char **buf, size_t *len, char *why,
                        size_t whylen);
/* Parse buf[0..len), the file at path, into s's file layer: its values
 * and errors, as tern__cfg_build's file layer does with the bytes it read
 * (and fuzz/fuzz_config_json.c with its input). */
void tern__cfg_load_json(tern_config *cfg, cfg_snap *s, const char *path, const char *buf,
                         size_t len, tern_config_error *err);
/* A 64-bit hash of the bytes (FNV-1a), never 0. */
uint64_t tern__cfg_sum(const char *buf, size_t len);

/* A reload a watcher started failed: on_error, or the error log. */
void tern__cfg_report(tern_config *cfg, const char *msg);

#endif
