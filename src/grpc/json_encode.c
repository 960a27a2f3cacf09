/*
 * json_encode.c - a protobuf-c message as JSON (tern_grpc_json_from_message),
 * proto3's JSON mapping as tern/grpc_json.h lists it.
 *
 * Fields come out in the descriptor's order (the .proto's), under their
 * lowerCamelCase names; a field is left out when it holds its default and
 * does not track presence.  64-bit integers are strings because JSON
 * readers (JavaScript's first) hold numbers in doubles, which lose
 * integers past 2^53.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base/check.h"
#include "grpc/grpc_internal.h"
#include "grpc/json_internal.h"

#define STRUCT_AT(type, m, off) (*(type const *)((const char *)(m) + (off)))

static json_t *encode_message(const ProtobufCMessage *m, int depth);

static json_t *float_json(double x)
{
    if (isnan(x))
        return json_string("NaN");
    if (isinf(x))
        return json_string(x > 0 ? "Infinity" : "-Infinity");
    return json_real(x);
}

/* The double nearest the shortest decimal that reads back as f: 0.1f is
 * 0.100000001490116..., written as such it would show float's error; as
 * 0.1 it reads back as the same float. */
static double shortest(float f)
{
    if (!isfinite(f))
        return f;
    char b[32];
    for (int p = 6; p < 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        double x = strtod(b, NULL);
        if ((float)x == f)
            return x;
    }
    return f;                       /* 9 digits always read back */
}

static json_t *u64_json(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return json_string(b);
}

static json_t *i64_json(int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, v);
    return json_string(b);
}

static json_t *bytes_json(const ProtobufCBinaryData *bd)
{
    if (bd->len == 0)
        return json_string("");
    size_t cap = (bd->len + 2) / 3 * 4 + 1;
    /* zeroed: aarch64's gcc 12 cannot see that the encoder fills what
     * json_stringn reads (-Wmaybe-uninitialized) */
    char stack[256] = {0}, *b = cap <= sizeof stack ? stack : malloc(cap);
    if (!b)
        return NULL;
    size_t n = tern__grpc_b64_encode(bd->data, bd->len, b);
    while (n % 4)                   /* the mapping wants RFC 4648's padding; gRPC's encoder omits it */
        b[n++] = '=';
    json_t *j = json_stringn(b, n);
    if (b != stack)
        free(b);
    return j;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t k = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
                             : p[0] >= 0xf0 && p[0] < 0xf5 ? 4 : 0;
    if (k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((k == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (k == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
        (k == 4 && p[0] == 0xf0 && p[1] < 0x90) || (k == 4 && p[0] == 0xf4 && p[1] >= 0x90))
        return 0;                   /* overlong, surrogates, past U+10FFFF */
    return k;
}

/* A string field is UTF-8 by the spec, but protobuf-c does not check what
 * it unpacks, and jansson would refuse to dump the whole response for one
 * bad byte: such bytes become U+FFFD. */
static json_t *string_json(const char *s)
{
    if (!s)
        return json_string("");
    size_t n = strlen(s), bad = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1)
        if (!(k = utf8_len((const unsigned char *)s + i, n - i)))
            bad++;
    if (!bad)
        return json_stringn_nocheck(s, n);
    char *c = malloc(n + 2 * bad + 1);
    if (!c)
        return NULL;
    size_t o = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        if ((k = utf8_len((const unsigned char *)s + i, n - i))) {
            memcpy(c + o, s + i, k);
            o += k;
        } else {
            memcpy(c + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    json_t *j = json_stringn_nocheck(c, o);
    free(c);
    return j;
}

/* One value of f's type at slot; NULL for out of memory or too deep. */
static json_t *encode_value(const ProtobufCFieldDescriptor *f, const void *slot, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        return i64_json(*(const int64_t *)slot);
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return u64_json(*(const uint64_t *)slot);
    case PROTOBUF_C_TYPE_FLOAT:
        return float_json(shortest(*(const float *)slot));
    case PROTOBUF_C_TYPE_DOUBLE:
        return float_json(*(const double *)slot);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v = *(const int32_t *)slot;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING:
        return string_json(*(char *const *)slot);
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_json(slot);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
        if (!sub)
            return json_object();   /* a map's unset message value, or a NULL element */
        return encode_message(sub, depth + 1);
    }
    }
    return NULL;
}

/* A map key as the object key the mapping wants. */
static void key_text(const ProtobufCFieldDescriptor *kf, const void *slot, char *b, size_t cap)
{
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        snprintf(b, cap, "%s", s ? s : "");
        return;
    }
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(b, cap, "%s", *(const protobuf_c_boolean *)slot ? "true" : "false");
        return;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        snprintf(b, cap, "%" PRIu32, *(const uint32_t *)slot);
        return;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        snprintf(b, cap, "%" PRIu64, *(const uint64_t *)slot);
        return;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(b, cap, "%" PRId64, *(const int64_t *)slot);
        return;
    default:
        snprintf(b, cap, "%" PRId32, *(const int32_t *)slot);
        return;
    }
}

