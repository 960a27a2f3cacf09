/*
 * json_body.c - a request body as JSON (json_body.h).  The depth scan runs
 * first because jansson recurses per nesting level: unchecked, ~550 levels
 * of '[' (a 1.1 KB body) overflow a connection's 64 KiB stack.
 */
#include "http/json_body.h"

#include <errno.h>

#include "base/json_depth.h"
#include "tern/http.h"

int tern__http_json_parse(const char *data, size_t len, json_t **out)
{
    *out = NULL;
    if (!tern__json_depth_ok(data, len, TERN_HTTP_JSON_MAX_DEPTH))
        return -EBADMSG;
    json_error_t err;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &err);
    if (!v)
        return -EBADMSG;
    *out = v;
    return 0;
}
