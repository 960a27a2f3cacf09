/*
 * names.c - how protoc-gen-tern-grpc names things, and how protoc-c does.
 *
 * Our names (service descriptors, server structs, stubs) are lower_snake:
 * package components joined by '_', then the service and method names with
 * CamelCase broken at each word ("GetHTTPStatus" -> "get_http_status").
 *
 * Message types are protoc-c's, and must be spelled exactly as protoc-c
 * spells them (protoc-c/c_helpers.cc, 1.4): the type is each dotted piece
 * of the full name with '_' dropped and the next letter upper-cased,
 * joined by "__" (foo.bar_baz.HTTPRequest.Inner ->
 * Foo__BarBaz__HTTPRequest__Inner); its descriptor is each piece with an
 * '_' put before an upper-case letter that follows a lower-case one, then
 * lower-cased, joined by "__", plus "__descriptor"
 * (foo__bar_baz__httprequest__inner__descriptor).  A file's
 * `option (pb_c_file).c_package` replaces its package in both.
 */
#define _GNU_SOURCE
#include "gen.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text --------------------------------------------------------------------- */

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "protoc-gen-tern-grpc: out of memory\n");
        exit(1);
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static void sb_reserve(strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "protoc-gen-tern-grpc: out of memory\n");
        exit(1);
    }
    b->p = p;
    b->cap = cap;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sb_puts(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

void sb_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sb_take(strbuf *b)
{
    sb_reserve(b, 0);
    char *p = b->p;
    *b = (strbuf){0};
    return p;
}

/* ---- our names ------------------------------------------------------------------ */

char *snake(const char *s)
{
    strbuf b = {0};
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isupper(c) && i > 0 && b.len > 0 && b.p[b.len - 1] != '_') {
            unsigned char prev = (unsigned char)s[i - 1];
            unsigned char next = i + 1 < n ? (unsigned char)s[i + 1] : 0;
            /* a new word: after a lower-case letter or digit ("sayHello"),
             * or the last capital of an acronym before a lower-case letter
             * ("HTTPStatus": the S) */
            if (islower(prev) || isdigit(prev) || (isupper(prev) && islower(next)))
                sb_puts(&b, "_");
        }
        char one[2] = {(char)tolower(c), 0};
        sb_puts(&b, one);
    }
    return sb_take(&b);
}

char *package_snake(const char *pkg)
{
    strbuf b = {0};
    sb_puts(&b, "");
    const char *p = pkg ? pkg : "";
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n) {
            char *piece = xstrndup(p, n);
            char *s = snake(piece);
            if (b.len)
                sb_puts(&b, "_");
            sb_puts(&b, s);
            free(s);
            free(piece);
        }
        p += n + (dot != NULL);
    }
    return sb_take(&b);
}

char *service_prefix(const file_proto *f, const char *service)
{
    char *pkg = package_snake(f->package);
    char *svc = snake(service);
    strbuf b = {0};
    if (*pkg)
        sb_printf(&b, "%s_%s", pkg, svc);
    else
        sb_puts(&b, svc);
    free(pkg);
    free(svc);
    return sb_take(&b);
}

char *file_ident(const char *name)
{
    char *s = xstrdup(name);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p))
            *p = '_';
    return s;
}

char *strip_proto(const char *name)
{
    size_t n = strlen(name);
    if (n > 6 && !strcmp(name + n - 6, ".proto"))
        n -= 6;
    return xstrndup(name, n);
}

/* C17 and C++ keywords and the names <stdbool.h> and <assert.h> define: a
 * member named so would not compile in one language or the other. */
static const char *const keywords[] = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
    "case", "catch", "char", "char16_t", "char32_t", "class", "compl", "concept", "const",
    "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await", "co_return",
    "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast", "else", "enum",
    "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline",
    "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr",
    "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
    "requires", "restrict", "return", "short", "signed", "sizeof", "static", "static_assert",
    "static_cast", "struct", "switch", "template", "this", "thread_local", "throw", "true", "try",
    "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile",
    "wchar_t", "while", "xor", "xor_eq",
};

char *member_name(const char *s)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (!strcmp(s, keywords[i])) {
            strbuf b = {0};
            sb_printf(&b, "%s_", s);
            return sb_take(&b);
        }
    return xstrdup(s);
}

/* ---- protoc-c's names ------------------------------------------------------------- */

/* ToCamel: drop '_', upper-case the letter after it and the first. */
static void to_camel(strbuf *b, const char *s, size_t n)
{
    bool up = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            up = true;
        } else {
            char one[2] = {up ? (char)toupper((unsigned char)s[i]) : s[i], 0};
            sb_puts(b, one);
            up = false;
        }
    }
}

/* CamelToLower: '_' before an upper-case letter that follows a non-upper
 * one (the first letter counts as following an upper one), all lower. */
