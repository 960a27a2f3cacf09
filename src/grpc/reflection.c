/*
 * reflection.c - gRPC server reflection (grpc.reflection.v1 and v1alpha
 * ServerReflection/ServerReflectionInfo), from the file descriptors the
 * registered services carry.
 *
 * A client (grpcurl, grpcio's reflection client, Postman) opens one
 * bidirectional stream and asks, one request at a time: the registered
 * services' names; the file of a given name; the file that declares a
 * symbol; the file that declares an extension; the extension numbers of a
 * type.  Each answer is one response carrying the request back.  Files
 * are answered with everything they import, transitively, so a client
 * needs no second round trip (the protocol allows leaving out files sent
 * earlier on the stream; sending them again is always correct, and a
 * stream's answers are small).
 *
 * What the server knows is what tern_grpc_server_services lists: each
 * service's tern_grpc_file_desc and its deps (generated code embeds the
 * serialized FileDescriptorProto of the file and of every file it
 * imports).  Two generated files may each carry a copy of a common import;
 * copies have the same name and bytes, and a file is looked up by name, so
 * the first found serves.  A service registered by hand without a file is
 * listed, and nothing can be looked up in it.
 *
 * v1alpha is v1 under another package name (the two .proto files differ in
 * nothing else), so one handler on v1's C types serves both: only the
 * service and method names, and the file describing each, differ.
 * Unknown symbols, files and extensions get an error_response NOT_FOUND on
 * the stream, which stays open, as gRPC's own servers do; a request with
 * none of the five questions set ends the stream with INVALID_ARGUMENT.
 */
#include "tern/grpc_reflection.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.desc.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.desc.h"
#include "grpc/reflection_internal.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

/* ---- the files the server knows ------------------------------------------------ */

typedef struct file_set {
    const tern_grpc_file_desc **v;
    size_t n, cap;
} file_set;

static const tern_grpc_file_desc *set_find(const file_set *fs, const char *name)
{
    for (size_t i = 0; i < fs->n; i++)
        if (!strcmp(fs->v[i]->name, name))
            return fs->v[i];
    return NULL;
}

/* Add f and, depth first, its imports (a name already in is skipped, with
 * what it imports: the same name is the same file).  0 or -ENOMEM. */
