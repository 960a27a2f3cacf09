/*
 * json_decode.c - JSON into a protobuf-c message by its descriptor
 * (tern_grpc_json_to_message), proto3's JSON mapping as tern/grpc_json.h
 * lists it.
 *
 * The message is built in place as protobuf-c's unpacker would build it:
 * malloc'd with every pointer either the descriptor's default or a block of
 * its own, so that protobuf_c_message_free_unpacked frees it whole however
 * far decoding got.  Repeated arrays are allocated zeroed at their final
 * length and counted at once, which keeps that true mid-array (freeing a
 * NULL string or message is a no-op).
 *
 * The path of the value being decoded ("items[2].sku") is kept in a
 * buffer that grows and shrinks with the recursion, so every error can
 * name the field without building strings on the way down.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base/check.h"
#include "grpc/grpc_internal.h"
#include "grpc/json_internal.h"

typedef struct dec {
    char *err;
    size_t errlen;
    char path[256];
    size_t plen;        /* strlen(path), or more when it was truncated */
    int depth;
} dec;

#define STRUCT_AT(type, m, off) (*(type *)((char *)(m) + (off)))

static int fail(dec *d, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dec *d, int rc, const char *fmt, ...)
{
    if (rc != -EINVAL || !d->errlen)
        return rc;
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (d->plen)
        snprintf(d->err, d->errlen, "%s: %s", d->path, why);
    else
        snprintf(d->err, d->errlen, "%s", why);
    return rc;
}

/* Append to the path (cut at its buffer, where plen keeps counting so
 * that pop restores exactly); returns the old length to pop back to.
 * Called per key and element, so no printf. */
static void append(dec *d, const char *s, size_t n)
{
    if (d->plen < sizeof d->path) {
        size_t room = sizeof d->path - 1 - d->plen;
        memcpy(d->path + d->plen, s, n < room ? n : room);
        d->path[d->plen + (n < room ? n : room)] = '\0';
    }
    d->plen += n;
}

static size_t push_key(dec *d, const char *key)
{
    size_t old = d->plen;
    if (old)
        append(d, ".", 1);
    append(d, key, strnlen(key, 60));
    return old;
}

static size_t push_index(dec *d, size_t i)
{
    size_t old = d->plen;
    char b[24], *p = b + sizeof b;
    *--p = ']';
    do
        *--p = (char)('0' + i % 10);
    while (i /= 10);
    *--p = '[';
    append(d, p, (size_t)(b + sizeof b - p));
    return old;
}

static size_t push_map_key(dec *d, const char *key)
{
    size_t old = d->plen;
    append(d, "[\"", 2);
    append(d, key, strnlen(key, 40));
    append(d, "\"]", 2);
    return old;
}

static void pop(dec *d, size_t old)
{
    d->plen = old;
    if (old < sizeof d->path)
        d->path[old] = '\0';
}

static const char *kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* An integer from a JSON integer, an integral real, or a decimal string. */
static int int_value(dec *d, const json_t *v, bool is_unsigned, int64_t *s, uint64_t *u)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (is_unsigned && i < 0)
            return fail(d, -EINVAL, "%" PRId64 " is out of range", (int64_t)i);
        *s = (int64_t)i;
        *u = (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        /* 2^63 and 2^64 are exact doubles: the bounds are compared exactly */
        if (x != floor(x) || (is_unsigned ? (x < 0 || x >= 18446744073709551616.0)
                                          : (x < -9223372036854775808.0 || x >= 9223372036854775808.0)))
            return fail(d, -EINVAL, "%g is not an integer in range", x);
        if (is_unsigned)
            *u = (uint64_t)x, *s = (int64_t)*u;
        else
            *s = (int64_t)x, *u = (uint64_t)*s;
        return 0;
    }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        size_t n = json_string_length(v);
        char *end;
        errno = 0;
        if (n == 0 || strlen(t) != n || !(t[0] == '-' || (t[0] >= '0' && t[0] <= '9')))
            return fail(d, -EINVAL, "\"%.40s\" is not an integer", t);
        if (is_unsigned) {
            if (t[0] == '-')
                return fail(d, -EINVAL, "\"%.40s\" is out of range", t);
            *u = strtoull(t, &end, 10);
            *s = (int64_t)*u;
        } else {
            *s = strtoll(t, &end, 10);
            *u = (uint64_t)*s;
        }
        if (*end)
            return fail(d, -EINVAL, "\"%.40s\" is not an integer", t);
        if (errno == ERANGE)
            return fail(d, -EINVAL, "\"%.40s\" is out of range", t);
        return 0;
    }
    return fail(d, -EINVAL, "expected an integer, got %s", kind(v));
}

