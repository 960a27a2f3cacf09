/*
 * tern/config.h - typed configuration from layered sources, reloadable.
 *
 * A service declares its keys (name, type, default, help, limits) once;
 * values then come from, lowest to highest precedence:
 *
 *     defaults  <  a JSON file  <  the environment  <  command-line flags
 *
 *     static const tern_config_key keys[] = {
 *         TERN_CONFIG_KEY("http.listen", TERN_CONFIG_STRING, .def = "127.0.0.1:8080",
 *                         .help = "listen address"),
 *         TERN_CONFIG_KEY("http.port", TERN_CONFIG_INT, .def = "8080", .help = "port",
 *                         .min = "1", .max = "65535"),
 *         TERN_CONFIG_KEY("http.timeout", TERN_CONFIG_DURATION, .def = "5s"),
 *     };
 *     tern_config_options o = {.keys = keys, .nkeys = 3, .env_prefix = "SVC",
 *                              .file = "/etc/svc/config.json"};
 *     tern_config *cfg;
 *     tern_config_error err;
 *     int r = tern_config_new(argc, argv, &err, &o, &cfg);
 *     if (r < 0) {
 *         fprintf(stderr, "%s\n", err.msg);  // config: http.port: "abc" is not
 *         exit(2);                           // an integer (from env SVC_HTTP_PORT)
 *     }
 *     if (r == 1) { ... print tern_config_help(cfg, ...); exit(0); }
 *     int64_t port = tern_config_int(cfg, "http.port");
 *
 * File: options.file, or the one the flag `--config FILE` (or
 * `--config=FILE`) names, which overrides it (so no program needs its own
 * argv loop for it; the name "config" cannot be declared as a key).  A
 * JSON object, or YAML when the name ends in .yaml or .yml (a mapping:
 * tern_config_parse_yaml below); nested objects map to dotted keys, so
 * {"http": {"port": 8080}} sets http.port (a Kubernetes ConfigMap mounted
 * as a file is the intended use).  Keys the declarations do not know are
 * errors.  Env: env_prefix, '_', the key upper-cased with '.' and '-' as
 * '_': SVC_HTTP_PORT.  Flags: --http.port=8080 or --http.port 8080; a bool
 * flag alone (--verbose) means true and never takes the next argument.
 * "--" ends the flags (what follows is left to the program); any other
 * argument that is not a flag is an error.  The file must be a regular
 * file (a symlink to one is fine) of at most max_file_bytes: anything else
 * (a FIFO, a device, a directory) is an error, "config: /path: not a
 * regular file (a FIFO)", never a read that blocks.  It is opened
 * non-blocking and, on a coroutine, read on the tern_blocking pool, so a
 * slow filesystem stalls no worker.
 *
 * Values are text in every source (the default too) and parsed by type:
 * int (decimal int64), double, bool (true/false, 1/0, yes/no, on/off),
 * duration (Go's syntax: "250ms", "1m30s", "1.5h"; units ns us ms s m h),
 * list (comma-separated; a JSON array of strings in the file).  In the
 * file a JSON number or boolean stands for its text, but a string key
 * wants a JSON string.  Limits (min, max: text of the key's type; one_of
 * for strings) are checked on the value that wins, naming its source.
 *
 * Reading: getters are lock-free and safe from any thread or coroutine,
 * even while a reload swaps in new values: they read an immutable
 * snapshot.  A string or list from a getter stays valid while its key's
 * value is unchanged (reloads that leave it alone keep the same copy),
 * and for `retain` (1 min by default) after a reload that changes it;
 * then the copy is freed, at a later reload.  Copy what you keep longer,
 * or get it again from a change callback.  So reloads cost no memory in
 * the long run (before, each kept a copy of every value forever).
 * Each getter reads the snapshot current at its call: two getters in a row
 * may straddle a reload.
 * Asking for a key that was not declared, or with the wrong type's getter,
 * is a programmer error and aborts with a message saying so; so is a NULL
 * config passed to any function but tern_config_free.
 *
 * Reloads: tern_config_reload, or a watcher coroutine that calls it:
 * tern_config_watch_sighup, tern_config_watch_file (a ConfigMap's updates
 * send no signal; their files change).
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tern_config_type {
    TERN_CONFIG_STRING = 1,
    TERN_CONFIG_INT,
    TERN_CONFIG_DOUBLE,
    TERN_CONFIG_BOOL,
    TERN_CONFIG_DURATION,       /* int64 ns */
    TERN_CONFIG_LIST,           /* of strings */
} tern_config_type;

