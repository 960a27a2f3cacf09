/*
 * emit.c - the text of <file>.tern-grpc.h and <file>.tern-grpc.c.
 *
 * For a file with services, for each service P_S (P the package in
 * lower_snake, S the service; M each method):
 *   header   the method and service descriptors, the typed server struct
 *            P_S_server (one function pointer per method; NULL answers
 *            UNIMPLEMENTED), P_S_register, inline typed send/recv for
 *            handlers (P_S_M_send, P_S_M_recv), the client stubs (P_S_M for
 *            a unary method; P_S_M_open plus P_S_M_stream_send /
 *            _stream_recv / _close_and_recv for streams);
 *   source   the serialized FileDescriptorProto of the file and of every
 *            file it imports, directly or not (reflection answers with the
 *            closure, so each generated file carries it: a static copy per
 *            file, never a symbol two files could both define), the
 *            descriptors, and per method the invoke glue that receives,
 *            calls the user's function and sends.
 * The glue and the stubs only call tern/grpc.h; the messages are
 * protoc-c's (<file>.pb-c.h, which includes its imports' headers).
 *
 * Every global name a file defines is checked against the others before
 * anything is written: a method "Register", or "Foo" beside "FooOpen" with
 * a stream, would otherwise make C that does not compile, far from the
 * .proto that caused it.
 */
#define _GNU_SOURCE
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { UNARY, SERVER_STREAMING, CLIENT_STREAMING, BIDI_STREAMING } kind;

static const char *const kind_enum[] = {"TERN_GRPC_UNARY", "TERN_GRPC_SERVER_STREAMING",
                                        "TERN_GRPC_CLIENT_STREAMING", "TERN_GRPC_BIDI_STREAMING"};
static const char *const kind_text[] = {"unary", "server streaming", "client streaming",
                                        "bidirectional streaming"};

typedef struct method {
    const method_proto *proto;
    kind kind;
    char *fn;                   /* P_S_M: the prefix of its functions */
    char *member;               /* M in the server struct */
    const type_names *in, *out;
    char *path;                 /* "/pkg.Service/Method" */
    const char *comment;        /* leading comment in the .proto, or NULL */
} method;

typedef struct service {
    const svc_proto *proto;
    char *prefix;               /* P_S */
    char *full_name;            /* "pkg.Service" */
    method *methods;
    size_t n;
    const char *comment;
} service;

/* ---- the names a file defines ------------------------------------------------------ */

typedef struct names {
    char **v;
    size_t n, cap;
    char *clash;                /* the first name defined twice */
} names;

static void name_add(names *ns, const char *fmt, const char *a, const char *b)
{
    strbuf sb = {0};
    sb_printf(&sb, fmt, a, b);
    char *s = sb_take(&sb);
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i], s)) {
            if (!ns->clash)
                ns->clash = s;
            else
                free(s);
            return;
        }
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 32;
        char **v = realloc(ns->v, ns->cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "protoc-gen-tern-grpc: out of memory\n");
            exit(1);
        }
        ns->v = v;
    }
    ns->v[ns->n++] = s;
}

/* ---- comments from the .proto --------------------------------------------------- */

/* The leading comment of the element at path (FileDescriptorProto field
 * numbers and indexes, as SourceCodeInfo.Location.path has them). */
static const char *leading_comment(const file_proto *f, const int32_t *path, size_t n)
{
    const Google__Protobuf__SourceCodeInfo *sci = f->source_code_info;
    for (size_t i = 0; sci && i < sci->n_location; i++) {
        const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
        if (l->n_path == n && !memcmp(l->path, path, n * sizeof *path))
            return l->leading_comments && *l->leading_comments ? l->leading_comments : NULL;
    }
    return NULL;
}

/* A comment's text in a C comment: each line prefixed, "*" "/" broken. */
static void put_comment(strbuf *b, const char *indent, const char *text)
{
    if (!text)
        return;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        sb_printf(b, "%s *", indent);
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            /* neither end nor open a comment inside ours */
            if ((c == '/' && i > 0 && p[i - 1] == '*') || (c == '*' && i > 0 && p[i - 1] == '/'))
                sb_puts(b, " ");
            char one[2] = {c, 0};
            sb_puts(b, one);
        }
        sb_puts(b, "\n");
        p += n + (nl != NULL);
    }
}

