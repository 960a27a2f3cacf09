/*
 * grpc_greeter.c - tern's side of bench/compare.sh grpc: helloworld.Greeter
 * (Debian grpc-proto's helloworld.proto, compiled by protoc-c) with
 * SayHello answering "Hello <name>", the same as the grpc-go anchor
 * (bench/go/grpc), and bench.Stream (the grpc-go anchor's hand-written
 * ServiceDesc, on helloworld's messages): Many, a server stream of that
 * reply until the client cancels, and Echo, a bidirectional stream
 * answering each HelloRequest with it.  The service descs are
 * written by hand, as
 * protoc-gen-tern-grpc would generate it, so the suite depends on nothing
 * but the library.
 *
 *     grpc_greeter [--listen 127.0.0.1:50051]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tern/error.h>
#include <tern/grpc.h>
#include <tern/runtime.h>

#include "helloworld.pb-c.h"

static int say_hello(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    ProtobufCMessage *m;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc <= 0)
        return rc < 0 ? rc : -EINVAL;
    const Helloworld__HelloRequest *req = (const Helloworld__HelloRequest *)m;
    size_t n = strlen(req->name);
    char *text = tern_grpc_call_alloc(call, n + 7);
    if (!text)
        return -ENOMEM;
    memcpy(text, "Hello ", 6);
    memcpy(text + 6, req->name, n + 1);
    Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
    reply.message = text;
    return tern_grpc_call_send(call, &reply.base, NULL);
}

/* bench.Stream/Many: replies until the client cancels (the send fails). */
static int many(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    ProtobufCMessage *m;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc <= 0)
        return rc < 0 ? rc : -EINVAL;
    const Helloworld__HelloRequest *req = (const Helloworld__HelloRequest *)m;
    char text[256];
    int n = snprintf(text, sizeof text, "Hello %s", req->name);
    if (n < 0 || (size_t)n >= sizeof text)
        return -EMSGSIZE;
    Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
    reply.message = text;
    while ((rc = tern_grpc_call_send(call, &reply.base, NULL)) == 0)
        ;
    return rc;
}

/* bench.Stream/Echo: one reply per request until the client half-closes. */
static int echo(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    (void)arg;
    char text[256];
    for (;;) {
        ProtobufCMessage *m;
        int rc = tern_grpc_call_recv(call, &m, NULL);
        if (rc <= 0)
            return rc;
        const Helloworld__HelloRequest *req = (const Helloworld__HelloRequest *)m;
        int n = snprintf(text, sizeof text, "Hello %s", req->name);
        if (n < 0 || (size_t)n >= sizeof text)
            return -EMSGSIZE;
        Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
        reply.message = text;
        rc = tern_grpc_call_send(call, &reply.base, NULL);
        if (rc < 0)
            return rc;
    }
}

static const tern_grpc_method_desc stream_methods[] = {
    { "Many", "/bench.Stream/Many", TERN_GRPC_SERVER_STREAMING, &helloworld__hello_request__descriptor,
      &helloworld__hello_reply__descriptor, many },
    { "Echo", "/bench.Stream/Echo", TERN_GRPC_BIDI_STREAMING, &helloworld__hello_request__descriptor,
      &helloworld__hello_reply__descriptor, echo },
};
static const tern_grpc_service_desc stream_service = { "bench.Stream", stream_methods, 2, NULL };

static const tern_grpc_method_desc methods[] = {
    { "SayHello", "/helloworld.Greeter/SayHello", TERN_GRPC_UNARY, &helloworld__hello_request__descriptor,
      &helloworld__hello_reply__descriptor, say_hello },
};
static const tern_grpc_service_desc greeter = { "helloworld.Greeter", methods, 1, NULL };

static const char *listen_addr = "127.0.0.1:50051";

static void on_term(int sig)
{
    (void)sig;
    _exit(0);       /* the suite stops it with SIGTERM between metrics */
}

static int serve(void *arg)
{
    (void)arg;
    tern_grpc_server *s;
    int rc = tern_grpc_server_new(NULL, &s);
    if (rc == 0)
        rc = tern_grpc_server_add_service(s, &greeter, NULL, NULL);
    if (rc == 0)
        rc = tern_grpc_server_add_service(s, &stream_service, NULL, NULL);
    if (rc == 0)
        rc = tern_grpc_server_listen(s, listen_addr);
    if (rc < 0) {
        fprintf(stderr, "grpc_greeter: %s: %s\n", listen_addr, tern_strerror(rc));
        return 1;
    }
    rc = tern_grpc_server_serve(s, NULL);
    tern_grpc_server_free(s);
    return rc < 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--listen"))
            listen_addr = argv[++i];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    return tern_run(serve, NULL);
}
