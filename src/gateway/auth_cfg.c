/*
 * auth_cfg.c - see auth_cfg.h: what auth.c and limit.c share to read
 * their sections of the gateway's configuration.
 */
#include "gateway/auth_cfg.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tern__gw_policy_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int tern__gw_policy_keys(const json_t *obj, const char *section, const char *const *allowed,
                         char *err, size_t errlen)
{
    if (!json_is_object(obj))
        return tern__gw_policy_err(err, errlen, "%s: must be an object", section);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i])
            return tern__gw_policy_err(err, errlen, "%s.%s: unknown key", section, key);
    }
    return 0;
}

static const struct {
    const char *name;
    double ns;
} units[] = {
    {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
};

int tern__gw_policy_duration(const json_t *v, int64_t *ns)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return -EINVAL;
        *ns = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    double total = 0;
    while (*s) {
        /* a number (digits, at most one point, at least one digit) */
        const char *p = s;
        double x = 0, scale = 1;
        bool digits = false, point = false;
        for (; (*p >= '0' && *p <= '9') || (*p == '.' && !point); p++) {
            if (*p == '.') {
                point = true;
                continue;
            }
            digits = true;
            if (point)
                x += (*p - '0') * (scale /= 10);
            else
                x = x * 10 + (*p - '0');
        }
        if (!digits)
            return -EINVAL;
        /* the longest unit that matches ("ms" before "m") */
        size_t best = 0, blen = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].name);
            if (n > blen && strncmp(p, units[i].name, n) == 0) {
                best = i;
                blen = n;
            }
        }
        if (!blen)
            return -EINVAL;
        total += x * units[best].ns;
        s = p + blen;
    }
    if (!(total < 9.2e18))
        return -EINVAL;
    *ns = (int64_t)llround(total);
    return 0;
}
