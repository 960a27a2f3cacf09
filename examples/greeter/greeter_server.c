/*
 * greeter_server - helloworld.Greeter on tern's gRPC server, from the code
 * tern_grpc_generate makes of helloworld.proto.
 *
 *     greeter_server [ADDR]        (default 127.0.0.1:50051; port 0: any)
 *
 * Prints "listening on PORT", serves until SIGTERM or SIGINT, then drains.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include <tern/error.h>
#include <tern/runtime.h>
#include <tern/signal.h>

#include "helloworld.tern-grpc.h"

static int say_hello(tern_grpc_call *call, const Helloworld__HelloRequest *req,
                     Helloworld__HelloReply *resp, void *arg)
{
    (void)arg;
    char text[256];
    snprintf(text, sizeof text, "Hello, %s!", req->name);
    resp->message = tern_grpc_call_strdup(call, text);
    return resp->message ? 0 : -ENOMEM;
}

static int say_hello_stream(tern_grpc_call *call, const Helloworld__HelloRequest *req, void *arg)
{
    (void)arg;
    int n = req->count > 0 ? req->count : 3;
    for (int i = 1; i <= n; i++) {
        char text[256];
        snprintf(text, sizeof text, "Hello, %s! (%d of %d)", req->name, i, n);
        Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
        reply.message = text;
        int rc = helloworld_greeter_say_hello_stream_send(call, &reply, NULL);
        if (rc < 0)
            return rc;      /* the client went away, or its deadline passed */
    }
    return 0;
}

static const helloworld_greeter_server greeter = {
    .say_hello = say_hello,
    .say_hello_stream = say_hello_stream,
};

static int stop_on_signal(void *server)
{
    int sigs[] = {SIGTERM, SIGINT};
    tern_signal_wait(sigs, 2, TERN_FOREVER);
    tern_ctx *grace;
    tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &grace);
    tern_grpc_server_shutdown(server, grace);
    tern_ctx_free(grace);
    return 0;
}

static int serve(void *addr)
{
    tern_grpc_server *s;
    int rc = tern_grpc_server_new(NULL, &s);
    if (rc == 0)
        rc = helloworld_greeter_register(s, &greeter, NULL);
    if (rc == 0)
        rc = tern_grpc_server_listen(s, addr);
    if (rc < 0) {
        fprintf(stderr, "greeter_server: %s: %s\n", (char *)addr, tern_strerror(rc));
        return 1;
    }
    printf("listening on %d\n", tern_grpc_server_port(s));
    fflush(stdout);
    int sigs[] = {SIGTERM, SIGINT};
    tern_signal_notify(sigs, 2);
    tern_go(stop_on_signal, s);
    rc = tern_grpc_server_serve(s, NULL);
    tern_grpc_server_free(s);
    return rc < 0;
}

int main(int argc, char **argv)
{
    return tern_run(serve, argc > 1 ? argv[1] : "127.0.0.1:50051");
}
