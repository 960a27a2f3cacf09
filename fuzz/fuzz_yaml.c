/*
 * fuzz_yaml.c - libFuzzer target for YAML configuration text, through
 * tern_config_parse_yaml (src/kit/config/yaml.c, over libyaml): what the
 * kit's file layer and the gateway read their YAML files with.
 *
 * Beyond "no crash, no leak": a refusal returns -EINVAL or -ENOMEM with
 * *out NULL and, for -EINVAL, a non-empty sentence that fits its buffer
 * (and a one-byte buffer still gets a terminated empty string); an
 * acceptance leaves a tree no deeper than TERN_CONFIG_MAX_DEPTH whose
 * values are what JSON can hold.  When the tree is small once aliases are
 * expanded, it goes round: dumped as JSON (flow-style YAML) and parsed
 * again, it must come back equal.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/config.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Nodes once aliases are expanded (a DAG walked as a tree), up to cap;
 * and the tree's depth. */
static size_t walk(const json_t *v, size_t depth, size_t *max_depth, size_t count, size_t cap)
{
    if (count >= cap)
        return cap;
    count++;
    if (depth > *max_depth)
        *max_depth = depth;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c) {
            check(k != NULL);
            count = walk(c, depth + 1, max_depth, count, cap);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
            count = walk(c, depth + 1, max_depth, count, cap);
    } else if (json_is_string(v)) {
        check(json_string_value(v) != NULL);
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[160];
    memset(err, 'x', sizeof err);
    json_t *out = (json_t *)1;
    int rc = tern_config_parse_yaml((const char *)data, size, &out, err, sizeof err);
    if (rc < 0) {
        check(rc == -EINVAL || rc == -ENOMEM);
        check(out == NULL);
        if (rc == -EINVAL)
            check(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        char one[1] = {'x'};
        json_t *again = (json_t *)1;
        check(tern_config_parse_yaml((const char *)data, size, &again, one, 1) == rc && again == NULL);
        check(rc != -EINVAL || one[0] == '\0');
        return 0;
    }
    check(rc == 0);
    if (!out)
        return 0;               /* an empty document: null, as NULL? then nothing to walk */
    size_t depth = 0;
    size_t nodes = walk(out, 1, &depth, 0, 10000);
    check(depth <= TERN_CONFIG_MAX_DEPTH + 1);
    if (nodes < 10000) {
        /* ASCII only: libyaml reads YAML 1.1, where a raw U+0085 (NEL),
         * U+2028 or U+2029 is a line break even inside a quoted scalar and
         * is folded; JSON's \u escapes come back as the same characters */
        char *text = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
        if (text) {
            json_t *back = NULL;
            check(tern_config_parse_yaml(text, strlen(text), &back, err, sizeof err) == 0);
            check(back && json_equal(out, back));
            json_decref(back);
            free(text);
        }
    }
    json_decref(out);
    return 0;
}