static int float_value(dec *d, const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return fail(d, -EINVAL, "expected a number, got %s", kind(v));
    const char *t = json_string_value(v);
    if (!strcmp(t, "NaN"))
        *out = NAN;
    else if (!strcmp(t, "Infinity"))
        *out = INFINITY;
    else if (!strcmp(t, "-Infinity"))
        *out = -INFINITY;
    else {
        char *end;
        /* strtod would take "inf", "nan" and hex floats, which JSON does not */
        if (!t[0] || strpbrk(t, "xXiInN") || strlen(t) != json_string_length(v))
            return fail(d, -EINVAL, "\"%.40s\" is not a number", t);
        *out = strtod(t, &end);
        if (*end || !isfinite(*out))
            return fail(d, -EINVAL, "\"%.40s\" is not a number", t);
    }
    return 0;
}

static int decode_message(dec *d, const ProtobufCMessageDescriptor *md, const json_t *in,
                          ProtobufCMessage **out);

/* One value of f's type from v into slot (a field of a message, an
 * element of a repeated array, a map entry's key or value). */
static int decode_value(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, void *slot)
{
    int64_t s;
    uint64_t u;
    double x;
    int rc;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if ((rc = int_value(d, v, false, &s, &u)) < 0)
            return rc;
        if (s < INT32_MIN || s > INT32_MAX)
            return fail(d, -EINVAL, "%" PRId64 " is out of range for a 32-bit integer", s);
        *(int32_t *)slot = (int32_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = int_value(d, v, true, &s, &u)) < 0)
            return rc;
        if (u > UINT32_MAX)
            return fail(d, -EINVAL, "%" PRIu64 " is out of range for a 32-bit unsigned integer", u);
        *(uint32_t *)slot = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = int_value(d, v, false, &s, &u)) < 0)
            return rc;
        *(int64_t *)slot = s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = int_value(d, v, true, &s, &u)) < 0)
            return rc;
        *(uint64_t *)slot = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if ((rc = float_value(d, v, &x)) < 0)
            return rc;
        if (isfinite(x) && (x > FLT_MAX || x < -FLT_MAX))
            return fail(d, -EINVAL, "%g is out of range for a float", x);
        *(float *)slot = (float)x;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if ((rc = float_value(d, v, &x)) < 0)
            return rc;
        *(double *)slot = x;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(d, -EINVAL, "expected a boolean, got %s", kind(v));
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
            if (!ev)
                return fail(d, -EINVAL, "\"%.40s\" is not a value of %s", json_string_value(v), ed->name);
            *(int32_t *)slot = ev->value;
            return 0;
        }
        if (!json_is_number(v))
            return fail(d, -EINVAL, "expected an enum name or number, got %s", kind(v));
        if ((rc = int_value(d, v, false, &s, &u)) < 0)
            return rc;
        if (s < INT32_MIN || s > INT32_MAX)
            return fail(d, -EINVAL, "%" PRId64 " is out of range for an enum", s);
        *(int32_t *)slot = (int32_t)s;   /* proto3 enums are open: unknown numbers are kept */
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return fail(d, -EINVAL, "expected a string, got %s", kind(v));
        size_t n = json_string_length(v);
        if (strlen(json_string_value(v)) != n)
            return fail(d, -EINVAL, "a string with a NUL character");
        char *c = malloc(n + 1);
        if (!c)
            return -ENOMEM;
        memcpy(c, json_string_value(v), n + 1);
        *(char **)slot = c;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return fail(d, -EINVAL, "expected a base64 string, got %s", kind(v));
        size_t n = json_string_length(v);
        uint8_t *b = malloc(n * 3 / 4 + 3);
        if (!b)
            return -ENOMEM;
        ssize_t k = tern__grpc_b64_decode(json_string_value(v), n, b);
        if (k < 0) {
            free(b);
            return fail(d, -EINVAL, "not base64");
        }
        ProtobufCBinaryData *bd = slot;
        bd->data = b;
        bd->len = (size_t)k;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(d, f->descriptor, v, (ProtobufCMessage **)slot);
    }
    return fail(d, -EINVAL, "a field of an unknown type");
}

