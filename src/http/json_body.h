/*
 * json_body.h - parsing JSON that came from a client: the depth check
 * (base/json_depth.h) and then jansson.  tern_http_req_json's body path,
 * and fuzz/fuzz_http_json.c's, so the fuzzer runs exactly what a request
 * body meets.
 */
#ifndef TERN_HTTP_JSON_BODY_H
#define TERN_HTTP_JSON_BODY_H

#include <stddef.h>

#include <jansson.h>

/* data[0..len) as one JSON value into *out (yours to json_decref): 0, or
 * -EBADMSG when it is not JSON or nests deeper than
 * TERN_HTTP_JSON_MAX_DEPTH (*out NULL). */
int tern__http_json_parse(const char *data, size_t len, json_t **out);

#endif
