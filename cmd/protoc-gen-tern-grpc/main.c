/*
 * protoc-gen-tern-grpc - protoc's plugin for tern's gRPC services.
 *
 *   protoc-c --c_out=OUT x.proto                      (the messages)
 *   protoc --plugin=protoc-gen-tern-grpc=PATH --tern-grpc_out=OUT x.proto
 *
 * makes OUT/x.tern-grpc.h and OUT/x.tern-grpc.c for each file named on the
 * command line (emit.c says what they hold).  A file without services gets
 * them too, holding only its descriptor: which files a build makes is
 * then known before protoc runs (tern_grpc_generate's outputs), and
 * reflection can name the file.
 * cmake/TernGrpc.cmake's tern_grpc_generate() runs both.
 *
 * protoc speaks to a plugin in protobuf: a CodeGeneratorRequest on stdin,
 * a CodeGeneratorResponse on stdout (google/protobuf/compiler/plugin.proto,
 * compiled here by protoc-c at build time, as is descriptor.proto).  A
 * problem with the .proto (a type protoc did not describe, two generated
 * names that clash) goes back in the response's error, which protoc shows
 * as "x.proto: <error>" and exits 1; exit 1 from the plugin itself is for
 * when protoc cannot be answered at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorResponse response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File response_file;

static uint8_t *read_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            uint8_t *b = realloc(buf, cap);
            if (!b) {
                fprintf(stderr, "protoc-gen-tern-grpc: out of memory\n");
                exit(1);
            }
            buf = b;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            perror("protoc-gen-tern-grpc: reading the request");
            exit(1);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            perror("protoc-gen-tern-grpc: writing the response");
            exit(1);
        }
        p += w;
        len -= (size_t)w;
    }
}

static response_file *new_file(const char *name, char *content)
{
    response_file *f = xmalloc(sizeof *f);
    google__protobuf__compiler__code_generator_response__file__init(f);
    f->name = xstrdup(name);
    f->content = content;
    return f;
}

/* Fill resp from req: the files, or an error. */
static void generate(Google__Protobuf__Compiler__CodeGeneratorRequest *req, response *resp)
{
    if (req->parameter && *req->parameter) {
        strbuf e = {0};
        sb_printf(&e, "protoc-gen-tern-grpc takes no options (given \"%s\")", req->parameter);
        resp->error = sb_take(&e);
        return;
    }
    types_index(req);
    response_file **files = xmalloc(2 * req->n_file_to_generate * sizeof *files);
    size_t n = 0;
    for (size_t i = 0; i < req->n_file_to_generate; i++) {
        const file_proto *f = NULL;
        for (size_t k = 0; k < req->n_proto_file && !f; k++)
            if (!strcmp(req->proto_file[k]->name, req->file_to_generate[i]))
                f = req->proto_file[k];
        if (!f) {
            strbuf e = {0};
            sb_printf(&e, "protoc asked for %s but did not describe it", req->file_to_generate[i]);
            resp->error = sb_take(&e);
            return;
        }
        char *h = NULL, *c = NULL, *err = NULL;
        if (emit_file(req, f, &h, &c, &err) < 0) {
            resp->error = err;
            return;
        }
        char *base = strip_proto(f->name);
        strbuf name = {0};
        sb_printf(&name, "%s.tern-grpc.h", base);
        files[n++] = new_file(name.p, h);
        name.len = 0;
        sb_printf(&name, "%s.tern-grpc.c", base);
        files[n++] = new_file(name.p, c);
        free(name.p);
        free(base);
    }
    resp->file = files;
    resp->n_file = n;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr,
                "usage: protoc --plugin=protoc-gen-tern-grpc=%s --tern-grpc_out=DIR file.proto...\n"
                "(a protoc plugin: it reads a CodeGeneratorRequest on stdin)\n",
                argv[0]);
        return 2;
    }
    size_t len;
    uint8_t *in = read_all(0, &len);
    Google__Protobuf__Compiler__CodeGeneratorRequest *req =
        google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
    free(in);
    if (!req) {
        fprintf(stderr, "protoc-gen-tern-grpc: stdin is not a CodeGeneratorRequest (run me from protoc)\n");
        return 1;
    }
    response resp;
    google__protobuf__compiler__code_generator_response__init(&resp);
    /* proto3 `optional` fields are the messages' business (protoc-c's):
     * nothing here depends on them */
    resp.has_supported_features = 1;
    resp.supported_features =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    generate(req, &resp);
    size_t out_len = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
    uint8_t *out = xmalloc(out_len);
    google__protobuf__compiler__code_generator_response__pack(&resp, out);
    write_all(1, out, out_len);
    free(out);
    google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
    return 0;
}