typedef struct tern_config_key {
    const char *name;           /* dotted, [a-z0-9_.-]: "http.listen" */
    tern_config_type type;
    const char *def;            /* default as text; NULL: "", 0, false, empty */
    const char *help;           /* one line, for tern_config_help */
    const char *min, *max;      /* int, double, duration: limits as text; NULL: none */
    const char *const *one_of;  /* string: the allowed values, NULL-terminated */
} tern_config_key;

/* A declaration with designated fields (so -Wextra does not ask for the
 * ones left out): TERN_CONFIG_KEY("n", TERN_CONFIG_INT, .def = "1", .min = "0"). */
#define TERN_CONFIG_KEY(key, t, ...) {.name = (key), .type = (t), __VA_ARGS__}

typedef struct tern_config tern_config;

typedef struct tern_config_error {
    int count;                  /* problems found (0: none) */
    char msg[1024];             /* one line per problem, '\n' between them,
                                   each "config: <key>: <what> (from <source>)";
                                   cut if longer */
} tern_config_error;

/* How deep the JSON file may nest ([ and { levels).  A deeper file is
 * refused before it is parsed ("config: file PATH: nested deeper than
 * 128"), whatever its size: the parser recurses per level (~80 bytes of
 * stack each, so 128 levels take ~10 KiB), and a reload may run on a
 * coroutine's 64 KiB stack.  Real configuration files nest a few levels. */
#define TERN_CONFIG_MAX_DEPTH 128

typedef struct tern_config_options {
    const tern_config_key *keys;        /* borrowed: must outlive the config */
    size_t nkeys;
    const char *env_prefix;             /* "SVC"; NULL: no environment layer */
    const char *file;                   /* JSON file; NULL: no file layer */
    bool file_optional;                 /* a missing file is not an error */
    /* The largest file accepted, in bytes; 0: TERN_CONFIG_MAX_FILE_BYTES.
     * A bigger one is an error naming both sizes (a configuration is
     * small; a huge one is a mistake or an attack on memory). */
    size_t max_file_bytes;
    /* How long a value replaced by a reload stays readable (strings and
     * lists got before it); 0: TERN_CONFIG_RETAIN; <0: until
     * tern_config_free (every reload then keeps its copy). */
    int64_t retain;
} tern_config_options;

/* retain's default: 1 minute. */
#define TERN_CONFIG_RETAIN ((int64_t)60 * 1000 * 1000 * 1000)

/* max_file_bytes' default: 1 MiB. */
#define TERN_CONFIG_MAX_FILE_BYTES ((size_t)1 << 20)

/* Declare the keys and load every layer; argv[0] is skipped (argc 0: no
 * flags).  0 and *out set; 1 and *out set when --help was given (print
 * tern_config_help); -EINVAL with *err filled (err may be NULL) when a
 * value is bad (or a declaration: duplicate or unnamed key, bad type, a
 * default that does not parse, a key named "config"; or --config without
 * a file; or a file that cannot be read, is not a regular file, or is over
 * max_file_bytes), -ENOMEM.  On failure *out is NULL.  Copies what it needs of argv
 * (reloads re-apply the same flags); opts is copied, its keys borrowed.
 * The config is the caller's, freed with tern_config_free.  Any thread. */
int tern_config_new(int argc, char **argv, tern_config_error *err,
                    const tern_config_options *opts, tern_config **out);

/* Stop the watchers if any run (from a coroutine then) and free
 * everything (NULL: a no-op).  No getter may run concurrently. */
void tern_config_free(tern_config *cfg);

/* ---- getters: any thread, lock-free ---------------------------------------- */

/* The value of a declared key, read from the snapshot current at the
 * call: a string is owned by the config (valid while the value is
 * unchanged and `retain` after a reload changes it, as above; never NULL:
 * "" when unset), a duration is in ns.  A key that was not
 * declared, or was declared with another type, aborts naming the key. */
const char *tern_config_str(tern_config *cfg, const char *key);
int64_t tern_config_int(tern_config *cfg, const char *key);
double tern_config_double(tern_config *cfg, const char *key);
bool tern_config_bool(tern_config *cfg, const char *key);
int64_t tern_config_duration(tern_config *cfg, const char *key);   /* ns */
/* NULL-terminated; *n (if not NULL) gets the count; valid as strings are. */
const char *const *tern_config_list(tern_config *cfg, const char *key, size_t *n);

/* Where key's value came from: "default", "file", "env" or "flag". */
const char *tern_config_source(tern_config *cfg, const char *key);

/* The file layer's path: --config's, else options.file; NULL: none.
 * Valid until tern_config_free. */
const char *tern_config_file(const tern_config *cfg);

/* How many reloads succeeded so far (0 after tern_config_new). */
uint64_t tern_config_generation(tern_config *cfg);

/* ---- reloading ------------------------------------------------------------- */

typedef struct tern_config_change {
    const char *key;
    const char *old_value, *new_value;  /* as their sources wrote them */
} tern_config_change;

