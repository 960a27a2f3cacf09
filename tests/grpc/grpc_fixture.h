/*
 * grpc_fixture.h - the terntest.Test service (grpc_test.proto) written by
 * hand against tern/grpc.h (no generated stubs: the descs and invoke glue
 * below are what protoc-gen-tern-grpc would write), and a runner for
 * grpc_peer.py, the grpcio peer, under /usr/bin/python3.
 */
#ifndef TERN_TEST_GRPC_FIXTURE_H
#define TERN_TEST_GRPC_FIXTURE_H

#define _GNU_SOURCE

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <tern/grpc.h>

#include "../check.h"
#include "grpc_test.pb-c.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#define MS 1000000LL
#define SEC 1000000000LL

static atomic_int stream_cancelled;     /* a ServerStream handler saw its ctx cancelled */
static _Atomic int64_t handler_budget;  /* the last sleeping Unary handler's ctx budget (ns; -1 none) */

/* x-* metadata back as headers and, "-t" inserted, trailers; x-compress */
static int echo_md(tern_grpc_call *call)
{
    tern_grpc_metadata md;
    for (size_t i = 0; tern_grpc_call_metadata_at(call, i, &md) == 0; i++) {
        if (strncmp(md.name, "x-", 2) != 0)
            continue;
        if (!strcmp(md.name, "x-compress")) {
            CHECK_EQ(tern_grpc_call_set_compression(call, "gzip"), 0);
            continue;
        }
        size_t nl = strlen(md.name);
        char t[128];
        if (nl > 4 && !strcmp(md.name + nl - 4, "-bin"))
            snprintf(t, sizeof t, "%.*s-t-bin", (int)(nl - 4), md.name);
        else
            snprintf(t, sizeof t, "%s-t", md.name);
        char v[256];
        const void *val = md.value;
        if (!(nl > 4 && !strcmp(md.name + nl - 4, "-bin"))) {
            snprintf(v, sizeof v, "%.*s", (int)md.len, (const char *)md.value);
            val = v;
        }
        CHECK_EQ(tern_grpc_call_add_header(call, md.name, val, md.len), 0);
        CHECK_EQ(tern_grpc_call_add_trailer(call, t, val, md.len), 0);
    }
    return 0;
}

static int fail_as_asked(tern_grpc_call *call, const Terntest__Req *req)
{
    return tern_grpc_call_fail(call, (tern_grpc_code)req->code, "%s", req->message);
}

static int t_unary(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    ProtobufCMessage *m;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc <= 0)
        return rc < 0 ? rc : tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "no request");
    const Terntest__Req *req = (const Terntest__Req *)m;
    echo_md(call);
    if (req->sleep_ms) {
        atomic_store(&handler_budget, tern_ctx_remaining(tern_grpc_call_ctx(call)));
        rc = tern_ctx_sleep(req->sleep_ms * MS, tern_grpc_call_ctx(call));
        if (rc < 0)
            return rc;
    }
    if (req->code)
        return fail_as_asked(call, req);
    if (!strcmp(req->name, "errno"))
        return -EACCES;
    if (!strcmp(req->name, "details")) {     /* a google.rpc.Status, as bytes */
        CHECK_EQ(tern_grpc_call_add_trailer(call, "grpc-status-details-bin", "\x08\x03\x12\x01x", 5), 0);
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "x");
    }
    Terntest__Resp resp = TERNTEST__RESP__INIT;
    if (!strcmp(req->name, "timeout?")) {
        int64_t left = tern_ctx_remaining(tern_grpc_call_ctx(call));
        char buf[32];
        if (left < 0 || left > 1000 * SEC)
            snprintf(buf, sizeof buf, "none");
        else
            snprintf(buf, sizeof buf, "%.3f", (double)left / SEC);
        resp.text = tern_grpc_call_strdup(call, buf);
    } else {
        char *t = tern_grpc_call_alloc(call, strlen(req->name) + 7);
        sprintf(t, "hello %s", req->name);
        resp.text = t;
    }
    resp.pad = req->pad;
    return tern_grpc_call_send(call, &resp.base, NULL);
}

