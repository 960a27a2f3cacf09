/*
 * gen.h - what the three files of protoc-gen-tern-grpc share: a growing
 * text buffer, the naming rules, and the index of every message type the
 * request describes (so a method's input and output map to protoc-c's C
 * names, whichever file declares them).
 *
 * The plugin is a short-lived host program: allocation failure ends it
 * (xmalloc), and nothing is freed before exit but what protoc-c's unpack
 * gave.
 */
#ifndef TERN_PROTOC_GEN_H
#define TERN_PROTOC_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto file_proto;
typedef Google__Protobuf__DescriptorProto msg_proto;
typedef Google__Protobuf__ServiceDescriptorProto svc_proto;
typedef Google__Protobuf__MethodDescriptorProto method_proto;

/* ---- text --------------------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

void *xmalloc(size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void sb_puts(strbuf *b, const char *s);
void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The buffer's text, NUL-terminated, handed over (the buffer is empty after). */
char *sb_take(strbuf *b);

/* ---- names -------------------------------------------------------------------- */

/* "SayHelloStream" -> "say_hello_stream", "GetHTTPStatus" -> "get_http_status",
 * "bar_baz" -> "bar_baz": the names this plugin makes (malloc'd). */
char *snake(const char *s);
/* lower_snake of a package's components joined by '_' ("grpc.testing" ->
 * "grpc_testing"), "" for none (malloc'd). */
char *package_snake(const char *pkg);
/* The C prefix of everything generated for a service: package_snake + '_' +
 * snake(service), or snake(service) without a package (malloc'd). */
char *service_prefix(const file_proto *f, const char *service);
/* An identifier from a file name: every byte that is not [A-Za-z0-9]
 * becomes '_' ("grpc/testing/test.proto" -> "grpc_testing_test_proto"). */
char *file_ident(const char *name);
/* name, or name + "_" when it is a C (or C++) keyword: for struct members. */
char *member_name(const char *snake_name);
/* "grpc/testing/test.proto" -> "grpc/testing/test" */
char *strip_proto(const char *name);

/* ---- message types (protoc-c's C names) ----------------------------------------- */

typedef struct type_names {
    char *c_type;          /* Foo__Bar__Outer__Inner */
    char *descriptor;      /* foo__bar__outer__inner__descriptor */
} type_names;

/* Index every message of every file in the request (nested ones too). */
void types_index(Google__Protobuf__Compiler__CodeGeneratorRequest *req);
/* The C names of a fully qualified type (".foo.bar.Outer.Inner"); NULL when
 * no file in the request declares it. */
const type_names *types_find(const char *full_name);

/* ---- generation --------------------------------------------------------------- */

/* Generate f's .tern-grpc.h and .tern-grpc.c into *h and *c.  0, or -1 with
 * a malloc'd sentence in *err (what protoc shows the user). */
int emit_file(Google__Protobuf__Compiler__CodeGeneratorRequest *req, const file_proto *f, char **h,
              char **c, char **err);

#endif
