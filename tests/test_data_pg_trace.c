/*
 * test_data_pg_trace.c - the PostgreSQL client's spans, as an OTLP
 * collector receives them: a query under a traced ctx becomes a CLIENT
 * child span with db.system and a db.statement whose literals are gone;
 * a failed one carries its SQLSTATE and an error status; an untraced one
 * makes no span.
 */
#include "check.h"
#include "http_raw.h"
#include "pg_fixture.h"

#include <jansson.h>
#include <pthread.h>
#include <tern/pg.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *spans;               /* every span received */

static int collect(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *doc;
    CHECK_EQ(tern_http_req_json(r, &doc), 0);
    size_t i, j, k;
    json_t *rs, *ss, *sp;
    pthread_mutex_lock(&mu);
    json_array_foreach(json_object_get(doc, "resourceSpans"), i, rs)
        json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
                json_array_append(spans, sp);
    pthread_mutex_unlock(&mu);
    json_decref(doc);
    return tern_http_resp_send(w, 200, "application/json", "{}", 2);
}

static const char *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
    return NULL;
}

static json_t *named(const char *name)
{
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
        if (strcmp(json_string_value(json_object_get(sp, "name")), name) == 0)
            return sp;
    fprintf(stderr, "no span named %s\n", name);
    CHECK(0);
    return NULL;
}

static int trace_co(void *arg)
{
    (void)arg;
    spans = json_array();
    server sv;
    server_start(&sv, &(tern_http_link){collect, NULL}, 1);
    char ep[96];
    snprintf(ep, sizeof ep, "%s/v1/traces", sv.url);
    tern_trace_sampler on = {TERN_TRACE_SAMPLER_ALWAYS_ON, 1};
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.endpoint = ep, .sampler = &on}), 0);

    tern_pg_conn *c;
    CHECK_EQ(tern_pg_conn_new(pg_fixture_start()->tcp, NULL, &c, NULL, NULL), 0);
    CHECK_EQ(tern_pg_exec(c, "SELECT 1", NULL, NULL, NULL), 0);     /* untraced: no span */
    tern_trace_span *root;
    CHECK_EQ(tern_trace_span_start("request", TERN_TRACE_KIND_SERVER, NULL, &root), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_trace_ctx_with_span(tern_ctx_background(), root, &ctx), 0);
    const char *v[] = {"7"};
    tern_pg_params p = {.n = 1, .values = v};
    CHECK_EQ(tern_pg_exec(c, "SELECT $1::int, 'it''s s3cret', 42, 1.5e3, col2 FROM (SELECT 1 AS col2) t",
                          &p, NULL, ctx), 0);
    CHECK_EQ(tern_pg_exec(c, "UPDATE nowhere SET x = 'hidden'", NULL, NULL, ctx), -EREMOTEIO);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_trace_span_end(root), 0);
    tern_trace_span_free(root);
    tern_pg_conn_free(c);

    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_trace_shutdown(ctx), 0);                          /* flushes */
    tern_ctx_free(ctx);
    server_stop(&sv);

    CHECK_EQ(json_array_size(spans), 3);
    json_t *req = named("request"), *sel = named("pg select"), *upd = named("pg update");
    const char *root_id = json_string_value(json_object_get(req, "spanId"));
    CHECK(strcmp(json_string_value(json_object_get(sel, "parentSpanId")), root_id) == 0);
    CHECK(strcmp(json_string_value(json_object_get(upd, "parentSpanId")), root_id) == 0);
    CHECK_EQ(json_integer_value(json_object_get(sel, "kind")), TERN_TRACE_KIND_CLIENT);
    CHECK(strcmp(attr(sel, "db.system"), "postgresql") == 0);
    CHECK(strcmp(attr(sel, "db.statement"), "SELECT $1::int, ?, ?, ?, col2 FROM (SELECT ? AS col2) t") == 0);
    CHECK(strcmp(attr(upd, "db.statement"), "UPDATE nowhere SET x = ?") == 0);
    CHECK(strcmp(attr(upd, "db.sqlstate"), "42P01") == 0);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(upd, "status"), "code")), 2);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(upd, "status"), "message")),
                 "SQLSTATE 42P01") == 0);
    char *all = json_dumps(spans, 0);
    if (all && (strstr(all, "s3cret") || strstr(all, "hidden")))
        fprintf(stderr, "leaked: %s\n", all);
    CHECK(all && !strstr(all, "s3cret") && !strstr(all, "hidden"));
    free(all);
    json_decref(spans);
    return 0;
}

static void query_spans_with_sanitized_statement(void)
{
    CHECK_EQ(tern_run(trace_co, NULL), 0);
}

TESTS({"query_spans_with_sanitized_statement", query_spans_with_sanitized_statement})