/* ---- the model of one file ------------------------------------------------------- */

static int build(const file_proto *f, service **out, size_t *n_out, char **err)
{
    strbuf e = {0};
    service *svcs = xmalloc(f->n_service * sizeof *svcs);
    for (size_t i = 0; i < f->n_service; i++) {
        const svc_proto *sp = f->service[i];
        service *s = &svcs[i];
        s->proto = sp;
        s->prefix = service_prefix(f, sp->name);
        strbuf fn = {0};
        if (f->package && *f->package)
            sb_printf(&fn, "%s.%s", f->package, sp->name);
        else
            sb_puts(&fn, sp->name);
        s->full_name = sb_take(&fn);
        int32_t spath[] = {6, (int32_t)i};
        s->comment = leading_comment(f, spath, 2);
        s->n = sp->n_method;
        s->methods = xmalloc(sp->n_method * sizeof *s->methods);
        for (size_t j = 0; j < sp->n_method; j++) {
            const method_proto *mp = sp->method[j];
            method *m = &s->methods[j];
            m->proto = mp;
            bool cs = mp->has_client_streaming && mp->client_streaming;
            bool ss = mp->has_server_streaming && mp->server_streaming;
            m->kind = cs ? (ss ? BIDI_STREAMING : CLIENT_STREAMING) : (ss ? SERVER_STREAMING : UNARY);
            char *ms = snake(mp->name);
            strbuf b = {0};
            sb_printf(&b, "%s_%s", s->prefix, ms);
            m->fn = sb_take(&b);
            m->member = member_name(ms);
            free(ms);
            sb_printf(&b, "/%s/%s", s->full_name, mp->name);
            m->path = sb_take(&b);
            int32_t mpath[] = {6, (int32_t)i, 2, (int32_t)j};
            m->comment = leading_comment(f, mpath, 4);
            m->in = types_find(mp->input_type ? mp->input_type : "");
            m->out = types_find(mp->output_type ? mp->output_type : "");
            if (!m->in || !m->out) {
                sb_printf(&e, "%s: method %s.%s: type %s is not declared in any file protoc gave",
                          f->name, s->full_name, mp->name,
                          !m->in ? mp->input_type : mp->output_type);
                *err = sb_take(&e);
                return -1;
            }
        }
    }
    *out = svcs;
    *n_out = f->n_service;
    return 0;
}

/* Every global name (and every struct member) the file will define, or
 * -1 with the clash described. */
static int check_names(const file_proto *f, const service *svcs, size_t n, const char *file_id,
                       char **err)
{
    names ns = {0};
    name_add(&ns, "%s%s_file_desc", file_id, "");
    for (size_t i = 0; i < n; i++) {
        const service *s = &svcs[i];
        name_add(&ns, "%s%s_desc", s->prefix, "");
        name_add(&ns, "%s%s_methods", s->prefix, "");
        name_add(&ns, "%s%s_server", s->prefix, "");
        name_add(&ns, "%s%s_register", s->prefix, "");
        names members = {0};
        for (size_t j = 0; j < s->n; j++) {
            const method *m = &s->methods[j];
            name_add(&members, "%s%s", m->member, "");
            switch (m->kind) {
            case UNARY:
                name_add(&ns, "%s%s", m->fn, "");
                break;
            case SERVER_STREAMING:
                name_add(&ns, "%s%s_send", m->fn, "");
                name_add(&ns, "%s%s_open", m->fn, "");
                name_add(&ns, "%s%s_stream_recv", m->fn, "");
                break;
            case CLIENT_STREAMING:
                name_add(&ns, "%s%s_recv", m->fn, "");
                name_add(&ns, "%s%s_open", m->fn, "");
                name_add(&ns, "%s%s_stream_send", m->fn, "");
                name_add(&ns, "%s%s_close_and_recv", m->fn, "");
                break;
            case BIDI_STREAMING:
                name_add(&ns, "%s%s_send", m->fn, "");
                name_add(&ns, "%s%s_recv", m->fn, "");
                name_add(&ns, "%s%s_open", m->fn, "");
                name_add(&ns, "%s%s_stream_send", m->fn, "");
                name_add(&ns, "%s%s_stream_recv", m->fn, "");
                break;
            }
        }
        if (members.clash) {
            strbuf e = {0};
            sb_printf(&e, "%s: service %s: two methods are both named %s in C (rename one)", f->name,
                      s->full_name, members.clash);
            *err = sb_take(&e);
            return -1;
        }
    }
    if (ns.clash) {
        strbuf e = {0};
        sb_printf(&e,
                  "%s: the generated C name %s would be defined twice (a method or service name "
                  "meets another's generated name: rename one)",
                  f->name, ns.clash);
        *err = sb_take(&e);
        return -1;
    }
    return 0;
}

