/*
 * json_registry.c - the process-wide table of gRPC services whose methods
 * can be found by name (tern_grpc_json_register / _find), and the helpers
 * json_encode.c and json_decode.c share (json_internal.h).
 *
 * Services are registered once, at start-up, and looked up when a gateway
 * configuration is built: a mutex around a growing array of borrowed descs
 * is all that needs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "grpc/json_internal.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static const tern_grpc_service_desc **reg;   /* borrowed; the process's life */
static size_t reg_n, reg_cap;

int tern_grpc_json_register(const tern_grpc_service_desc *svc)
{
    if (!svc || !svc->name || (svc->n_methods && !svc->methods))
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++)
        if (reg[i] == svc || !strcmp(reg[i]->name, svc->name))
            goto out;
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? 2 * reg_cap : 8;
        const tern_grpc_service_desc **n = realloc(reg, cap * sizeof *n);
        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        reg = n;
        reg_cap = cap;
    }
    reg[reg_n++] = svc;
out:
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

int tern_grpc_json_find(const char *method, const tern_grpc_method_desc **out)
{
    if (!method || !out)
        return -EINVAL;
    if (*method == '/')
        method++;
    int rc = -ENOENT;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n && rc; i++) {
        const tern_grpc_service_desc *s = reg[i];
        for (size_t j = 0; j < s->n_methods; j++) {
            const char *p = s->methods[j].path;
            if (p && !strcmp(p[0] == '/' ? p + 1 : p, method)) {
                *out = &s->methods[j];
                rc = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

size_t tern__grpc_json_name(const char *proto_name, char *out, size_t cap)
{
    TERN_ASSERT(cap > 0);
    size_t k = 0;
    bool up = false;
    for (const char *p = proto_name; *p; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        char c = *p;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        if (k + 1 < cap)
            out[k] = c;
        k++;
    }
    out[k < cap ? k : cap - 1] = '\0';
    return k;
}

bool tern__grpc_json_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (!e || e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") || strcmp(e->fields[1].name, "value"))
        return false;
    /* protoc names the entry after the field: "labels" -> LabelsEntry,
     * "by_sku" -> BySkuEntry */
    char want[256];
    size_t n = tern__grpc_json_name(f->name, want, sizeof want);
    if (n + sizeof "Entry" > sizeof want)
        return false;
    if (want[0] >= 'a' && want[0] <= 'z')
        want[0] = (char)(want[0] - 'a' + 'A');
    memcpy(want + n, "Entry", sizeof "Entry");
    return e->short_name && !strcmp(e->short_name, want);
}

size_t tern__grpc_json_value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}
