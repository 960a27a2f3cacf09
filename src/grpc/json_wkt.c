/*
 * json_wkt.c - the well-known types whose JSON is not their message's:
 * google.protobuf.Timestamp (an RFC 3339 string in UTC,
 * "2026-12-05T21:30:00.250Z"), Duration (seconds with a suffix, "1.500s")
 * and the wrappers (Int64Value and co.: the bare value, so a nullable int
 * is a number or null).  The encoder and decoder ask here first.
 *
 * Messages are recognised by their full name and read through their
 * descriptors' field offsets (seconds, nanos, value), never a C struct of
 * our own: the program's generated code is what lays them out.  The
 * fractional part is written with 0, 3, 6 or 9 digits, as protobuf's own
 * serializers do; the input may have 1 to 9.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/json_internal.h"

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the spec's range */
#define TS_MIN (-62135596800LL)
#define TS_MAX 253402300799LL
/* +-10000 years, Duration's range */
#define DUR_MAX 315576000000LL

static const char *const wrappers[] = {
    "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue",
};

tern__grpc_wkt tern__grpc_json_wkt(const ProtobufCMessageDescriptor *d)
{
    const char *n = d->name;
    if (strncmp(n, "google.protobuf.", 16) != 0)
        return TERN__GRPC_WKT_NONE;
    if (!strcmp(n, "google.protobuf.Timestamp") || !strcmp(n, "google.protobuf.Duration")) {
        /* the fields we read, where the descriptor says they are */
        const ProtobufCFieldDescriptor *s = protobuf_c_message_descriptor_get_field_by_name(d, "seconds");
        const ProtobufCFieldDescriptor *ns = protobuf_c_message_descriptor_get_field_by_name(d, "nanos");
        if (!s || !ns || s->type != PROTOBUF_C_TYPE_INT64 || ns->type != PROTOBUF_C_TYPE_INT32 ||
            s->label == PROTOBUF_C_LABEL_REPEATED || ns->label == PROTOBUF_C_LABEL_REPEATED)
            return TERN__GRPC_WKT_NONE;
        return n[16] == 'T' ? TERN__GRPC_WKT_TIMESTAMP : TERN__GRPC_WKT_DURATION;
    }
    for (size_t i = 0; i < sizeof wrappers / sizeof *wrappers; i++)
        if (!strcmp(n, wrappers[i])) {
            const ProtobufCFieldDescriptor *v = protobuf_c_message_descriptor_get_field_by_name(d, "value");
            return v && v->label != PROTOBUF_C_LABEL_REPEATED ? TERN__GRPC_WKT_WRAPPER : TERN__GRPC_WKT_NONE;
        }
    return TERN__GRPC_WKT_NONE;
}

#define AT(type, m, f) (*(type *)((char *)(m) + (f)->offset))

static void seconds_nanos(const ProtobufCMessage *m, int64_t *s, int32_t *ns)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    *s = AT(const int64_t, m, protobuf_c_message_descriptor_get_field_by_name(d, "seconds"));
    *ns = AT(const int32_t, m, protobuf_c_message_descriptor_get_field_by_name(d, "nanos"));
}

static void set_seconds_nanos(ProtobufCMessage *m, int64_t s, int32_t ns)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    AT(int64_t, m, protobuf_c_message_descriptor_get_field_by_name(d, "seconds")) = s;
    AT(int32_t, m, protobuf_c_message_descriptor_get_field_by_name(d, "nanos")) = ns;
}

/* ".250", ".000001", ".000000001" or "" */
static void fraction(int32_t ns, char *b, size_t cap)
{
    if (ns == 0)
        b[0] = '\0';
    else if (ns % 1000000 == 0)
        snprintf(b, cap, ".%03" PRId32, ns / 1000000);
    else if (ns % 1000 == 0)
        snprintf(b, cap, ".%06" PRId32, ns / 1000);
    else
        snprintf(b, cap, ".%09" PRId32, ns);
}

