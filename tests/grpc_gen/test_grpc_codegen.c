/*
 * test_grpc_codegen.c - protoc-gen-tern-grpc's output used as a program
 * uses it: tests/grpc_gen/codegen.proto (package tern.codegen_test.v1,
 * nested types, a method of each kind, types from another file) made by
 * tern_grpc_generate, served through the generated server struct and
 * called through the generated stubs; a NULL impl function answers
 * UNIMPLEMENTED; the embedded file descriptor and its imports are what
 * protoc described, and reflection's descriptor reader finds every kind of
 * name in them.
 */
#include "../check.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <tern/grpc_reflection.h>

#include "codegen.tern-grpc.h"
#include "grpc/reflection_internal.h"

#define SEC TERN_SEC

typedef Tern__CodegenTest__V1__Outer outer;
typedef Tern__CodegenTest__V1__Outer__Inner inner;
typedef Tern__CodegenTest__V1__HTTPReply reply;

/* ---- the server: the generated struct, one function per method ----------------- */

static int get_http_reply(tern_grpc_call *call, const outer *req, reply *resp, void *arg)
{
    CHECK_EQ((long)(intptr_t)arg, 42);
    const char *text = req->inner ? req->inner->text : "";
    char *up = tern_grpc_call_strdup(call, text);
    inner *item = tern_grpc_call_alloc(call, sizeof *item);
    inner **items = tern_grpc_call_alloc(call, sizeof *items);
    if (!up || !item || !items)
        return -ENOMEM;
    for (char *p = up; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    tern__codegen_test__v1__outer__inner__init(item);
    item->text = up;
    items[0] = item;
    resp->n_items = 1;
    resp->items = items;
    resp->total = req->choice_case == TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NUMBER ? (int32_t)req->number : -1;
    if (!strcmp(text, "fail"))
        return tern_grpc_call_fail(call, TERN_GRPC_FAILED_PRECONDITION, "asked to fail");
    return 0;
}

static int list_items(tern_grpc_call *call, const outer *req, void *arg)
{
    (void)arg;
    int n = req->inner ? req->inner->n : 0;
    for (int i = 0; i < n; i++) {
        inner item = TERN__CODEGEN_TEST__V1__OUTER__INNER__INIT;
        item.n = i;
        item.text = (char *)"item";
        int rc = tern_codegen_test_v1_echo_service_list_items_send(call, &item, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int collect_items(tern_grpc_call *call, reply *resp, void *arg)
{
    (void)arg;
    const inner *in;
    int rc, n = 0;
    inner **items = tern_grpc_call_alloc(call, 16 * sizeof *items);
    while ((rc = tern_codegen_test_v1_echo_service_collect_items_recv(call, &in, NULL)) == 1) {
        CHECK(n < 16);
        /* the request is the call's until the next recv: copied */
        items[n] = tern_grpc_call_alloc(call, sizeof *items[n]);
        tern__codegen_test__v1__outer__inner__init(items[n]);
        items[n]->text = tern_grpc_call_strdup(call, in->text);
        items[n]->n = in->n;
        n++;
    }
    CHECK(in == NULL);
    if (rc < 0)
        return rc;
    resp->n_items = (size_t)n;
    resp->items = items;
    resp->total = n;
    return 0;
}

static int chat(tern_grpc_call *call, void *arg)
{
    (void)arg;
    const outer *in;
    int rc;
    while ((rc = tern_codegen_test_v1_echo_service_chat_recv(call, &in, NULL)) == 1) {
        outer out = TERN__CODEGEN_TEST__V1__OUTER__INIT;
        out.kind = TERN__CODEGEN_TEST__V1__OUTER__KIND__KIND_ECHO;
        out.inner = in->inner;
        out.choice_case = in->choice_case;
        out.name = in->choice_case == TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NAME ? in->name : NULL;
        if (in->choice_case == TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NUMBER)
            out.number = in->number;
        if ((rc = tern_codegen_test_v1_echo_service_chat_send(call, &out, NULL)) < 0)
            return rc;
    }
    return rc;
}

static int ping(tern_grpc_call *call, const inner *req, inner *resp, void *arg)
{
    (void)arg;
    resp->text = tern_grpc_call_strdup(call, req->text);
    resp->n = req->n + 1;
    return 0;
}

static const tern_codegen_test_v1_echo_service_server echo_impl = {
    .get_http_reply = get_http_reply,
    .list_items = list_items,
    .collect_items = collect_items,
    .chat = chat,
    /* .missing: NULL */
};
static const tern_codegen_test_v1_second_server second_impl = {.ping = ping};

typedef struct served {
    tern_grpc_server *s;
    tern_waitgroup wg;
} served;

static int serve_co(void *arg)
{
    served *sv = arg;
    CHECK_EQ(tern_grpc_server_serve(sv->s, NULL), 0);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static void start(served *sv)
{
    CHECK_EQ(tern_grpc_server_new(NULL, &sv->s), 0);
    CHECK_EQ(tern_codegen_test_v1_echo_service_register(sv->s, NULL, NULL), -EINVAL);
    CHECK_EQ(tern_codegen_test_v1_echo_service_register(sv->s, &echo_impl, (void *)(intptr_t)42), 0);
    CHECK_EQ(tern_codegen_test_v1_echo_service_register(sv->s, &echo_impl, NULL), -EEXIST);
    CHECK_EQ(tern_codegen_test_v1_second_register(sv->s, &second_impl, NULL), 0);
    CHECK_EQ(tern_grpc_server_enable_reflection(sv->s), 0);
    CHECK_EQ(tern_grpc_server_enable_reflection(sv->s), -EEXIST);
    CHECK_EQ(tern_grpc_server_listen(sv->s, "127.0.0.1:0"), 0);
    tern_waitgroup_add(&sv->wg, 1);
    CHECK_EQ(tern_go(serve_co, sv), 0);
}

static void stop(served *sv)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * SEC, &c), 0);
    tern_grpc_server_shutdown(sv->s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv->wg, NULL), 0);
    tern_grpc_server_free(sv->s);
}

static tern_grpc_channel *dial(served *sv)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_grpc_server_port(sv->s));
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    return ch;
}

