/*
 * reflection_desc.c - what a serialized FileDescriptorProto declares, read
 * straight from its wire format for server reflection.
 *
 * Reflection answers "which file declares symbol S" and "which extensions
 * does type T have" from the file descriptors generated code embeds
 * (tern_grpc_file_desc).  Unpacking them with protoc-c's descriptor.proto
 * would put all of descriptor.proto's C into the library for a handful of
 * names; the walk below reads only the fields that name things
 * (descriptor.proto's field numbers):
 *
 *   FileDescriptorProto      package 2, message_type 4, enum_type 5,
 *                            service 6, extension 7
 *   DescriptorProto          name 1, field 2, nested_type 3, enum_type 4,
 *                            extension 6, oneof_decl 8
 *   EnumDescriptorProto      name 1, value 2 (EnumValueDescriptorProto: name 1)
 *   ServiceDescriptorProto   name 1, method 2 (MethodDescriptorProto: name 1)
 *   FieldDescriptorProto     name 1, extendee 2, number 3
 *   OneofDescriptorProto     name 1
 *
 * Full names follow protobuf's scoping: "pkg.Outer.Inner", a field
 * "pkg.Outer.field", a method "pkg.Service.Method", and an enum value in
 * the scope that holds its enum ("pkg.VALUE", "pkg.Outer.VALUE"), as C++
 * scoping has it.  The data is the library's own (generated code), but it
 * is read as if it were not: every length is checked, nesting is bounded,
 * and malformed data declares nothing (fuzz/fuzz_grpc_desc.c).
 */
#include "grpc/reflection_internal.h"

#include <string.h>

#define MAX_DEPTH 64    /* nested messages; protoc allows far fewer in practice */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

typedef struct field {
    uint32_t number;
    int wire;
    uint64_t value;             /* varints */
    const uint8_t *data;        /* length-delimited */
    size_t len;
} field;

