/*
 * call.c - one REST call through a gateway (the next ready one: gateways.c), its answer parsed as JSON,
 * and the few readers of proto3 JSON the books need.  Bounded by the run's
 * per-request timeout; the body is read whole (the shop's answers are
 * small), so the connection goes back to the client's pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define MAX_BODY (1 << 20)

int load_call(load_run *run, const char *method, const char *path, const char *token, const char *idem,
              const char *body, int *status, json_t **json)
{
    char url[512], auth[2100];
    *status = 0;
    if (json)
        *json = NULL;
    if (snprintf(url, sizeof url, "%s%s", load_gateway_pick(run), path) >= (int)sizeof url)
        return -ENAMETOOLONG;
    const char *headers[9];
    int n = 0;
    if (token && *token) {
        snprintf(auth, sizeof auth, "Bearer %s", token);
        headers[n++] = "Authorization";
        headers[n++] = auth;
    }
    if (idem) {
        headers[n++] = "Idempotency-Key";
        headers[n++] = idem;
    }
    if (body) {
        headers[n++] = "Content-Type";
        headers[n++] = "application/json";
    }
    headers[n] = NULL;
    tern_http_client_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    tern_ctx *ctx;
    int rc = tern_ctx_with_timeout(tern_ctx_background(), run->timeout, &ctx);
    if (rc < 0)
        return rc;
    tern_http_client_response *r;
    rc = tern_http_client_do(run->client, &req, &r, ctx);
    if (rc == 0) {
        const char *data;
        size_t len;
        rc = tern_http_client_response_body(r, MAX_BODY, &data, &len);
        if (rc == 0) {
            *status = tern_http_client_response_status(r);
            if (json && len > 0)
                *json = json_loadb(data, len, 0, NULL);
        }
        tern_http_client_response_free(r);
    }
    tern_ctx_free(ctx);
    return rc;
}

int64_t load_json_i64(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

int load_order_status(const json_t *v)
{
    static const char *const names[] = {"ORDER_STATUS_UNSPECIFIED", "ORDER_STATUS_PENDING",
                                        "ORDER_STATUS_AWAITING_PAYMENT", "ORDER_STATUS_PAID",
                                        "ORDER_STATUS_CANCELLED", "ORDER_STATUS_REJECTED"};
    if (json_is_integer(v))
        return (int)json_integer_value(v);
    if (!json_is_string(v))
        return ORDER_UNKNOWN;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return i;
    return ORDER_UNKNOWN;
}