/* ---- the four kinds through the stubs -------------------------------------------- */

static int four_kinds_main(void *arg)
{
    (void)arg;
    served sv = {0};
    start(&sv);
    tern_grpc_channel *ch = dial(&sv);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * SEC, &ctx), 0);

    /* unary, with a oneof and a nested message */
    inner in = TERN__CODEGEN_TEST__V1__OUTER__INNER__INIT;
    in.text = (char *)"hello";
    outer req = TERN__CODEGEN_TEST__V1__OUTER__INIT;
    req.inner = &in;
    req.choice_case = TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NUMBER;
    req.number = 7;
    reply *resp = NULL;
    tern_grpc_status st = {0};
    CHECK_EQ(tern_codegen_test_v1_echo_service_get_http_reply(ch, &req, &resp, NULL, &st, ctx), 0);
    CHECK_EQ(st.code, TERN_GRPC_OK);
    CHECK_EQ(resp->n_items, 1);
    CHECK(!strcmp(resp->items[0]->text, "HELLO"));
    CHECK_EQ(resp->total, 7);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    tern_grpc_status_clear(&st);

    /* a status set by the handler reaches the stub's caller */
    in.text = (char *)"fail";
    resp = (reply *)&st;            /* must come back NULL */
    CHECK_EQ(tern_codegen_test_v1_echo_service_get_http_reply(ch, &req, &resp, NULL, &st, ctx), -EPERM);
    CHECK(resp == NULL);
    CHECK_EQ(st.code, TERN_GRPC_FAILED_PRECONDITION);
    CHECK(st.message && !strcmp(st.message, "asked to fail"));
    tern_grpc_status_clear(&st);

    /* server streaming */
    in.n = 5;
    tern_grpc_stream *s;
    CHECK_EQ(tern_codegen_test_v1_echo_service_list_items_open(ch, &req, NULL, &s, ctx), 0);
    const inner *item;
    int rc, n = 0;
    while ((rc = tern_codegen_test_v1_echo_service_list_items_stream_recv(s, &item, ctx)) == 1) {
        CHECK_EQ(item->n, n);
        CHECK(!strcmp(item->text, "item"));
        n++;
    }
    CHECK_EQ(rc, 0);
    CHECK(item == NULL);
    CHECK_EQ(n, 5);
    tern_grpc_stream_free(s);

    /* client streaming */
    CHECK_EQ(tern_codegen_test_v1_echo_service_collect_items_open(ch, NULL, &s, ctx), 0);
    for (int i = 0; i < 3; i++) {
        inner one = TERN__CODEGEN_TEST__V1__OUTER__INNER__INIT;
        char text[8];
        snprintf(text, sizeof text, "c%d", i);
        one.text = text;
        one.n = i * 10;
        CHECK_EQ(tern_codegen_test_v1_echo_service_collect_items_stream_send(s, &one, ctx), 0);
    }
    resp = NULL;
    CHECK_EQ(tern_codegen_test_v1_echo_service_collect_items_close_and_recv(s, &resp, ctx), 0);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_OK);
    tern_grpc_stream_free(s);
    CHECK_EQ(resp->total, 3);
    CHECK_EQ(resp->n_items, 3);
    CHECK(!strcmp(resp->items[2]->text, "c2"));
    CHECK_EQ(resp->items[2]->n, 20);
    protobuf_c_message_free_unpacked(&resp->base, NULL);     /* the caller's: outlives the stream */

    /* bidirectional, one at a time */
    CHECK_EQ(tern_codegen_test_v1_echo_service_chat_open(ch, NULL, &s, ctx), 0);
    for (int i = 0; i < 4; i++) {
        outer m = TERN__CODEGEN_TEST__V1__OUTER__INIT;
        char name[8];
        snprintf(name, sizeof name, "n%d", i);
        m.choice_case = TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NAME;
        m.name = name;
        CHECK_EQ(tern_codegen_test_v1_echo_service_chat_stream_send(s, &m, ctx), 0);
        const outer *back;
        CHECK_EQ(tern_codegen_test_v1_echo_service_chat_stream_recv(s, &back, ctx), 1);
        CHECK_EQ(back->kind, TERN__CODEGEN_TEST__V1__OUTER__KIND__KIND_ECHO);
        CHECK_EQ(back->choice_case, TERN__CODEGEN_TEST__V1__OUTER__CHOICE_NAME);
        CHECK(!strcmp(back->name, name));
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    const outer *none;
    CHECK_EQ(tern_codegen_test_v1_echo_service_chat_stream_recv(s, &none, ctx), 0);
    tern_grpc_stream_free(s);

    /* the second service of the file */
    inner p = TERN__CODEGEN_TEST__V1__OUTER__INNER__INIT, *pong = NULL;
    p.text = (char *)"ping";
    p.n = 1;
    CHECK_EQ(tern_codegen_test_v1_second_ping(ch, &p, &pong, NULL, NULL, ctx), 0);
    CHECK_EQ(pong->n, 2);
    protobuf_c_message_free_unpacked(&pong->base, NULL);

    /* a NULL function in the impl struct: UNIMPLEMENTED, naming the method */
    Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT, *eo = NULL;
    CHECK_EQ(tern_codegen_test_v1_echo_service_missing(ch, &e, &eo, NULL, &st, ctx), -ENOSYS);
    CHECK_EQ(st.code, TERN_GRPC_UNIMPLEMENTED);
    CHECK(st.message && strstr(st.message, "tern.codegen_test.v1.EchoService/Missing"));
    tern_grpc_status_clear(&st);

    tern_ctx_free(ctx);
    tern_grpc_channel_free(ch);
    stop(&sv);
    return 0;
}