/* Called after a reload swapped in new values, with the keys whose value
 * changed (by value: "5s" to "5000ms" is no change), in declaration
 * order.  Runs on the reloading coroutine or thread; new_value lives as
 * a getter's string, old_value for `retain` after the reload. */
typedef void tern_config_change_fn(tern_config *cfg, const tern_config_change *changes, size_t n,
                                   void *arg);

/* Register a callback (at most 16).  Before any reload can run: not
 * synchronised with one.  0 or -ENOSPC. */
int tern_config_on_change(tern_config *cfg, tern_config_change_fn *fn, void *arg);

/* Re-read the file and the environment (the flags stay as given), check
 * everything, and on success swap the values in and call the callbacks.
 * On failure nothing changes.  0 (also when nothing changed), -EINVAL with
 * *err filled (err may be NULL), -EBUSY if a reload is under way. */
int tern_config_reload(tern_config *cfg, tern_config_error *err);

/* Called with the message when a reload started by a watcher (SIGHUP or
 * file) fails (the old values stay).  The default logs it with tern_log at
 * error level (tern/log.h), msg "config reload failed", field "error". */
typedef void tern_config_error_fn(tern_config *cfg, const char *msg, void *arg);
void tern_config_on_error(tern_config *cfg, tern_config_error_fn *fn, void *arg);

/* Start a coroutine that reloads on every SIGHUP (tern_signal_notify,
 * tern_signal_wait).  Other coroutines may wait for signals too (a
 * service's SIGTERM waiter does): each signal goes to one waiter, so do
 * not wait for SIGHUP elsewhere while this runs.  From a coroutine.  0,
 * -EALREADY, or what tern_signal_notify / tern_go return. */
int tern_config_watch_sighup(tern_config *cfg);

/* Start a coroutine that reloads when the file (tern_config_file) changes,
 * with inotify through the netpoller (no thread spent).  It watches the
 * file's directory, so a rewrite in place, an editor's write-then-rename,
 * `cp`, and a Kubernetes ConfigMap update (the kubelet swaps the `..data`
 * symlink that config.json points through; a symlinked file's target is
 * followed) are all seen.  The events of one save are debounced: the
 * reload runs once they have settled for 100 ms (at most 1 s after the
 * first), and only if the bytes differ from those last loaded, so a
 * `touch` or a reload SIGHUP already did changes nothing.  A failed
 * reload (a half-written file) keeps the old values and goes to
 * tern_config_on_error, once per content; the next write is loaded.  If
 * the directory goes away the watch is re-added with a backoff (100 ms up
 * to 5 s), and the file checked once it is back.  May run with the SIGHUP
 * watcher.  From a coroutine.  0, -EINVAL if the config has no file,
 * -EALREADY, or -errno from inotify (-ENOSPC: the inotify watch limit) or
 * tern_go; a directory that does not exist yet is not an error. */
int tern_config_watch_file(tern_config *cfg);

/* Stop the watchers (SIGHUP and file) and wait until they are gone (about
 * 50 ms, more if a reload is under way).  From a coroutine; a no-op if
 * none runs. */
void tern_config_watch_stop(tern_config *cfg);

/* ---- YAML -------------------------------------------------------------------- */

/* jansson's JSON value, as tern/http.h declares it (include <jansson.h> to
 * read it). */
typedef struct json_t json_t;

/* YAML text (len bytes, one document) as a JSON value: mappings become
 * objects, sequences arrays; a plain scalar is null (null, ~, empty), a
 * bool (true, false), an integer (12, 0x1f, 0o17), a real (1.5, 1e3) or
 * else a string, and a quoted scalar is always a string ("250ms" and
 * 250ms both a string).  Anchors and aliases work; merge keys (<<), a
 * repeated key, a key that is not a scalar, several documents and
 * nesting deeper than TERN_CONFIG_MAX_DEPTH are refused.  An empty text
 * is null.  0 with *out yours to json_decref; -EINVAL with a sentence in
 * err (errlen bytes; may be 0): "line 3 column 5: duplicate key \"a\"";
 * -ENOMEM.  A config file (options.file, --config) whose name ends in
 * .yaml or .yml is read with this; any other as JSON.  Any thread. */
int tern_config_parse_yaml(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/* ---- help ------------------------------------------------------------------- */

/* "--help" text from the declarations: a heading, the --config line, then
 * one key per line:
 *   --config FILE  read the file layer (JSON) from FILE (default /etc/svc/config.json)
 *   --http.port int  port (default 8080, env SVC_HTTP_PORT, 1..65535)
 * Writes at most len bytes (NUL included) and returns the full length, as
 * snprintf does. */
size_t tern_config_help(const tern_config *cfg, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
