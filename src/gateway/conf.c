/*
 * conf.c - reading the gateway's configuration: text to JSON (YAML through
 * the kit's tern_config_parse_yaml, JSON through jansson), durations, and
 * the checks every section shares, each failure a sentence that names the
 * file and the key ("gateway.yaml: routes[2].timeout: \"2x\" is not a
 * duration"), so an operator can fix the file without reading code.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_depth.h"
#include "gateway/internal.h"
#include "tern/config.h"

int tern__gw_fail(gw_err *e, const char *key, const char *fmt, ...)
{
    if (!e->buf || e->len == 0 || e->buf[0])
        return -EINVAL;
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(e->buf, e->len, "%s: %s%s%s", e->file ? e->file : "config", key ? key : "",
             key && *key ? ": " : "", what);
    return -EINVAL;
}

int tern__gw_policy_failed(gw_err *e, const char *key, const char *section, int rc)
{
    if (rc >= 0 || rc == -ENOMEM || !e->buf || e->len == 0)
        return rc;
    if (!e->buf[0]) {
        if (!key || !*key)
            tern__gw_fail(e, section, "%s", tern_strerror(rc));
        else
            tern__gw_fail(e, key, "%s: %s", section, tern_strerror(rc));
        return rc;
    }
    char what[512];
    snprintf(what, sizeof what, "%s", e->buf);
    size_t n = strlen(section);
    bool own = strncmp(what, section, n) == 0 && (what[n] == '.' || what[n] == ':');
    if (!key || !*key)
        snprintf(e->buf, e->len, "%s: %s", e->file ? e->file : "config", what);
    else
        snprintf(e->buf, e->len, "%s: %s%s%s", e->file ? e->file : "config", key, own ? "." : ": ", what);
    return rc;
}

int tern__gw_parse_text(const char *text, size_t len, bool json_name, json_t **out, gw_err *e)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (json_name || (i < len && text[i] == '{')) {
        if (!tern__json_depth_ok(text, len, TERN_CONFIG_MAX_DEPTH))
            return tern__gw_fail(e, NULL, "nested deeper than %d", TERN_CONFIG_MAX_DEPTH);
        json_error_t je;
        *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!*out)
            return tern__gw_fail(e, NULL, "line %d column %d: %s", je.line, je.column, je.text);
    } else {
        char why[300];
        int rc = tern_config_parse_yaml(text, len, out, why, sizeof why);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            return tern__gw_fail(e, NULL, "%s", why);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return tern__gw_fail(e, NULL, "not a mapping of sections (upstreams, routes, ...)");
    }
    return 0;
}

/* Go's time.ParseDuration, without the sign: "1h30m", "250ms", "1.5s". */
static int parse_duration(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"ns", 1}, {"us", 1000}, {"µs", 1000}, {"ms", GW_MS}, {"s", GW_SEC},
                 {"m", 60 * GW_SEC}, {"h", 3600 * GW_SEC}};
    if (!*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    double total = 0;
    while (*s) {
        char *end;
        if (!isdigit((unsigned char)*s) && *s != '.')
            return -EINVAL;
        double v = strtod(s, &end);
        if (end == s)
            return -EINVAL;
        s = end;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, n) == 0 && n > best_len) {
                best = i;
                best_len = n;
            }
        }
        if (!best_len)
            return -EINVAL;
        total += v * (double)units[best].ns;
        s += best_len;
    }
    if (total > 9.2e18)
        return -EINVAL;
    *out = (int64_t)total;
    return 0;
}

int tern__gw_duration(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return -EINVAL;
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v))
        return parse_duration(json_string_value(v), out);
    return -EINVAL;
}

int tern__gw_get_duration(const json_t *obj, const char *name, const char *key, int64_t *out, gw_err *e)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (tern__gw_duration(v, out) < 0) {
        char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int rc = tern__gw_fail(e, key, "%s: %s is not a duration (\"250ms\", \"2s\", \"1m\" or ns)", name,
                         txt ? txt : "?");
        free(txt);
        return rc;
    }
    return 0;
}

int tern__gw_only_keys(const json_t *obj, const char *key, const char *const *allowed, gw_err *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok = ok || strcmp(*a, k) == 0;
        if (!ok) {
            char list[200] = "";
            size_t n = 0;
            for (const char *const *a = allowed; *a && n < sizeof list; a++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
            return tern__gw_fail(e, key, "unknown key \"%s\" (known: %s)", k, list);
        }
    }
    return 0;
}

int tern__gw_get_string(const json_t *obj, const char *name, const char *key, const char **out, gw_err *e)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return tern__gw_fail(e, key, "%s: must be a non-empty string", name);
    *out = json_string_value(v);
    return 0;
}