static void four_kinds(void)
{
    run_ok(four_kinds_main, NULL, 2);
}

/* ---- the tables the plugin writes --------------------------------------------------- */

static void descriptors(void)
{
    const tern_grpc_service_desc *d = &tern_codegen_test_v1_echo_service_desc;
    CHECK(!strcmp(d->name, "tern.codegen_test.v1.EchoService"));
    CHECK_EQ(d->n_methods, 5);
    CHECK(d->methods == tern_codegen_test_v1_echo_service_methods);
    static const struct {
        const char *name, *path;
        tern_grpc_method_type type;
    } want[] = {
        {"GetHTTPReply", "/tern.codegen_test.v1.EchoService/GetHTTPReply", TERN_GRPC_UNARY},
        {"ListItems", "/tern.codegen_test.v1.EchoService/ListItems", TERN_GRPC_SERVER_STREAMING},
        {"CollectItems", "/tern.codegen_test.v1.EchoService/CollectItems", TERN_GRPC_CLIENT_STREAMING},
        {"Chat", "/tern.codegen_test.v1.EchoService/Chat", TERN_GRPC_BIDI_STREAMING},
        {"Missing", "/tern.codegen_test.v1.EchoService/Missing", TERN_GRPC_UNARY},
    };
    for (size_t i = 0; i < 5; i++) {
        CHECK(!strcmp(d->methods[i].name, want[i].name));
        CHECK(!strcmp(d->methods[i].path, want[i].path));
        CHECK_EQ(d->methods[i].type, want[i].type);
        CHECK(d->methods[i].invoke != NULL);
    }
    /* protoc-c's descriptors, whichever file declares the type */
    CHECK(d->methods[0].input == &tern__codegen_test__v1__outer__descriptor);
    CHECK(d->methods[0].output == &tern__codegen_test__v1__httpreply__descriptor);
    CHECK(d->methods[1].output == &tern__codegen_test__v1__outer__inner__descriptor);
    CHECK(d->methods[4].input == &google__protobuf__empty__descriptor);

    /* the file, its imports, and nothing of the source's comments */
    const tern_grpc_file_desc *f = d->file;
    CHECK(f == &codegen_proto_file_desc);
    CHECK(tern_codegen_test_v1_second_desc.file == f);
    CHECK(!strcmp(f->name, "codegen.proto"));
    CHECK_EQ(f->n_deps, 2);
    CHECK(!strcmp(f->deps[0]->name, "google/protobuf/descriptor.proto"));
    CHECK(!strcmp(f->deps[1]->name, "google/protobuf/empty.proto"));
    CHECK_EQ(f->deps[1]->n_deps, 0);
    CHECK(memmem(f->data, f->len, "tern.codegen_test.v1", 20) != NULL);
    CHECK(memmem(f->data, f->len, "upper-cased", 11) == NULL);
}