static int t_server_stream(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    ProtobufCMessage *m;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc <= 0)
        return rc < 0 ? rc : -EINVAL;
    const Terntest__Req *req = (const Terntest__Req *)m;
    echo_md(call);
    char *name = tern_grpc_call_strdup(call, req->name);
    int count = req->count, sleep_ms = req->sleep_ms;
    for (int i = 0; i < count; i++) {
        if (i && sleep_ms) {
            rc = tern_ctx_sleep(sleep_ms * MS, tern_grpc_call_ctx(call));
            if (rc == -ECANCELED)
                atomic_store(&stream_cancelled, 1);
            if (rc < 0)
                return rc;
        }
        Terntest__Resp resp = TERNTEST__RESP__INIT;
        resp.text = name;
        resp.index = i;
        rc = tern_grpc_call_send(call, &resp.base, NULL);
        if (rc < 0) {
            if (rc == -ECANCELED)
                atomic_store(&stream_cancelled, 1);
            return rc;
        }
    }
    if (req->code)
        return fail_as_asked(call, req);
    return 0;
}

static int t_client_stream(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    echo_md(call);
    char *joined = tern_grpc_call_alloc(call, 4096);
    size_t len = 0;
    int n = 0, rc;
    ProtobufCMessage *m;
    joined[0] = '\0';
    while ((rc = tern_grpc_call_recv(call, &m, NULL)) == 1) {
        const Terntest__Req *req = (const Terntest__Req *)m;
        len += (size_t)snprintf(joined + len, 4096 - len, "%s%s", n ? "," : "", req->name);
        n++;
    }
    if (rc < 0)
        return rc;
    Terntest__Resp resp = TERNTEST__RESP__INIT;
    resp.text = joined;
    resp.index = n;
    return tern_grpc_call_send(call, &resp.base, NULL);
}

static int t_bidi(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    echo_md(call);
    int rc, i = 0;
    ProtobufCMessage *m;
    while ((rc = tern_grpc_call_recv(call, &m, NULL)) == 1) {
        const Terntest__Req *req = (const Terntest__Req *)m;
        if (req->code)
            return fail_as_asked(call, req);
        Terntest__Resp resp = TERNTEST__RESP__INIT;
        resp.text = req->name;      /* packed before the next recv */
        resp.index = i++;
        /* "z?": was this request compressed; "zoff"/"zon": switch the
         * answers' compression (after the first answer went out) */
        if (!strcmp(req->name, "z?"))
            resp.text = tern_grpc_call_recv_compressed(call) ? "compressed" : "plain";
        else if (!strcmp(req->name, "zoff"))
            CHECK_EQ(tern_grpc_call_set_compression(call, NULL), 0);
        else if (!strcmp(req->name, "zon"))
            CHECK_EQ(tern_grpc_call_set_compression(call, "gzip"), 0);
        rc = tern_grpc_call_send(call, &resp.base, NULL);
        if (rc < 0)
            return rc;
    }
    return rc;
}

static const tern_grpc_method_desc test_methods[] = {
    { "Unary", "/terntest.Test/Unary", TERN_GRPC_UNARY, &terntest__req__descriptor,
      &terntest__resp__descriptor, t_unary },
    { "ServerStream", "/terntest.Test/ServerStream", TERN_GRPC_SERVER_STREAMING, &terntest__req__descriptor,
      &terntest__resp__descriptor, t_server_stream },
    { "ClientStream", "/terntest.Test/ClientStream", TERN_GRPC_CLIENT_STREAMING, &terntest__req__descriptor,
      &terntest__resp__descriptor, t_client_stream },
    { "Bidi", "/terntest.Test/Bidi", TERN_GRPC_BIDI_STREAMING, &terntest__req__descriptor,
      &terntest__resp__descriptor, t_bidi },
};
static const tern_grpc_service_desc test_service = { "terntest.Test", test_methods, 4, NULL };
#define M_UNARY (&test_methods[0])
#define M_SSTREAM (&test_methods[1])
#define M_CSTREAM (&test_methods[2])
#define M_BIDI (&test_methods[3])

/* ---- the grpcio peer -------------------------------------------------------- */

static const char *peer_script(void)
{
    return TERN_TEST_SRC_DIR "/grpc/grpc_peer.py";
}

static bool have_grpcio(void)
{
    return system("/usr/bin/python3 -c 'import grpc' 2>/dev/null") == 0;
}

typedef struct py_run {
    char cmd[1024];
    int status;
} py_run;

static int py_run_blocking(void *arg)
{
    py_run *p = arg;
    p->status = system(p->cmd);
    return 0;
}

/* Run the grpcio client cases against target; its exit status. */
static int run_py_client(const char *target, const char *ca)
{
    py_run *p = calloc(1, sizeof *p);
    snprintf(p->cmd, sizeof p->cmd, "PYTHONPATH=%s /usr/bin/python3 %s client %s %s", TERN_TEST_PB_DIR,
             peer_script(), target, ca ? ca : "");
    CHECK_EQ(tern_blocking(py_run_blocking, p), 0);
    int st = p->status;
    free(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#pragma GCC diagnostic pop
#endif