static json_t *encode_map(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m, int depth)
{
    json_t *o = json_object();
    size_t n = STRUCT_AT(size_t, m, f->quantifier_offset);
    ProtobufCMessage *const *arr = STRUCT_AT(ProtobufCMessage **, m, f->offset);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    for (size_t i = 0; o && i < n; i++) {
        if (!arr[i])
            continue;
        char key[4096];
        /* a key longer than this is cut short: keys are names and ids */
        key_text(&ed->fields[0], (const char *)arr[i] + ed->fields[0].offset, key, sizeof key);
        json_t *v = encode_value(&ed->fields[1], (const char *)arr[i] + ed->fields[1].offset, depth);
        /* later entries of one key win, as in the binary format */
        if (!v || json_object_set_new_nocheck(o, key, v) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

static json_t *encode_repeated(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m, int depth)
{
    json_t *a = json_array();
    size_t n = STRUCT_AT(size_t, m, f->quantifier_offset), sz = tern__grpc_json_value_size(f);
    const char *arr = STRUCT_AT(char *, m, f->offset);
    for (size_t i = 0; a && i < n; i++) {
        json_t *v = encode_value(f, arr + i * sz, depth);
        if (!v || json_array_append_new(a, v) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* Whether f holds a value the output shows: set (a field with presence)
 * or not its default (one without). */
static bool shown(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    const void *slot = (const char *)m + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return STRUCT_AT(uint32_t, m, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return STRUCT_AT(size_t, m, f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(ProtobufCMessage *const *)slot != NULL;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(char *const *)slot != NULL;
        return STRUCT_AT(protobuf_c_boolean, m, f->quantifier_offset);
    }
    switch (f->type) {              /* proto3 without presence: shown unless the default */
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)slot)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        float x = *(const float *)slot;
        return x != 0 || signbit(x);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double x = *(const double *)slot;
        return x != 0 || signbit(x);
    }
    default: {
        static const char zero[8];
        return memcmp(slot, zero, tern__grpc_json_value_size(f)) != 0;
    }
    }
}

static json_t *encode_message(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *md = m->descriptor;
    TERN_ASSERT(md && md->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    if (depth >= TERN_GRPC_JSON_MAX_DEPTH)
        return NULL;
    tern__grpc_wkt wk = tern__grpc_json_wkt(md);
    if (wk != TERN__GRPC_WKT_NONE) {
        json_t *o;
        return tern__grpc_json_wkt_encode(m, wk, &o) == 0 ? o : NULL;
    }
    json_t *o = json_object();
    for (unsigned i = 0; o && i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (!shown(f, m))
            continue;
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            v = tern__grpc_json_is_map(f) ? encode_map(f, m, depth) : encode_repeated(f, m, depth);
        else
            v = encode_value(f, (const char *)m + f->offset, depth);
        char name[256];
        tern__grpc_json_name(f->name, name, sizeof name);
        if (!v || json_object_set_new_nocheck(o, name, v) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

json_t *tern__grpc_json_encode_value(const ProtobufCFieldDescriptor *f, const void *slot)
{
    return encode_value(f, slot, 0);
}

/* Whether m cannot be written for what it holds rather than for memory:
 * messages nested deeper than the limit, or a Timestamp or Duration out
 * of range.  Walked only after encoding failed, to tell -EINVAL from
 * -ENOMEM without a second pass on success. */
static bool unwritable(const ProtobufCMessage *m, int depth)
{
    if (depth >= TERN_GRPC_JSON_MAX_DEPTH)
        return true;
    const ProtobufCMessageDescriptor *md = m->descriptor;
    tern__grpc_wkt wk = tern__grpc_json_wkt(md);
    if (wk == TERN__GRPC_WKT_TIMESTAMP || wk == TERN__GRPC_WKT_DURATION) {
        json_t *o;
        int rc = tern__grpc_json_wkt_encode(m, wk, &o);
        json_decref(o);
        return rc == -EINVAL;
    }
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || !shown(f, m))
            continue;
        size_t n = 1;
        ProtobufCMessage *const *arr = (ProtobufCMessage *const *)((const char *)m + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = STRUCT_AT(size_t, m, f->quantifier_offset);
            arr = STRUCT_AT(ProtobufCMessage **, m, f->offset);
        }
        for (size_t j = 0; j < n; j++) {
            const ProtobufCMessage *sub = arr[j];
            if (sub && tern__grpc_json_is_map(f)) {
                /* a map entry is not a level of its own: its value is */
                const ProtobufCFieldDescriptor *vf = &sub->descriptor->fields[1];
                if (vf->type != PROTOBUF_C_TYPE_MESSAGE)
                    continue;
                sub = *(ProtobufCMessage *const *)((const char *)sub + vf->offset);
            }
            if (sub && unwritable(sub, depth + 1))
                return true;
        }
    }
    return false;
}

int tern_grpc_json_from_message(const ProtobufCMessage *m, json_t **out)
{
    if (!m || !out || !m->descriptor)
        return -EINVAL;
    json_t *o = encode_message(m, 0);
    if (!o)
        return unwritable(m, 0) ? -EINVAL : -ENOMEM;
    *out = o;
    return 0;
}