static int set_add(file_set *fs, const tern_grpc_file_desc *f, int depth)
{
    if (!f || !f->name || set_find(fs, f->name) || depth > 64)
        return 0;
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 16;
        const tern_grpc_file_desc **v = realloc(fs->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        fs->v = v;
        fs->cap = cap;
    }
    fs->v[fs->n++] = f;
    for (size_t i = 0; i < f->n_deps; i++) {
        int rc = set_add(fs, f->deps[i], depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int known_files(const tern_grpc_server *s, file_set *fs)
{
    size_t n = 0;
    const tern_grpc_service_desc *const *svcs = tern_grpc_server_services(s, &n);
    for (size_t i = 0; i < n; i++) {
        int rc = set_add(fs, svcs[i]->file, 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- answers ------------------------------------------------------------------- */

static Grpc__Reflection__V1__ErrorResponse *error_response(tern_grpc_call *call, tern_grpc_code code,
                                                          const char *what, const char *name)
{
    Grpc__Reflection__V1__ErrorResponse *e = tern_grpc_call_alloc(call, sizeof *e);
    size_t len = strlen(what) + strlen(name) + 1;
    char *msg = tern_grpc_call_alloc(call, len);
    if (!e || !msg)
        return NULL;
    tern__grpc__reflection__v1__error_response__init(e);
    memcpy(msg, what, strlen(what));
    memcpy(msg + strlen(what), name, strlen(name) + 1);
    e->error_code = (int32_t)code;
    e->error_message = msg;
    return e;
}

/* f and everything it imports, f first. */
static int answer_file(tern_grpc_call *call, refl_resp *resp, const tern_grpc_file_desc *f)
{
    file_set closure = {0};
    int rc = set_add(&closure, f, 0);
    Grpc__Reflection__V1__FileDescriptorResponse *fr = tern_grpc_call_alloc(call, sizeof *fr);
    ProtobufCBinaryData *files =
        closure.n ? tern_grpc_call_alloc(call, closure.n * sizeof *files) : NULL;
    if (rc < 0 || !fr || (closure.n && !files)) {
        free(closure.v);
        return -ENOMEM;
    }
    tern__grpc__reflection__v1__file_descriptor_response__init(fr);
    for (size_t i = 0; i < closure.n; i++)
        files[i] = (ProtobufCBinaryData){.len = closure.v[i]->len, .data = (uint8_t *)closure.v[i]->data};
    fr->n_file_descriptor_proto = closure.n;
    fr->file_descriptor_proto = files;
    free(closure.v);
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp->file_descriptor_response = fr;
    return 0;
}

static int answer_not_found(tern_grpc_call *call, refl_resp *resp, const char *what, const char *name)
{
    Grpc__Reflection__V1__ErrorResponse *e = error_response(call, TERN_GRPC_NOT_FOUND, what, name);
    if (!e)
        return -ENOMEM;
    resp->message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp->error_response = e;
    return 0;
}

static int answer_services(tern_grpc_call *call, const tern_grpc_server *s, refl_resp *resp)
{
    size_t n = 0;
    const tern_grpc_service_desc *const *svcs = tern_grpc_server_services(s, &n);
    Grpc__Reflection__V1__ListServiceResponse *l = tern_grpc_call_alloc(call, sizeof *l);
    Grpc__Reflection__V1__ServiceResponse *each = n ? tern_grpc_call_alloc(call, n * sizeof *each) : NULL;
    Grpc__Reflection__V1__ServiceResponse **ptrs = n ? tern_grpc_call_alloc(call, n * sizeof *ptrs) : NULL;
    if (!l || (n && (!each || !ptrs)))
        return -ENOMEM;
    tern__grpc__reflection__v1__list_service_response__init(l);
    for (size_t i = 0; i < n; i++) {
        tern__grpc__reflection__v1__service_response__init(&each[i]);
        each[i].name = (char *)svcs[i]->name;
        ptrs[i] = &each[i];
    }
    l->n_service = n;
    l->service = ptrs;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp->list_services_response = l;
    return 0;
}

typedef struct ext_find {
    int32_t number;
} ext_find;

static int ext_is(int32_t number, void *arg)
{
    return number == ((ext_find *)arg)->number;
}

typedef struct ext_collect {
    tern_grpc_call *call;
    int32_t *v;
    size_t n, cap;
} ext_collect;

static int ext_add(int32_t number, void *arg)
{
    ext_collect *c = arg;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i] == number)
            return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        int32_t *v = tern_grpc_call_alloc(c->call, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        if (c->n)
            memcpy(v, c->v, c->n * sizeof *v);
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = number;
    return 0;
}

static int answer_extensions(tern_grpc_call *call, const file_set *fs, refl_resp *resp, const char *type)
{
    bool known = false;
    for (size_t i = 0; i < fs->n && !known; i++)
        known = tern__grpc_desc_declares(fs->v[i]->data, fs->v[i]->len, type);
    if (!known)
        return answer_not_found(call, resp, "type not found: ", type);
    ext_collect c = {.call = call};
    for (size_t i = 0; i < fs->n; i++) {
        int rc = tern__grpc_desc_extensions(fs->v[i]->data, fs->v[i]->len, type, ext_add, &c);
        if (rc < 0)
            return rc;
    }
    Grpc__Reflection__V1__ExtensionNumberResponse *e = tern_grpc_call_alloc(call, sizeof *e);
    if (!e)
        return -ENOMEM;
    tern__grpc__reflection__v1__extension_number_response__init(e);
    e->base_type_name = (char *)type;
    e->n_extension_number = c.n;
    e->extension_number = c.v;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    resp->all_extension_numbers_response = e;
    return 0;
}

/* Fill resp for req: 0, -ENOMEM, or -EINVAL when req asks nothing. */
static int answer(tern_grpc_call *call, const tern_grpc_server *s, const file_set *fs,
                  const refl_req *req, refl_resp *resp)
{
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        return answer_services(call, s, resp);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
        const tern_grpc_file_desc *f = set_find(fs, req->file_by_filename);
        if (!f)
            return answer_not_found(call, resp, "file not found: ", req->file_by_filename);
        return answer_file(call, resp, f);
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        for (size_t i = 0; i < fs->n; i++)
            if (tern__grpc_desc_declares(fs->v[i]->data, fs->v[i]->len, req->file_containing_symbol))
                return answer_file(call, resp, fs->v[i]);
        return answer_not_found(call, resp, "symbol not found: ", req->file_containing_symbol);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1__ExtensionRequest *x = req->file_containing_extension;
        ext_find find = {.number = x ? x->extension_number : 0};
        for (size_t i = 0; x && x->containing_type && i < fs->n; i++)
            if (tern__grpc_desc_extensions(fs->v[i]->data, fs->v[i]->len, x->containing_type, ext_is, &find) > 0)
                return answer_file(call, resp, fs->v[i]);
        return answer_not_found(call, resp, "extension not found: ",
                                x && x->containing_type ? x->containing_type : "");
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        return answer_extensions(call, fs, resp, req->all_extension_numbers_of_type);
    default:
        return -EINVAL;
    }
}

/* ServerReflectionInfo, v1 and v1alpha alike (impl and arg: the server). */
static int reflection_info(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    const tern_grpc_server *s = arg;
    file_set fs = {0};
    int rc = known_files(s, &fs);
    while (rc == 0) {
        ProtobufCMessage *m;
        rc = tern_grpc_call_recv(call, &m, NULL);
        if (rc <= 0)
            break;
        const refl_req *req = (const refl_req *)m;
        refl_resp resp;
        tern__grpc__reflection__v1__server_reflection_response__init(&resp);
        resp.valid_host = req->host;
        resp.original_request = (refl_req *)req;
        rc = answer(call, s, &fs, req, &resp);
        if (rc == -EINVAL) {
            rc = tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                     "the request names none of the reflection questions");
            break;
        }
        if (rc == 0)
            rc = tern_grpc_call_send(call, &resp.base, NULL);
    }
    free(fs.v);
    return rc < 0 ? rc : 0;
}

/* ---- the two services, and the files that describe them ----------------------- */

static const tern_grpc_file_desc v1_file = {
    .name = "grpc/reflection/v1/reflection.proto",
    .data = grpc_reflection_v1_reflection_proto,
    .len = sizeof grpc_reflection_v1_reflection_proto,
};
static const tern_grpc_file_desc v1alpha_file = {
    .name = "grpc/reflection/v1alpha/reflection.proto",
    .data = grpc_reflection_v1alpha_reflection_proto,
    .len = sizeof grpc_reflection_v1alpha_reflection_proto,
};

static const tern_grpc_method_desc v1_methods[] = {{
    .name = "ServerReflectionInfo",
    .path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    .type = TERN_GRPC_BIDI_STREAMING,
    .input = &tern__grpc__reflection__v1__server_reflection_request__descriptor,
    .output = &tern__grpc__reflection__v1__server_reflection_response__descriptor,
    .invoke = reflection_info,
}};
static const tern_grpc_method_desc v1alpha_methods[] = {{
    .name = "ServerReflectionInfo",
    .path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    .type = TERN_GRPC_BIDI_STREAMING,
    .input = &tern__grpc__reflection__v1__server_reflection_request__descriptor,
    .output = &tern__grpc__reflection__v1__server_reflection_response__descriptor,
    .invoke = reflection_info,
}};

static const tern_grpc_service_desc v1_service = {
    .name = "grpc.reflection.v1.ServerReflection",
    .methods = v1_methods,
    .n_methods = 1,
    .file = &v1_file,
};
static const tern_grpc_service_desc v1alpha_service = {
    .name = "grpc.reflection.v1alpha.ServerReflection",
    .methods = v1alpha_methods,
    .n_methods = 1,
    .file = &v1alpha_file,
};

int tern_grpc_server_enable_reflection(tern_grpc_server *s)
{
    if (!s)
        return -EINVAL;
    int rc = tern_grpc_server_add_service(s, &v1_service, s, s);
    if (rc == 0)
        rc = tern_grpc_server_add_service(s, &v1alpha_service, s, s);
    return rc;
}
