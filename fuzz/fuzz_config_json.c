/*
 * fuzz_config_json.c - libFuzzer target for a configuration file's
 * contents, through tern__cfg_load_json: the file layer's own parse (the
 * depth scan, jansson, the walk of sections and keys, each value parsed
 * by its key's type), into a snapshot of keys of every type.
 *
 * Beyond "no crash, no leak": the error report stays a C string within
 * its buffer and counts what it says; a file refused for its depth sets
 * nothing; every value the file set came from the file and its text
 * parses again as its key's type.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_depth.h"
#include "kit/config/internal.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static const tern_config_key keys[] = {
    TERN_CONFIG_KEY("name", TERN_CONFIG_STRING, .def = "x"),
    TERN_CONFIG_KEY("http.port", TERN_CONFIG_INT, .def = "80", .min = "1", .max = "65535"),
    TERN_CONFIG_KEY("http.listen", TERN_CONFIG_STRING),
    TERN_CONFIG_KEY("http.tls.on", TERN_CONFIG_BOOL),
    TERN_CONFIG_KEY("http.timeout", TERN_CONFIG_DURATION, .def = "1s"),
    TERN_CONFIG_KEY("ratio", TERN_CONFIG_DOUBLE, .def = "0.5"),
    TERN_CONFIG_KEY("hosts", TERN_CONFIG_LIST),
    TERN_CONFIG_KEY("a.b.c.d", TERN_CONFIG_STRING),
};

static tern_config *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        tern_config_options o = {.keys = keys, .nkeys = sizeof keys / sizeof keys[0]};
        check(tern_config_new(0, NULL, NULL, &o, &cfg) == 0);
    }
    cfg_snap *s = calloc(1, sizeof *s + cfg->n * sizeof s->vals[0]);
    check(s != NULL);
    tern_config_error err = {0};
    const char *p = (const char *)data;
    tern__cfg_load_json(cfg, s, "fuzz.json", p, size, &err);
    check(err.count >= 0);
    check(memchr(err.msg, 0, sizeof err.msg) != NULL);
    check((err.count == 0) == (err.msg[0] == 0));
    bool deep = !tern__json_depth_ok(p, size, TERN_CONFIG_MAX_DEPTH);
    if (deep)
        check(err.count == 1 && strstr(err.msg, "nested deeper than") != NULL);
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_val *v = &s->vals[i];
        if (!v->text)
            continue;
        check(!deep);
        check(v->src == SRC_FILE);
        if (keys[i].type == TERN_CONFIG_LIST)
            continue;           /* a JSON array's list comes parsed */
        cfg_val again = {0};
        check(tern__cfg_parse(keys[i].type, v->text, &again) == NULL);
        tern__cfg_val_free(&again);
    }
    tern__cfg_snap_free(s, cfg->n);
    return 0;
}