/* ---- header ------------------------------------------------------------------------ */

static void emit_server_doc(strbuf *h, const method *m)
{
    switch (m->kind) {
    case UNARY:
        sb_printf(h, "     * unary: req is the call's; fill resp (initialised; its strings and arrays\n"
                     "     * from tern_grpc_call_alloc / _strdup), return 0, or -errno (a status from\n"
                     "     * tern_grpc_call_fail wins). */\n");
        break;
    case SERVER_STREAMING:
        sb_printf(h, "     * server streaming: send each response with %s_send. */\n", m->fn);
        break;
    case CLIENT_STREAMING:
        sb_printf(h, "     * client streaming: take the requests with %s_recv (0 at the end\n"
                     "     * of the client's stream), fill resp (initialised), return 0. */\n", m->fn);
        break;
    case BIDI_STREAMING:
        sb_printf(h, "     * bidirectional streaming: %s_recv (0 at the end of the client's\n"
                     "     * stream) and %s_send, in any order. */\n", m->fn, m->fn);
        break;
    }
}

static void emit_header_service(strbuf *h, const service *s)
{
    const char *p = s->prefix;
    sb_printf(h, "/* ---- service %s ---- */\n", s->full_name);
    if (s->comment) {
        sb_puts(h, "/*\n");
        put_comment(h, "", s->comment);
        sb_puts(h, " */\n");
    }
    sb_printf(h, "\n/* Its methods, in .proto order, and the service (for\n"
                 " * tern_grpc_server_add_service, interceptors and reflection). */\n");
    sb_printf(h, "extern const tern_grpc_method_desc %s_methods[%zu];\n", p, s->n);
    sb_printf(h, "extern const tern_grpc_service_desc %s_desc;\n\n", p);

    sb_printf(h, "/* The server: one function per method, arg as given to %s_register.\n"
                 " * A NULL function answers UNIMPLEMENTED.  Each runs in its call's coroutine;\n"
                 " * tern_grpc_call_ctx(call) ends with the client's deadline or cancel. */\n", p);
    sb_printf(h, "typedef struct %s_server {\n", p);
    for (size_t j = 0; j < s->n; j++) {
        const method *m = &s->methods[j];
        sb_printf(h, "    /* %s (%s)\n", m->proto->name, kind_text[m->kind]);
        if (m->comment)
            put_comment(h, "    ", m->comment);
        emit_server_doc(h, m);
        switch (m->kind) {
        case UNARY:
            sb_printf(h, "    int (*%s)(tern_grpc_call *call, const %s *req, %s *resp, void *arg);\n",
                      m->member, m->in->c_type, m->out->c_type);
            break;
        case SERVER_STREAMING:
            sb_printf(h, "    int (*%s)(tern_grpc_call *call, const %s *req, void *arg);\n", m->member,
                      m->in->c_type);
            break;
        case CLIENT_STREAMING:
            sb_printf(h, "    int (*%s)(tern_grpc_call *call, %s *resp, void *arg);\n", m->member,
                      m->out->c_type);
            break;
        case BIDI_STREAMING:
            sb_printf(h, "    int (*%s)(tern_grpc_call *call, void *arg);\n", m->member);
            break;
        }
    }
    sb_printf(h, "} %s_server;\n\n", p);
    sb_printf(h, "/* Register the service on s: impl (and arg) are borrowed and must outlive the\n"
                 " * server.  0, -EINVAL (impl NULL), or as tern_grpc_server_add_service. */\n");
    sb_printf(h, "int %s_register(tern_grpc_server *s, const %s_server *impl, void *arg);\n\n", p, p);

    /* typed helpers for handlers */
    for (size_t j = 0; j < s->n; j++) {
        const method *m = &s->methods[j];
        if (m->kind == SERVER_STREAMING || m->kind == BIDI_STREAMING) {
            sb_printf(h, "/* In a %s handler: send one response (tern_grpc_call_send). */\n",
                      m->proto->name);
            sb_printf(h, "static inline int %s_send(tern_grpc_call *call, const %s *msg, tern_ctx *ctx)\n"
                         "{\n    return tern_grpc_call_send(call, &msg->base, ctx);\n}\n",
                      m->fn, m->out->c_type);
        }
        if (m->kind == CLIENT_STREAMING || m->kind == BIDI_STREAMING) {
            sb_printf(h, "/* In a %s handler: the next request, the call's until the next recv or the\n"
                         " * handler's return (tern_grpc_call_recv): 1 with *msg, 0 at the end of the\n"
                         " * client's stream (*msg NULL), or -errno. */\n",
                      m->proto->name);
            sb_printf(h, "static inline int %s_recv(tern_grpc_call *call, const %s **msg, tern_ctx *ctx)\n"
                         "{\n"
                         "    ProtobufCMessage *m = NULL;\n"
                         "    int rc = tern_grpc_call_recv(call, &m, ctx);\n"
                         "    *msg = rc == 1 ? (const %s *)m : NULL;\n"
                         "    return rc;\n"
                         "}\n",
                      m->fn, m->in->c_type, m->in->c_type);
        }
    }

    /* client stubs */
    sb_printf(h, "\n/* Client stubs.  opts may be NULL; ctx bounds the call (its remaining time is\n"
                 " * sent as grpc-timeout; NULL: unbounded).  Errors are -errno matching the gRPC\n"
                 " * code (tern/grpc.h), with code and message in *status / the stream's status. */\n");
    for (size_t j = 0; j < s->n; j++) {
        const method *m = &s->methods[j];
        sb_printf(h, "\n/* %s (%s) */\n", m->path, kind_text[m->kind]);
        switch (m->kind) {
        case UNARY:
            sb_printf(h, "/* *resp is the caller's: protobuf_c_message_free_unpacked(&(*resp)->base, NULL).\n"
                         " * status may be NULL; when not, the caller clears it (tern_grpc_status_clear). */\n");
            sb_printf(h, "int %s(tern_grpc_channel *ch, const %s *req, %s **resp,\n"
                         "    const tern_grpc_call_options *opts, tern_grpc_status *status, tern_ctx *ctx);\n",
                      m->fn, m->in->c_type, m->out->c_type);
            break;
        case SERVER_STREAMING:
            sb_printf(h, "/* Open the stream and send req (and the end of the client's stream); then\n"
                         " * %s_stream_recv until 0; tern_grpc_stream_free when done.  ctx\n"
                         " * bounds the stream's whole life. */\n", m->fn);
            sb_printf(h, "int %s_open(tern_grpc_channel *ch, const %s *req,\n"
                         "    const tern_grpc_call_options *opts, tern_grpc_stream **out, tern_ctx *ctx);\n",
                      m->fn, m->in->c_type);
            break;
        case CLIENT_STREAMING:
        case BIDI_STREAMING:
            sb_printf(h, "/* Open the stream; tern_grpc_stream_free when done.  ctx bounds the stream's\n"
                         " * whole life. */\n");
            sb_printf(h, "int %s_open(tern_grpc_channel *ch, const tern_grpc_call_options *opts,\n"
                         "    tern_grpc_stream **out, tern_ctx *ctx);\n", m->fn);
            sb_printf(h, "static inline int %s_stream_send(tern_grpc_stream *st, const %s *msg, tern_ctx *ctx)\n"
                         "{\n    return tern_grpc_stream_send(st, &msg->base, ctx);\n}\n",
                      m->fn, m->in->c_type);
            break;
        }
        if (m->kind == SERVER_STREAMING || m->kind == BIDI_STREAMING) {
            sb_printf(h, "/* The next response, the stream's until the next recv or free: 1 with *msg,\n"
                         " * 0 at the end with status OK, -errno otherwise (tern_grpc_stream_status). */\n");
            sb_printf(h, "static inline int %s_stream_recv(tern_grpc_stream *st, const %s **msg, tern_ctx *ctx)\n"
                         "{\n"
                         "    ProtobufCMessage *m = NULL;\n"
                         "    int rc = tern_grpc_stream_recv(st, &m, ctx);\n"
                         "    *msg = rc == 1 ? (const %s *)m : NULL;\n"
                         "    return rc;\n"
                         "}\n",
                      m->fn, m->out->c_type, m->out->c_type);
        }
        if (m->kind == CLIENT_STREAMING) {
            sb_printf(h, "/* End the client's stream and take the one response: 0 with *resp (the\n"
                         " * caller's, as a unary call's), -EPROTO when the server sent none or more\n"
                         " * than one, or -errno with the status in tern_grpc_stream_status. */\n");
            sb_printf(h, "int %s_close_and_recv(tern_grpc_stream *st, %s **resp, tern_ctx *ctx);\n",
                      m->fn, m->out->c_type);
        }
    }
    sb_puts(h, "\n");
}