/* A map key, always a JSON string, into the entry's key field. */
static int decode_key(dec *d, const ProtobufCFieldDescriptor *kf, const char *key, void *slot)
{
    if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (strcmp(key, "true") && strcmp(key, "false"))
            return fail(d, -EINVAL, "a map key must be \"true\" or \"false\"");
        *(protobuf_c_boolean *)slot = key[0] == 't';
        return 0;
    }
    json_t *k = json_string(key);
    if (!k)
        return -ENOMEM;
    int rc = decode_value(d, kf, k, slot);
    json_decref(k);
    return rc;
}

static int decode_map(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, ProtobufCMessage *m)
{
    if (!json_is_object(v))
        return fail(d, -EINVAL, "expected an object (a map), got %s", kind(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    size_t n = json_object_size(v);
    ProtobufCMessage **arr = calloc(n ? n : 1, sizeof *arr);
    if (!arr)
        return -ENOMEM;
    STRUCT_AT(ProtobufCMessage **, m, f->offset) = arr;
    STRUCT_AT(size_t, m, f->quantifier_offset) = n;
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach((json_t *)v, key, val) {
        ProtobufCMessage *e = malloc(ed->sizeof_message);
        if (!e)
            return -ENOMEM;
        ed->message_init(e);
        arr[i++] = e;
        size_t old = push_map_key(d, key);
        int rc = decode_key(d, &ed->fields[0], key, (char *)e + ed->fields[0].offset);
        if (rc == 0 && !json_is_null(val))
            rc = decode_value(d, &ed->fields[1], val, (char *)e + ed->fields[1].offset);
        pop(d, old);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int decode_repeated(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, ProtobufCMessage *m)
{
    if (!json_is_array(v))
        return fail(d, -EINVAL, "expected an array, got %s", kind(v));
    size_t n = json_array_size(v), sz = tern__grpc_json_value_size(f);
    char *arr = calloc(n ? n : 1, sz);
    if (!arr)
        return -ENOMEM;
    STRUCT_AT(void *, m, f->offset) = arr;
    STRUCT_AT(size_t, m, f->quantifier_offset) = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = push_index(d, i);
        /* protobuf-c packs every element: a NULL message would crash it */
        int rc = json_is_null(e) ? fail(d, -EINVAL, "null in a repeated field")
                                 : decode_value(d, f, e, arr + i * sz);
        pop(d, old);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Whether key is the JSON name of the field called name: protoc's
 * lowerCamelCase (tern__grpc_json_name) compared as it is made. */
static bool json_name_is(const char *name, const char *key)
{
    bool up = false;
    for (; *name; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        char c = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
        up = false;
        if (*key++ != c)
            return false;
    }
    return *key == '\0';
}

static const ProtobufCFieldDescriptor *field_by_json_name(const ProtobufCMessageDescriptor *md, const char *key)
{
    /* the proto name by protobuf-c's binary search, else the JSON names */
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(md, key);
    for (unsigned i = 0; !f && i < md->n_fields; i++)
        if (json_name_is(md->fields[i].name, key))
            f = &md->fields[i];
    return f;
}

/* Whether another member of f's oneof is already set: oneof members share
 * the case word at quantifier_offset, which holds the set member's id. */
static bool oneof_taken(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && STRUCT_AT(uint32_t, m, f->quantifier_offset) != 0;
}

static int decode_field(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, ProtobufCMessage *m)
{
    if (json_is_null(v))
        return 0;                   /* null: the default (a message: unset) */
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return tern__grpc_json_is_map(f) ? decode_map(d, f, v, m) : decode_repeated(d, f, v, m);
    if (oneof_taken(f, m))
        return fail(d, -EINVAL, "another field of its oneof is set already");
    void *slot = (char *)m + f->offset;
    /* a string or message slot still holds its default (never freed); the
     * new value replaces it only once decoded, so an error leaves the
     * message freeable */
    union {
        char *s;
        ProtobufCMessage *msg;
        ProtobufCBinaryData b;
        uint64_t any;
    } tmp = {0};
    int rc = decode_value(d, f, v, &tmp);
    if (rc < 0) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            protobuf_c_message_free_unpacked(tmp.msg, NULL);    /* as far as it got */
        return rc;
    }
    memcpy(slot, &tmp, tern__grpc_json_value_size(f));
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        STRUCT_AT(uint32_t, m, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
             f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        STRUCT_AT(protobuf_c_boolean, m, f->quantifier_offset) = 1;   /* has_<field> */
    return 0;
}

static int decode_fields(dec *d, const ProtobufCMessageDescriptor *md, const json_t *in, ProtobufCMessage *m)
{
    unsigned char seen_small[64] = {0};
    unsigned char *seen = md->n_fields <= sizeof seen_small ? seen_small : calloc(md->n_fields, 1);
    if (!seen)
        return -ENOMEM;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)in, key, v) {
        size_t old = push_key(d, key);
        const ProtobufCFieldDescriptor *f = field_by_json_name(md, key);
        if (!f)
            rc = fail(d, -EINVAL, "no such field in %s", md->name);
        else if (seen[f - md->fields]++)
            rc = fail(d, -EINVAL, "given twice (by its JSON and its proto name)");
        else
            rc = decode_field(d, f, v, m);
        pop(d, old);
        if (rc < 0)
            break;
    }
    if (seen != seen_small)
        free(seen);
    return rc;
}

static int decode_message(dec *d, const ProtobufCMessageDescriptor *md, const json_t *in,
                          ProtobufCMessage **out)
{
    TERN_ASSERT(md && md->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    if (json_is_null(in))
        return 0;                   /* an unset message (a map's value) */
    tern__grpc_wkt wk = tern__grpc_json_wkt(md);
    if (wk == TERN__GRPC_WKT_NONE && !json_is_object(in))
        return fail(d, -EINVAL, "expected an object (%s), got %s", md->name, kind(in));
    if (d->depth >= TERN_GRPC_JSON_MAX_DEPTH)
        return fail(d, -EINVAL, "nested deeper than %d messages", TERN_GRPC_JSON_MAX_DEPTH);
    ProtobufCMessage *m = malloc(md->sizeof_message);
    if (!m)
        return -ENOMEM;
    md->message_init(m);
    *out = m;
    if (wk == TERN__GRPC_WKT_WRAPPER) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(md, "value");
        return decode_value(d, f, in, (char *)m + f->offset);
    }
    if (wk != TERN__GRPC_WKT_NONE) {
        const char *why;
        int rc = tern__grpc_json_wkt_decode(in, wk, m, &why);
        return rc < 0 ? fail(d, rc, "%s", why) : 0;
    }
    d->depth++;
    int rc = decode_fields(d, md, in, m);
    d->depth--;
    return rc;
}

int tern_grpc_json_to_message(const ProtobufCMessageDescriptor *md, const json_t *in, ProtobufCMessage **out,
                              char *err, size_t errlen)
{
    if (!md || !in || !out)
        return -EINVAL;
    dec d = {.err = err, .errlen = err ? errlen : 0};
    if (d.errlen)
        err[0] = '\0';
    ProtobufCMessage *m = NULL;
    if (json_is_null(in) || (!json_is_object(in) && tern__grpc_json_wkt(md) == TERN__GRPC_WKT_NONE))
        return fail(&d, -EINVAL, "expected an object (%s), got %s", md->name, kind(in));
    int rc = decode_message(&d, md, in, &m);
    if (rc < 0) {
        if (rc == -ENOMEM)
            fail(&d, -EINVAL, "out of memory");
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return 0;
}
