/*
 * config_internal.h - what the parts of tern_config share: values and
 * snapshots (config.c), parsing text by type (config_parse.c), building a
 * snapshot from the layers (config_load.c), SIGHUP (config_watch.c) and
 * --help (config_help.c).
 */
#ifndef TERN_KIT_CONFIG_INTERNAL_H
#define TERN_KIT_CONFIG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/config.h"

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

/* An immutable set of values.  Replaced snapshots are kept on `older`
 * until the config is freed, so readers never need a reference count. */
typedef struct cfg_snap {
    struct cfg_snap *older;
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
    atomic_bool watching, watch_stop;
};

/* Parse text as type into *v (text not copied); NULL, or why it failed:
 * "is not an integer" and the like. */
const char *tern_cfg_parse(tern_config_type type, const char *text, cfg_val *v);
/* Values equal by meaning. */
bool tern_cfg_equal(tern_config_type type, const cfg_val *a, const cfg_val *b);
void tern_cfg_val_free(cfg_val *v);
/* "a string", "an integer", ... for messages; "string", "int", ... for help. */
const char *tern_cfg_type_noun(tern_config_type type);
const char *tern_cfg_type_name(tern_config_type type);

/* Index of key, or -1. */
long tern_cfg_find(const tern_config *cfg, const char *key);
/* The environment variable of key idx into buf ("" without a prefix). */
void tern_cfg_env_name(const tern_config *cfg, size_t idx, char *buf, size_t len);

/* Append "config: <key>: <what> (from <source>)" to err. */
void tern_cfg_errorf(tern_config_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Build a snapshot from every layer; NULL with err filled on failure.
 * *help set when --help was among the flags. */
cfg_snap *tern_cfg_build(tern_config *cfg, tern_config_error *err, bool *help);
void tern_cfg_snap_free(cfg_snap *s, size_t n);

#endif
