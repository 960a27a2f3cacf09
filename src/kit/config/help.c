/*
 * help.c - "--help" text written from the key declarations, so the
 * help can never disagree with what the program accepts.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/check.h"
#include "kit/config/internal.h"

typedef struct sink {
    char *buf;
    size_t len, used;
} sink;

__attribute__((format(printf, 2, 3))) static void add(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->used < s->len ? s->len - s->used : 0;
    int n = vsnprintf(room ? s->buf + s->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->used += (size_t)n;
}

/* One line:
 *   --http.port int  port (default 8080, env SVC_HTTP_PORT, 1..65535) */
static void key_line(const tern_config *cfg, size_t i, sink *s)
{
    const tern_config_key *k = &cfg->o.keys[i];
    add(s, "  --%s %s", k->name, tern__cfg_type_name(k->type));
    if (k->help && *k->help)
        add(s, "  %s", k->help);
    const char *sep = " (";
    if (k->def && *k->def) {
        add(s, "%sdefault %s", sep, k->def);
        sep = ", ";
    }
    char env[256];
    tern__cfg_env_name(cfg, i, env, sizeof env);
    if (*env) {
        add(s, "%senv %s", sep, env);
        sep = ", ";
    }
    if (k->min || k->max) {
        add(s, "%s%s..%s", sep, k->min ? k->min : "", k->max ? k->max : "");
        sep = ", ";
    }
    if (k->type == TERN_CONFIG_STRING && k->one_of) {
        add(s, "%sone of", sep);
        for (const char *const *p = k->one_of; *p; p++)
            add(s, "%s%s", p == k->one_of ? " " : "|", *p);
        sep = ", ";
    }
    add(s, "%s\n", sep[0] == ',' ? ")" : "");
}

size_t tern_config_help(const tern_config *cfg, char *buf, size_t len)
{
    TERN_CHECK_ARG(cfg);
    sink s = {buf, len, 0};
    if (len)
        buf[0] = 0;
    add(&s, "Options (a flag beats env, env beats the file, the file beats the default):\n");
    if (cfg->opts_file)
        add(&s, "  --config FILE  read the file layer (JSON) from FILE (default %s)\n",
            cfg->opts_file);
    else
        add(&s, "  --config FILE  read the file layer (JSON) from FILE\n");
    for (size_t i = 0; i < cfg->n; i++)
        key_line(cfg, i, &s);
    return s.used;
}
