/*
 * greeter_client - calls helloworld.Greeter: SayHello once, then
 * SayHelloStream, through the stubs tern_grpc_generate makes of
 * helloworld.proto.
 *
 *     greeter_client [TARGET [NAME [COUNT]]]   (default 127.0.0.1:50051 world 3)
 *
 * Each call is bounded by a 5 s deadline (sent to the server as grpc-timeout).
 */
#include <stdio.h>
#include <stdlib.h>

#include <tern/error.h>
#include <tern/runtime.h>

#include "helloworld.tern-grpc.h"

typedef struct args {
    const char *target, *name;
    int count;
} args;

static int greet(void *p)
{
    const args *a = p;
    tern_grpc_channel *ch;
    int rc = tern_grpc_channel_new(a->target, NULL, &ch);
    if (rc < 0) {
        fprintf(stderr, "greeter_client: %s: %s\n", a->target, tern_strerror(rc));
        return 1;
    }
    tern_ctx *ctx;
    tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx);

    Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
    req.name = (char *)a->name;
    req.count = a->count;
    Helloworld__HelloReply *reply;
    tern_grpc_status st = {0};
    rc = helloworld_greeter_say_hello(ch, &req, &reply, NULL, &st, ctx);
    if (rc == 0) {
        printf("%s\n", reply->message);
        protobuf_c_message_free_unpacked(&reply->base, NULL);
    } else {
        fprintf(stderr, "SayHello: %s (%s)\n", tern_grpc_code_name(st.code), st.message ? st.message : tern_strerror(rc));
    }
    tern_grpc_status_clear(&st);

    tern_grpc_stream *stream;
    if (rc == 0 && (rc = helloworld_greeter_say_hello_stream_open(ch, &req, NULL, &stream, ctx)) == 0) {
        const Helloworld__HelloReply *r;
        while ((rc = helloworld_greeter_say_hello_stream_stream_recv(stream, &r, ctx)) == 1)
            printf("%s\n", r->message);
        if (rc < 0) {
            const tern_grpc_status *s = tern_grpc_stream_status(stream);
            fprintf(stderr, "SayHelloStream: %s (%s)\n", tern_grpc_code_name(s->code),
                    s->message ? s->message : tern_strerror(rc));
        }
        tern_grpc_stream_free(stream);
    }
    tern_ctx_free(ctx);
    tern_grpc_channel_free(ch);
    return rc < 0;
}

int main(int argc, char **argv)
{
    args a = {
        .target = argc > 1 ? argv[1] : "127.0.0.1:50051",
        .name = argc > 2 ? argv[2] : "world",
        .count = argc > 3 ? atoi(argv[3]) : 3,
    };
    return tern_run(greet, &a);
}
