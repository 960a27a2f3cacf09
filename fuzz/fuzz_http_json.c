/*
 * fuzz_http_json.c - libFuzzer target for a JSON request body, through
 * tern__http_json_parse: tern_http_req_json's own path (the depth scan,
 * then jansson).
 *
 * Beyond "no crash": the result is 0 or -EBADMSG; what parses never nests
 * deeper than TERN_HTTP_JSON_MAX_DEPTH (the bound that keeps jansson on a
 * 64 KiB stack); what the scan refuses is refused whatever else it is; and
 * a parsed value survives a round trip through jansson's encoder.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_depth.h"
#include "http/json_body.h"
#include "tern/http.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Levels of arrays and objects: the value's own counts as one.  Bounded
 * by the check it verifies, so the recursion here is shallow. */
static int depth(json_t *v)
{
    int d = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            int k = depth(e);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) {
            int k = depth(e);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    json_t *v = (json_t *)1;
    int rc = tern__http_json_parse(p, size, &v);
    check(rc == 0 || rc == -EBADMSG);
    if (rc < 0) {
        check(v == NULL);
        return 0;
    }
    check(v != NULL);
    check(tern__json_depth_ok(p, size, TERN_HTTP_JSON_MAX_DEPTH));
    check(depth(v) <= TERN_HTTP_JSON_MAX_DEPTH);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    check(text != NULL);
    json_t *again = NULL;
    check(tern__http_json_parse(text, strlen(text), &again) == 0);
    check(json_equal(v, again));
    json_decref(again);
    free(text);
    json_decref(v);
    return 0;
}