/* reflection's reader: every kind of name, in its scope and no other */
static void reflection_names(void)
{
    const tern_grpc_file_desc *f = &codegen_proto_file_desc;
    static const char *const declared[] = {
        "tern.codegen_test.v1.Outer",
        "tern.codegen_test.v1.Outer.Inner",
        "tern.codegen_test.v1.Outer.Inner.text",
        "tern.codegen_test.v1.Outer.inner",
        "tern.codegen_test.v1.Outer.Kind",
        "tern.codegen_test.v1.Outer.KIND_ECHO",        /* values live beside their enum */
        "tern.codegen_test.v1.Outer.choice",
        "tern.codegen_test.v1.Outer.number",
        "tern.codegen_test.v1.HTTPReply",
        "tern.codegen_test.v1.TopLevel",
        "tern.codegen_test.v1.TOP_LEVEL_ONE",
        "tern.codegen_test.v1.EchoService",
        "tern.codegen_test.v1.EchoService.Chat",
        "tern.codegen_test.v1.Second.Ping",
        "tern.codegen_test.v1.tern_label",
    };
    for (size_t i = 0; i < sizeof declared / sizeof declared[0]; i++)
        if (!tern__grpc_desc_declares(f->data, f->len, declared[i])) {
            fprintf(stderr, "not found: %s\n", declared[i]);
            CHECK(0);
        }
    static const char *const not_declared[] = {
        "tern.codegen_test.v1",
        "tern.codegen_test.Outer",
        "tern.codegen_test.v1.Outer.Kind.KIND_ECHO",
        "tern.codegen_test.v1.KIND_ECHO",
        "tern.codegen_test.v1.Outer.Inner.text.more",
        "tern.codegen_test.v1.Outerx",
        "tern.codegen_test.v1.Oute",
        "tern.codegen_test.v1.EchoService.Nope",
        "tern.codegen_test.v1.Chat",
        "google.protobuf.Empty",
        "",
        ".",
    };
    for (size_t i = 0; i < sizeof not_declared / sizeof not_declared[0]; i++)
        if (tern__grpc_desc_declares(f->data, f->len, not_declared[i])) {
            fprintf(stderr, "found: %s\n", not_declared[i]);
            CHECK(0);
        }
    CHECK(tern__grpc_desc_declares(f->deps[1]->data, f->deps[1]->len, "google.protobuf.Empty"));
    /* every prefix of the file reads as (partly) nothing, never out of bounds */
    for (size_t n = 0; n < f->len; n += 7)
        tern__grpc_desc_declares(f->data, n, "tern.codegen_test.v1.Second.Ping");
}

static int count_ext(int32_t number, void *arg)
{
    CHECK_EQ(number, 50001);
    (*(int *)arg)++;
    return 0;
}

static int stop_at(int32_t number, void *arg)
{
    return number == *(int32_t *)arg;
}

static void reflection_extensions(void)
{
    const tern_grpc_file_desc *f = &codegen_proto_file_desc;
    int n = 0;
    CHECK_EQ(tern__grpc_desc_extensions(f->data, f->len, "google.protobuf.MessageOptions", count_ext, &n), 0);
    CHECK_EQ(n, 1);
    n = 0;
    CHECK_EQ(tern__grpc_desc_extensions(f->data, f->len, "google.protobuf.FileOptions", count_ext, &n), 0);
    CHECK_EQ(n, 0);
    int32_t want = 50001;
    CHECK_EQ(tern__grpc_desc_extensions(f->data, f->len, "google.protobuf.MessageOptions", stop_at, &want), 1);
    want = 50002;
    CHECK_EQ(tern__grpc_desc_extensions(f->data, f->len, "google.protobuf.MessageOptions", stop_at, &want), 0);
}

TESTS(T(descriptors), T(reflection_names), T(reflection_extensions), T(four_kinds))