static void camel_to_lower(strbuf *b, const char *s, size_t n)
{
    bool was_upper = true;
    for (size_t i = 0; i < n; i++) {
        bool is_upper = isupper((unsigned char)s[i]) != 0;
        if (is_upper && !was_upper)
            sb_puts(b, "_");
        char one[2] = {(char)tolower((unsigned char)s[i]), 0};
        sb_puts(b, one);
        was_upper = is_upper;
    }
}

/* Join the dotted pieces of name (empty pieces skipped) with "__", each
 * piece converted by fn. */
static char *full_name_to(const char *name, void (*fn)(strbuf *, const char *, size_t))
{
    strbuf b = {0};
    sb_puts(&b, "");
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n) {
            if (b.len)
                sb_puts(&b, "__");
            fn(&b, p, n);
        }
        p += n + (dot != NULL);
    }
    return sb_take(&b);
}

/* protobuf-c.proto: extend google.protobuf.FileOptions { optional
 * ProtobufCFileOptions pb_c_file = 1019; }, whose c_package is field 6.
 * The plugin's descriptor.proto does not know the extension, so it is
 * among FileOptions' unknown fields, still in wire format. */
#define PB_C_FILE_FIELD 1019
#define PB_C_C_PACKAGE_FIELD 6

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/* The last c_package in the wire-format ProtobufCFileOptions at data, or
 * NULL; *len its length. */
static const char *find_c_package(const uint8_t *data, size_t len, size_t *out_len)
{
    const uint8_t *p = data, *end = data + len;
    const char *found = NULL;
    while (p < end) {
        uint64_t key, v;
        if (!read_varint(&p, end, &key))
            break;
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &v))
                return found;
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2:
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return found;
            if (key >> 3 == PB_C_C_PACKAGE_FIELD) {
                found = (const char *)p;
                *out_len = (size_t)v;
            }
            p += v;
            break;
        default:
            return found;
        }
    }
    return found;
}

/* The package protoc-c names f's types with (malloc'd). */
static char *c_package(const file_proto *f)
{
    const Google__Protobuf__FileOptions *o = f->options;
    char *pkg = NULL;
    for (size_t i = 0; o && i < o->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &o->base.unknown_fields[i];
        if (u->tag != PB_C_FILE_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            continue;
        /* protobuf-c keeps a length-delimited unknown field's length
         * prefix in its data (it packs the field back verbatim) */
        const uint8_t *p = u->data, *end = u->data + u->len;
        uint64_t body;
        if (!read_varint(&p, end, &body) || body != (uint64_t)(end - p))
            continue;
        size_t n = 0;
        const char *s = find_c_package(p, (size_t)body, &n);
        if (s) {
            free(pkg);
            pkg = xstrndup(s, n);
        }
    }
    return pkg ? pkg : xstrdup(f->package ? f->package : "");
}

/* ---- the index of message types ------------------------------------------------- */

typedef struct type_entry {
    char *full_name;       /* ".foo.bar.Outer.Inner" */
    type_names names;
} type_entry;

static type_entry *types;
static size_t n_types, cap_types;

static void add_type(const char *full_name, const char *c_full_name)
{
    if (n_types == cap_types) {
        cap_types = cap_types ? cap_types * 2 : 64;
        type_entry *t = realloc(types, cap_types * sizeof *t);
        if (!t) {
            fprintf(stderr, "protoc-gen-tern-grpc: out of memory\n");
            exit(1);
        }
        types = t;
    }
    char *lower = full_name_to(c_full_name, camel_to_lower);
    strbuf d = {0};
    sb_printf(&d, "%s__descriptor", lower);
    free(lower);
    types[n_types++] = (type_entry){
        .full_name = xstrdup(full_name),
        .names = {.c_type = full_name_to(c_full_name, to_camel), .descriptor = sb_take(&d)},
    };
}

/* full: ".pkg.Outer" as protoc refers to it; c_full: the same with the C
 * package in place of the package, what protoc-c names it from. */
static void index_messages(msg_proto *const *msgs, size_t n, const char *full, const char *c_full)
{
    for (size_t i = 0; i < n; i++) {
        strbuf a = {0}, b = {0};
        sb_printf(&a, "%s.%s", full, msgs[i]->name);
        sb_printf(&b, "%s.%s", c_full, msgs[i]->name);
        add_type(a.p, b.p);
        index_messages(msgs[i]->nested_type, msgs[i]->n_nested_type, a.p, b.p);
        free(a.p);
        free(b.p);
    }
}

void types_index(Google__Protobuf__Compiler__CodeGeneratorRequest *req)
{
    for (size_t i = 0; i < req->n_proto_file; i++) {
        const file_proto *f = req->proto_file[i];
        strbuf full = {0};
        sb_puts(&full, "");
        if (f->package && *f->package)
            sb_printf(&full, ".%s", f->package);
        char *cpkg = c_package(f);
        index_messages(f->message_type, f->n_message_type, full.p, cpkg);
        free(cpkg);
        free(full.p);
    }
}

const type_names *types_find(const char *full_name)
{
    for (size_t i = 0; i < n_types; i++)
        if (!strcmp(types[i].full_name, full_name))
            return &types[i].names;
    return NULL;
}