int tern__grpc_json_wkt_encode(const ProtobufCMessage *m, tern__grpc_wkt kind, json_t **out)
{
    int64_t s;
    int32_t ns;
    char b[64], frac[16];
    *out = NULL;
    switch (kind) {
    case TERN__GRPC_WKT_TIMESTAMP: {
        seconds_nanos(m, &s, &ns);
        if (s < TS_MIN || s > TS_MAX || ns < 0 || ns > 999999999)
            return -EINVAL;
        time_t t = (time_t)s;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            return -EINVAL;
        fraction(ns, frac, sizeof frac);
        snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        break;
    }
    case TERN__GRPC_WKT_DURATION:
        seconds_nanos(m, &s, &ns);
        if (s < -DUR_MAX || s > DUR_MAX || ns < -999999999 || ns > 999999999 || (s > 0 && ns < 0) ||
            (s < 0 && ns > 0))
            return -EINVAL;
        fraction(ns < 0 ? -ns : ns, frac, sizeof frac);
        /* "-0.5s": the sign lives in nanos when seconds is 0 */
        snprintf(b, sizeof b, "%s%" PRId64 "%ss", s == 0 && ns < 0 ? "-" : "", s, frac);
        break;
    case TERN__GRPC_WKT_WRAPPER: {
        const ProtobufCFieldDescriptor *v =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "value");
        *out = tern__grpc_json_encode_value(v, (const char *)m + v->offset);
        return *out ? 0 : -ENOMEM;
    }
    default:
        return -EINVAL;
    }
    *out = json_string(b);
    return *out ? 0 : -ENOMEM;
}

/* n digits at p as a number, or -1 */
static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* ".d" to ".ddddddddd" at *p as nanoseconds; *p advanced.  0 or -EINVAL. */
static int parse_fraction(const char **p, int32_t *ns)
{
    *ns = 0;
    if (**p != '.')
        return 0;
    const char *s = ++*p;
    int n = 0;
    int32_t v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == 9)
            return -EINVAL;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0)
        return -EINVAL;
    for (int i = n; i < 9; i++)
        v *= 10;
    *ns = v;
    *p = s + n;
    return 0;
}

int tern__grpc_json_timestamp_parse(const char *s, int64_t *sec, int32_t *nanos)
{
    /* YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+hh:mm|-hh:mm), 't' and 'z' too (RFC 3339 5.6) */
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 59)
        return -EINVAL;
    const char *p = s + 19;
    if (parse_fraction(&p, nanos) < 0)
        return -EINVAL;
    int64_t off = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -EINVAL;
        off = (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60);
    } else {
        return -EINVAL;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d || tm.tm_mon != mo - 1)     /* timegm normalised a day that does not exist */
        return -EINVAL;
    *sec = (int64_t)t - off;
    if (*sec < TS_MIN || *sec > TS_MAX)
        return -EINVAL;
    return 0;
}

int tern__grpc_json_duration_parse(const char *s, int64_t *sec, int32_t *nanos)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > DUR_MAX)
            return -EINVAL;
    }
    int32_t ns;
    if (parse_fraction(&p, &ns) < 0 || strcmp(p, "s") != 0)
        return -EINVAL;
    *sec = neg ? -v : v;
    *nanos = neg ? -ns : ns;
    return 0;
}

int tern__grpc_json_wkt_decode(const json_t *in, tern__grpc_wkt kind, ProtobufCMessage *m, const char **why)
{
    int64_t s;
    int32_t ns;
    if (kind == TERN__GRPC_WKT_TIMESTAMP || kind == TERN__GRPC_WKT_DURATION) {
        const char *text = json_string_value(in);
        if (!text) {
            *why = kind == TERN__GRPC_WKT_TIMESTAMP ? "expected an RFC 3339 time (\"2026-12-05T21:30:00Z\")"
                                                    : "expected a duration (\"1.5s\")";
            return -EINVAL;
        }
        int rc = kind == TERN__GRPC_WKT_TIMESTAMP ? tern__grpc_json_timestamp_parse(text, &s, &ns)
                                                  : tern__grpc_json_duration_parse(text, &s, &ns);
        if (rc < 0) {
            *why = kind == TERN__GRPC_WKT_TIMESTAMP ? "not an RFC 3339 time between years 1 and 9999"
                                                    : "not a duration (\"1.5s\", \"-0.25s\")";
            return rc;
        }
        set_seconds_nanos(m, s, ns);
        return 0;
    }
    *why = NULL;
    return -EINVAL;
}