static void emit_header(strbuf *h, const file_proto *f, const service *svcs, size_t n,
                        const char *file_id, const char *base)
{
    sb_printf(h, "/* Generated by protoc-gen-tern-grpc from %s.  DO NOT EDIT. */\n", f->name);
    sb_printf(h, "#ifndef TERN_GRPC_GENERATED_%s_H\n#define TERN_GRPC_GENERATED_%s_H\n\n", file_id,
              file_id);
    sb_printf(h, "#include <tern/grpc.h>\n\n#include \"%s.pb-c.h\"\n\n", base);
    sb_puts(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    sb_printf(h, "/* %s as a serialized FileDescriptorProto, with the files it imports (server\n"
                 " * reflection). */\n", f->name);
    sb_printf(h, "extern const tern_grpc_file_desc %s_file_desc;\n\n", file_id);
    for (size_t i = 0; i < n; i++)
        emit_header_service(h, &svcs[i]);
    sb_puts(h, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

/* ---- source ------------------------------------------------------------------------ */

/* Mark f's imports, transitively, in need[] (indexes into proto_file). */
static int mark_deps(Google__Protobuf__Compiler__CodeGeneratorRequest *req, const file_proto *f,
                     bool *need, char **err)
{
    for (size_t i = 0; i < f->n_dependency; i++) {
        size_t k;
        for (k = 0; k < req->n_proto_file; k++)
            if (!strcmp(req->proto_file[k]->name, f->dependency[i]))
                break;
        if (k == req->n_proto_file) {
            strbuf e = {0};
            sb_printf(&e, "%s imports %s, which protoc did not describe", f->name, f->dependency[i]);
            *err = sb_take(&e);
            return -1;
        }
        if (!need[k]) {
            need[k] = true;
            if (mark_deps(req, req->proto_file[k], need, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* f serialized, without its source_code_info (comments and spans: nothing
 * reflection's clients use, and most of the bytes). */
static void emit_descriptor_bytes(strbuf *c, const file_proto *f, const char *var)
{
    file_proto copy = *f;
    copy.source_code_info = NULL;
    size_t len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *buf = xmalloc(len);
    protobuf_c_message_pack(&copy.base, buf);
    sb_printf(c, "static const uint8_t %s[%zu] = {", var, len ? len : 1);
    for (size_t i = 0; i < len; i++)
        sb_printf(c, "%s0x%02x,", i % 16 ? " " : "\n    ", buf[i]);
    if (!len)
        sb_puts(c, "0");
    sb_puts(c, "\n};\n");
    free(buf);
}

/* One tern_grpc_file_desc: var its name, static or not; its deps are the
 * dep_<ident> of the files f imports directly. */
static void emit_file_desc(strbuf *c, const file_proto *f, const char *var, bool is_static)
{
    char *id = file_ident(f->name);
    strbuf v = {0};
    sb_printf(&v, "%s_bytes", var);
    emit_descriptor_bytes(c, f, v.p);
    if (f->n_dependency) {
        sb_printf(c, "static const tern_grpc_file_desc *const %s_deps[%zu] = {\n", var, f->n_dependency);
        for (size_t i = 0; i < f->n_dependency; i++) {
            char *did = file_ident(f->dependency[i]);
            sb_printf(c, "    &dep_%s,\n", did);
            free(did);
        }
        sb_puts(c, "};\n");
    }
    sb_printf(c, "%sconst tern_grpc_file_desc %s = {\n", is_static ? "static " : "", var);
    sb_printf(c, "    .name = \"%s\",\n    .data = %s,\n    .len = sizeof %s,\n", f->name, v.p, v.p);
    if (f->n_dependency)
        sb_printf(c, "    .deps = %s_deps,\n    .n_deps = %zu,\n", var, f->n_dependency);
    sb_puts(c, "};\n\n");
    free(v.p);
    free(id);
}

static void emit_invoke(strbuf *c, const service *s, const method *m)
{
    sb_printf(c, "static int %s_invoke(tern_grpc_call *call, const void *impl, void *arg)\n{\n", m->fn);
    sb_printf(c, "    const %s_server *srv = impl;\n", s->prefix);
    sb_printf(c, "    if (!srv->%s)\n"
                 "        return tern_grpc_call_fail(call, TERN_GRPC_UNIMPLEMENTED, \"method %s is not implemented\");\n",
              m->member, m->path + 1);
    switch (m->kind) {
    case UNARY:
    case SERVER_STREAMING:
        sb_puts(c, "    ProtobufCMessage *req = NULL;\n"
                   "    int rc = recv_request(call, &req);\n"
                   "    if (rc < 0)\n"
                   "        return rc;\n");
        break;
    case CLIENT_STREAMING:
    case BIDI_STREAMING:
        sb_puts(c, "    int rc;\n");
        break;
    }
    switch (m->kind) {
    case UNARY:
    case CLIENT_STREAMING:
        sb_printf(c, "    %s *resp = tern_grpc_call_alloc(call, sizeof *resp);\n"
                     "    if (!resp)\n"
                     "        return -ENOMEM;\n"
                     "    protobuf_c_message_init(&%s, resp);\n",
                  m->out->c_type, m->out->descriptor);
        if (m->kind == UNARY)
            sb_printf(c, "    rc = srv->%s(call, (const %s *)req, resp, arg);\n", m->member, m->in->c_type);
        else
            sb_printf(c, "    rc = srv->%s(call, resp, arg);\n", m->member);
        sb_puts(c, "    if (rc < 0)\n"
                   "        return rc;\n"
                   "    return tern_grpc_call_send(call, &resp->base, NULL);\n");
        break;
    case SERVER_STREAMING:
        sb_printf(c, "    rc = srv->%s(call, (const %s *)req, arg);\n"
                     "    return rc < 0 ? rc : 0;\n",
                  m->member, m->in->c_type);
        break;
    case BIDI_STREAMING:
        sb_printf(c, "    rc = srv->%s(call, arg);\n"
                     "    return rc < 0 ? rc : 0;\n",
                  m->member);
        break;
    }
    sb_puts(c, "}\n\n");
}

static void emit_client(strbuf *c, const service *s, size_t j)
{
    const method *m = &s->methods[j];
    switch (m->kind) {
    case UNARY:
        sb_printf(c, "int %s(tern_grpc_channel *ch, const %s *req, %s **resp,\n"
                     "    const tern_grpc_call_options *opts, tern_grpc_status *status, tern_ctx *ctx)\n"
                     "{\n"
                     "    ProtobufCMessage *m = NULL;\n"
                     "    int rc = tern_grpc_unary(ch, &%s_methods[%zu], &req->base, &m, opts, status, ctx);\n"
                     "    *resp = rc == 0 ? (%s *)m : NULL;\n"
                     "    return rc;\n"
                     "}\n\n",
                  m->fn, m->in->c_type, m->out->c_type, s->prefix, j, m->out->c_type);
        break;
    case SERVER_STREAMING:
        sb_printf(c, "int %s_open(tern_grpc_channel *ch, const %s *req,\n"
                     "    const tern_grpc_call_options *opts, tern_grpc_stream **out, tern_ctx *ctx)\n"
                     "{\n"
                     "    return open_with_request(ch, &%s_methods[%zu], &req->base, opts, out, ctx);\n"
                     "}\n\n",
                  m->fn, m->in->c_type, s->prefix, j);
        break;
    case CLIENT_STREAMING:
    case BIDI_STREAMING:
        sb_printf(c, "int %s_open(tern_grpc_channel *ch, const tern_grpc_call_options *opts,\n"
                     "    tern_grpc_stream **out, tern_ctx *ctx)\n"
                     "{\n"
                     "    return tern_grpc_stream_open(ch, &%s_methods[%zu], opts, out, ctx);\n"
                     "}\n\n",
                  m->fn, s->prefix, j);
        if (m->kind == CLIENT_STREAMING)
            sb_printf(c, "int %s_close_and_recv(tern_grpc_stream *st, %s **resp, tern_ctx *ctx)\n"
                         "{\n"
                         "    ProtobufCMessage *m = NULL;\n"
                         "    int rc = close_and_recv(st, &%s, &m, ctx);\n"
                         "    *resp = rc == 0 ? (%s *)m : NULL;\n"
                         "    return rc;\n"
                         "}\n\n",
                      m->fn, m->out->c_type, m->out->descriptor, m->out->c_type);
        break;
    }
}

/* The helpers the glue and stubs share, static in each generated file (a
 * library function would tie generated code to one tern version's
 * internals). */
static void emit_helpers(strbuf *c, const service *svcs, size_t n)
{
    bool any_req = false, any_open = false, any_close = false;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < svcs[i].n; j++) {
            kind k = svcs[i].methods[j].kind;
            any_req |= k == UNARY || k == SERVER_STREAMING;
            any_open |= k == SERVER_STREAMING;
            any_close |= k == CLIENT_STREAMING;
        }
    if (any_req)
        sb_puts(c,
                "/* The one request of a unary or server-streaming call. */\n"
                "static int recv_request(tern_grpc_call *call, ProtobufCMessage **req)\n"
                "{\n"
                "    int rc = tern_grpc_call_recv(call, req, NULL);\n"
                "    if (rc == 0)\n"
                "        return tern_grpc_call_fail(call, TERN_GRPC_INTERNAL, \"the client sent no request message\");\n"
                "    return rc < 0 ? rc : 0;\n"
                "}\n\n");
    if (any_open)
        sb_puts(c,
                "/* A server-streaming call: open, send the request, half-close. */\n"
                "static int open_with_request(tern_grpc_channel *ch, const tern_grpc_method_desc *m,\n"
                "    const ProtobufCMessage *req, const tern_grpc_call_options *opts, tern_grpc_stream **out,\n"
                "    tern_ctx *ctx)\n"
                "{\n"
                "    tern_grpc_stream *st = NULL;\n"
                "    *out = NULL;\n"
                "    int rc = tern_grpc_stream_open(ch, m, opts, &st, ctx);\n"
                "    if (rc < 0)\n"
                "        return rc;\n"
                "    if ((rc = tern_grpc_stream_send(st, req, ctx)) < 0 ||\n"
                "        (rc = tern_grpc_stream_close_send(st, ctx)) < 0) {\n"
                "        tern_grpc_stream_free(st);\n"
                "        return rc;\n"
                "    }\n"
                "    *out = st;\n"
                "    return 0;\n"
                "}\n\n");
    if (any_close)
        sb_puts(c,
                "/* A client-streaming call's end: half-close, the one response (copied out: the\n"
                " * stream's is gone at the next recv), then the status. */\n"
                "static int close_and_recv(tern_grpc_stream *st, const ProtobufCMessageDescriptor *d,\n"
                "    ProtobufCMessage **resp, tern_ctx *ctx)\n"
                "{\n"
                "    ProtobufCMessage *m = NULL;\n"
                "    *resp = NULL;\n"
                "    int rc = tern_grpc_stream_close_send(st, ctx);\n"
                "    if (rc < 0)\n"
                "        return rc;\n"
                "    rc = tern_grpc_stream_recv(st, &m, ctx);\n"
                "    if (rc <= 0)\n"
                "        return rc == 0 ? -EPROTO : rc;\n"
                "    size_t len = protobuf_c_message_get_packed_size(m);\n"
                "    uint8_t *buf = malloc(len ? len : 1);\n"
                "    if (!buf)\n"
                "        return -ENOMEM;\n"
                "    protobuf_c_message_pack(m, buf);\n"
                "    ProtobufCMessage *copy = protobuf_c_message_unpack(d, NULL, len, buf);\n"
                "    free(buf);\n"
                "    if (!copy)\n"
                "        return -ENOMEM;\n"
                "    rc = tern_grpc_stream_recv(st, &m, ctx);\n"
                "    if (rc != 0) {\n"
                "        protobuf_c_message_free_unpacked(copy, NULL);\n"
                "        return rc > 0 ? -EPROTO : rc;\n"
                "    }\n"
                "    *resp = copy;\n"
                "    return 0;\n"
                "}\n\n");
}

static void emit_source(strbuf *c, Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                        const file_proto *f, const service *svcs, size_t n, const char *file_id,
                        const char *base, const bool *need)
{
    sb_printf(c, "/* Generated by protoc-gen-tern-grpc from %s.  DO NOT EDIT. */\n", f->name);
    sb_printf(c, "#include \"%s.tern-grpc.h\"\n\n", base);
    sb_puts(c, "#include <errno.h>\n#include <stdint.h>\n#include <stdlib.h>\n\n");

    sb_printf(c, "/* ---- file descriptors: %s and what it imports ---- */\n\n", f->name);
    /* protoc lists files after everything they import: each dep_ is
     * defined before the files that point at it */
    for (size_t k = 0; k < req->n_proto_file; k++) {
        if (!need[k])
            continue;
        char *id = file_ident(req->proto_file[k]->name);
        strbuf v = {0};
        sb_printf(&v, "dep_%s", id);
        emit_file_desc(c, req->proto_file[k], v.p, true);
        free(v.p);
        free(id);
    }
    strbuf v = {0};
    sb_printf(&v, "%s_file_desc", file_id);
    emit_file_desc(c, f, v.p, false);
    free(v.p);

    emit_helpers(c, svcs, n);
    for (size_t i = 0; i < n; i++) {
        const service *s = &svcs[i];
        sb_printf(c, "/* ---- service %s ---- */\n\n", s->full_name);
        for (size_t j = 0; j < s->n; j++)
            emit_invoke(c, s, &s->methods[j]);
        sb_printf(c, "const tern_grpc_method_desc %s_methods[%zu] = {\n", s->prefix, s->n);
        for (size_t j = 0; j < s->n; j++) {
            const method *m = &s->methods[j];
            sb_printf(c, "    {\n"
                         "        .name = \"%s\",\n"
                         "        .path = \"%s\",\n"
                         "        .type = %s,\n"
                         "        .input = &%s,\n"
                         "        .output = &%s,\n"
                         "        .invoke = %s_invoke,\n"
                         "    },\n",
                      m->proto->name, m->path, kind_enum[m->kind], m->in->descriptor,
                      m->out->descriptor, m->fn);
        }
        sb_puts(c, "};\n\n");
        sb_printf(c, "const tern_grpc_service_desc %s_desc = {\n"
                     "    .name = \"%s\",\n"
                     "    .methods = %s_methods,\n"
                     "    .n_methods = %zu,\n"
                     "    .file = &%s_file_desc,\n"
                     "};\n\n",
                  s->prefix, s->full_name, s->prefix, s->n, file_id);
        sb_printf(c, "int %s_register(tern_grpc_server *s, const %s_server *impl, void *arg)\n"
                     "{\n"
                     "    if (!impl)\n"
                     "        return -EINVAL;\n"
                     "    return tern_grpc_server_add_service(s, &%s_desc, impl, arg);\n"
                     "}\n\n",
                  s->prefix, s->prefix, s->prefix);
        for (size_t j = 0; j < s->n; j++)
            emit_client(c, s, j);
    }
}

int emit_file(Google__Protobuf__Compiler__CodeGeneratorRequest *req, const file_proto *f, char **h,
              char **c, char **err)
{
    service *svcs = NULL;
    size_t n = 0;
    if (build(f, &svcs, &n, err) < 0)
        return -1;
    char *file_id = file_ident(f->name);
    char *base = strip_proto(f->name);
    if (check_names(f, svcs, n, file_id, err) < 0)
        return -1;
    bool *need = xmalloc(req->n_proto_file * sizeof *need);
    memset(need, 0, req->n_proto_file * sizeof *need);
    if (mark_deps(req, f, need, err) < 0)
        return -1;
    strbuf hb = {0}, cb = {0};
    emit_header(&hb, f, svcs, n, file_id, base);
    emit_source(&cb, req, f, svcs, n, file_id, base, need);
    *h = sb_take(&hb);
    *c = sb_take(&cb);
    free(need);
    free(file_id);
    free(base);
    return 0;
}
