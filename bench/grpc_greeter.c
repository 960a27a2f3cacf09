/*
 * grpc_greeter.c - tern's side of bench/compare.sh grpc: helloworld.Greeter
 * (Debian grpc-proto's helloworld.proto, compiled by protoc-c) with
 * SayHello answering "Hello <name>", the same as the grpc-go anchor
 * (bench/go/grpc).  The service desc is written by hand, as
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
