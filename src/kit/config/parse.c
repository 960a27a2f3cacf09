/*
 * parse.c - configuration values from text, one parser per type.
 *
 * Every source hands over text (a default, an env variable, a flag, a
 * JSON scalar turned to text), so each type has exactly one parser and
 * one set of error messages.  A parser accepts the whole text or nothing:
 * "80x" is not an integer.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kit/config/internal.h"

const char *tern__cfg_type_noun(tern_config_type type)
{
    switch (type) {
    case TERN_CONFIG_STRING: return "a string";
    case TERN_CONFIG_INT: return "an integer";
    case TERN_CONFIG_DOUBLE: return "a number";
    case TERN_CONFIG_BOOL: return "a boolean (true or false)";
    case TERN_CONFIG_DURATION: return "a duration (like 250ms or 1m30s)";
    case TERN_CONFIG_LIST: return "a list of strings";
    }
    return "?";
}

const char *tern__cfg_type_name(tern_config_type type)
{
    switch (type) {
    case TERN_CONFIG_STRING: return "string";
    case TERN_CONFIG_INT: return "int";
    case TERN_CONFIG_DOUBLE: return "double";
    case TERN_CONFIG_BOOL: return "bool";
    case TERN_CONFIG_DURATION: return "duration";
    case TERN_CONFIG_LIST: return "list";
    }
    return "?";
}

static const char *parse_int(const char *t, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (end == t || *end || isspace((unsigned char)*t))
        return "is not an integer";
    if (errno == ERANGE)
        return "is out of the int64 range";
    *out = v;
    return NULL;
}

static const char *parse_double(const char *t, double *out)
{
    char *end;
    double v = strtod(t, &end);
    if (end == t || *end || isspace((unsigned char)*t) || !isfinite(v))
        return "is not a number";
    *out = v;
    return NULL;
}

static const char *parse_bool(const char *t, bool *out)
{
    static const char *yes[] = {"true", "1", "yes", "on"}, *no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = true;
            return NULL;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *out = false;
            return NULL;
        }
    }
    return "is not a boolean (true or false)";
}

/* Go's time.ParseDuration: [-+]? ( digits [. digits] unit )+ , or "0". */
static const char *parse_duration(const char *t, int64_t *out)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"ms", 1000000},
                 {"s", 1000000000}, {"m", 60000000000}, {"h", 3600000000000}};
    const char *bad = "is not a duration (like 250ms or 1m30s)";
    const char *p = t;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return NULL;
    }
    if (!*p)
        return bad;
    uint64_t total = 0;
    while (*p) {
        uint64_t ip = 0, frac = 0, scale = 1;
        const char *s = p;
        while (isdigit((unsigned char)*p)) {
            if (__builtin_mul_overflow(ip, 10, &ip) ||
                __builtin_add_overflow(ip, (uint64_t)(*p - '0'), &ip))
                return "is out of the duration range";
            p++;
        }
        bool digits = p > s;
        if (*p == '.') {
            p++;
            for (; isdigit((unsigned char)*p); p++, digits = true) {
                if (scale < 1000000000000000000u) {       /* past 1e-18 is noise */
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
            }
        }
        if (!digits)
            return bad;
        size_t best = 0;
        int64_t unit = 0;
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
            size_t l = strlen(units[u].name);
            if (strncmp(p, units[u].name, l) == 0 && l > best) {
                best = l;
                unit = units[u].ns;
            }
        }
        if (!best)
            return bad;
        p += best;
        uint64_t v;
        if (__builtin_mul_overflow(ip, (uint64_t)unit, &v) ||
            __builtin_add_overflow(v, (uint64_t)((long double)frac * unit / scale), &v) ||
            __builtin_add_overflow(total, v, &total) || total > (uint64_t)INT64_MAX)
            return "is out of the duration range";
    }
    *out = neg ? -(int64_t)total : (int64_t)total;
    return NULL;
}

/* Comma-separated, each item trimmed of spaces; "" is the empty list. */
static const char *parse_list(const char *t, cfg_val *v)
{
    size_t n = *t ? 1 : 0;
    for (const char *p = t; *p; p++)
        n += *p == ',';
    char **list = calloc(n + 1, sizeof *list);
    if (!list)
        return "cannot be stored (out of memory)";
    const char *p = t;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        list[i] = strndup(a, (size_t)(b - a));
        if (!list[i]) {
            v->list = list;
            tern__cfg_val_free(v);
            return "cannot be stored (out of memory)";
        }
        p = *e ? e + 1 : e;
    }
    v->list = list;
    v->nlist = n;
    return NULL;
}

const char *tern__cfg_parse(tern_config_type type, const char *text, cfg_val *v)
{
    switch (type) {
    case TERN_CONFIG_STRING: return NULL;
    case TERN_CONFIG_INT: return parse_int(text, &v->v.i);
    case TERN_CONFIG_DOUBLE: return parse_double(text, &v->v.d);
    case TERN_CONFIG_BOOL: return parse_bool(text, &v->v.b);
    case TERN_CONFIG_DURATION: return parse_duration(text, &v->v.i);
    case TERN_CONFIG_LIST: return parse_list(text, v);
    }
    return "has an unknown type";
}

bool tern__cfg_equal(tern_config_type type, const cfg_val *a, const cfg_val *b)
{
    switch (type) {
    case TERN_CONFIG_STRING: return strcmp(a->text, b->text) == 0;
    case TERN_CONFIG_INT:
    case TERN_CONFIG_DURATION: return a->v.i == b->v.i;
    case TERN_CONFIG_DOUBLE: return a->v.d == b->v.d;
    case TERN_CONFIG_BOOL: return a->v.b == b->v.b;
    case TERN_CONFIG_LIST:
        if (a->nlist != b->nlist)
            return false;
        for (size_t i = 0; i < a->nlist; i++)
            if (strcmp(a->list[i], b->list[i]) != 0)
                return false;
        return true;
    }
    return false;
}

void tern__cfg_val_free(cfg_val *v)
{
    free(v->text);
    if (v->list)
        for (char **p = v->list; *p; p++)
            free(*p);
    free(v->list);
    *v = (cfg_val){0};
}