static bool read_varint(reader *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The next field: 1, 0 at the end, -1 malformed. */
static int next(reader *r, field *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (!read_varint(r, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        return read_varint(r, &f->value) ? 1 : -1;
    case 1:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 1;
    case 2: {
        uint64_t n;
        if (!read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
            return -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return -1;
    }
}

/* The string field `number` of the message at data (the last one, as
 * protobuf merges), or false. */
static bool string_field(const uint8_t *data, size_t len, uint32_t number, const uint8_t **s,
                         size_t *n)
{
    reader r = {data, data + len};
    field f = {0};
    bool found = false;
    int rc;
    while ((rc = next(&r, &f)) == 1)
        if (f.number == number && f.wire == 2) {
            *s = f.data;
            *n = f.len;
            found = true;
        }
    return rc == 0 && found;
}

enum { NO_MATCH, INSIDE, EXACT };

/* Is sym the name `name` in the scope sym[0..scope) (EXACT), or something
 * declared inside it (INSIDE: sym continues with '.')? */
static int name_at(const char *sym, size_t sym_len, size_t scope, const uint8_t *name, size_t n)
{
    size_t off = scope;
    if (scope) {
        if (sym_len <= scope || sym[scope] != '.')
            return NO_MATCH;
        off = scope + 1;
    }
    if (n == 0 || sym_len - off < n || memcmp(sym + off, name, n) != 0)
        return NO_MATCH;
    if (sym_len == off + n)
        return EXACT;
    return sym[off + n] == '.' ? INSIDE : NO_MATCH;
}

/* A message-like element with a name field 1 and nothing inside that
 * reflection looks up by name (a field, oneof, enum value or method). */
static bool leaf_is(const char *sym, size_t sym_len, size_t scope, const uint8_t *d, size_t len)
{
    const uint8_t *name = NULL;
    size_t n = 0;
    return string_field(d, len, 1, &name, &n) && name_at(sym, sym_len, scope, name, n) == EXACT;
}

/* An enum in scope: the enum itself, or one of its values (which live in
 * the enum's own scope, not inside the enum). */
static bool enum_declares(const char *sym, size_t sym_len, size_t scope, const uint8_t *d, size_t len)
{
    if (leaf_is(sym, sym_len, scope, d, len))
        return true;
    reader r = {d, d + len};
    field f = {0};
    while (next(&r, &f) == 1)
        if (f.number == 2 && f.wire == 2 && leaf_is(sym, sym_len, scope, f.data, f.len))
            return true;
    return false;
}

static bool message_declares(const char *sym, size_t sym_len, size_t scope, const uint8_t *d,
                             size_t len, int depth)
{
    const uint8_t *name = NULL;
    size_t n = 0;
    if (depth > MAX_DEPTH || !string_field(d, len, 1, &name, &n))
        return false;
    int m = name_at(sym, sym_len, scope, name, n);
    if (m == EXACT)
        return true;
    if (m == NO_MATCH)
        return false;           /* all it declares is inside it */
    size_t inner = (scope ? scope + 1 : 0) + n;
    reader r = {d, d + len};
    field f = {0};
    while (next(&r, &f) == 1) {
        if (f.wire != 2)
            continue;
        switch (f.number) {
        case 2: /* field */
        case 6: /* extension */
        case 8: /* oneof_decl */
            if (leaf_is(sym, sym_len, inner, f.data, f.len))
                return true;
            break;
        case 3: /* nested_type */
            if (message_declares(sym, sym_len, inner, f.data, f.len, depth + 1))
                return true;
            break;
        case 4: /* enum_type */
            if (enum_declares(sym, sym_len, inner, f.data, f.len))
                return true;
            break;
        }
    }
    return false;
}

static bool service_declares(const char *sym, size_t sym_len, size_t scope, const uint8_t *d, size_t len)
{
    const uint8_t *name = NULL;
    size_t n = 0;
    if (!string_field(d, len, 1, &name, &n))
        return false;
    int m = name_at(sym, sym_len, scope, name, n);
    if (m != INSIDE)
        return m == EXACT;
    size_t inner = (scope ? scope + 1 : 0) + n;
    reader r = {d, d + len};
    field f = {0};
    while (next(&r, &f) == 1)
        if (f.number == 2 && f.wire == 2 && leaf_is(sym, sym_len, inner, f.data, f.len))
            return true;
    return false;
}

bool tern__grpc_desc_declares(const uint8_t *data, size_t len, const char *sym)
{
    size_t sym_len = strlen(sym);
    const uint8_t *pkg = NULL;
    size_t pkg_len = 0;
    string_field(data, len, 2, &pkg, &pkg_len);
    /* everything the file declares is inside its package */
    size_t scope = 0;
    if (pkg_len) {
        if (sym_len <= pkg_len + 1 || memcmp(sym, pkg, pkg_len) != 0 || sym[pkg_len] != '.')
            return false;
        scope = pkg_len;
    }
    reader r = {data, data + len};
    field f = {0};
    while (next(&r, &f) == 1) {
        if (f.wire != 2)
            continue;
        switch (f.number) {
        case 4:
            if (message_declares(sym, sym_len, scope, f.data, f.len, 0))
                return true;
            break;
        case 5:
            if (enum_declares(sym, sym_len, scope, f.data, f.len))
                return true;
            break;
        case 6:
            if (service_declares(sym, sym_len, scope, f.data, f.len))
                return true;
            break;
        case 7:
            if (leaf_is(sym, sym_len, scope, f.data, f.len))
                return true;
            break;
        }
    }
    return false;
}

/* An extension (FieldDescriptorProto with an extendee): told to fn when
 * its extendee is the type. */
static int visit_extension(const uint8_t *d, size_t len, const char *type, tern__grpc_ext_fn *fn,
                           void *arg)
{
    reader r = {d, d + len};
    field f = {0};
    const uint8_t *extendee = NULL;
    size_t n = 0;
    int64_t number = -1;
    while (next(&r, &f) == 1) {
        if (f.number == 2 && f.wire == 2) {
            extendee = f.data;
            n = f.len;
        } else if (f.number == 3 && f.wire == 0) {
            number = (int32_t)f.value;
        }
    }
    /* extendee is fully qualified: ".pkg.Type" */
    if (!extendee || number < 0 || n < 1 || extendee[0] != '.')
        return 0;
    if (n - 1 != strlen(type) || memcmp(extendee + 1, type, n - 1) != 0)
        return 0;
    return fn((int32_t)number, arg);
}

static int message_extensions(const uint8_t *d, size_t len, const char *type, tern__grpc_ext_fn *fn,
                              void *arg, int depth)
{
    if (depth > MAX_DEPTH)
        return 0;
    reader r = {d, d + len};
    field f = {0};
    int rc = 0;
    while (rc == 0 && next(&r, &f) == 1) {
        if (f.wire != 2)
            continue;
        if (f.number == 6)
            rc = visit_extension(f.data, f.len, type, fn, arg);
        else if (f.number == 3)
            rc = message_extensions(f.data, f.len, type, fn, arg, depth + 1);
    }
    return rc;
}

int tern__grpc_desc_extensions(const uint8_t *data, size_t len, const char *type,
                               tern__grpc_ext_fn *fn, void *arg)
{
    reader r = {data, data + len};
    field f = {0};
    int rc = 0;
    while (rc == 0 && next(&r, &f) == 1) {
        if (f.wire != 2)
            continue;
        if (f.number == 7)
            rc = visit_extension(f.data, f.len, type, fn, arg);
        else if (f.number == 4)
            rc = message_extensions(f.data, f.len, type, fn, arg, 0);
    }
    return rc;
}
