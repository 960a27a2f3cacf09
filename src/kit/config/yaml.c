/*
 * yaml.c - YAML text to a jansson value (tern_config_parse_yaml), so that
 * every consumer of configuration (the kit's file layer, the gateway)
 * reads one tree whatever the file was written in.
 *
 * libyaml's event parser drives a recursive descent: a mapping becomes an
 * object, a sequence an array, a scalar a string, or, when it is plain
 * (unquoted), what the YAML 1.2 core schema resolves it to: null, ~ and
 * the empty scalar null; true/false; decimal, 0x and 0o integers; floats
 * (.inf, .nan).  Anchors and aliases are supported (an alias shares the
 * anchored value), merge keys ("<<") are not: configuration files rarely
 * use them and their semantics are the part of YAML people get wrong.
 * Mapping keys must be scalars and unique (a repeated key is a mistake,
 * as JSON_REJECT_DUPLICATES says for JSON files).  Exactly one document.
 *
 * The descent recurses per level, so nesting is capped at
 * TERN_CONFIG_MAX_DEPTH, as for JSON files: a reload may run on a
 * coroutine's stack.  libyaml's own recursion is bounded by its event
 * API (it keeps a stack of states on the heap).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "tern/config.h"

#define MAX_ANCHORS 256

typedef struct anchor {
    char *name;
    json_t *value;
} anchor;

typedef struct yp {
    yaml_parser_t p;
    char *err;
    size_t errlen;
    bool failed;
    anchor anchors[MAX_ANCHORS];
    size_t nanchors;
} yp;

static void fail(yp *y, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(yp *y, const yaml_mark_t *m, const char *fmt, ...)
{
    if (y->failed)
        return;
    y->failed = true;
    if (!y->err || y->errlen == 0)
        return;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (m)
        snprintf(y->err, y->errlen, "line %zu column %zu: %s", m->line + 1, m->column + 1, what);
    else
        snprintf(y->err, y->errlen, "%s", what);
}

static bool next(yp *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->p, ev))
        return true;
    fail(y, &y->p.problem_mark, "%s%s%s", y->p.problem ? y->p.problem : "malformed YAML",
         y->p.context ? " " : "", y->p.context ? y->p.context : "");
    return false;
}

static int remember(yp *y, const yaml_char_t *name, json_t *v, const yaml_mark_t *m)
{
    if (!name)
        return 0;
    if (y->nanchors == MAX_ANCHORS) {
        fail(y, m, "more than %d anchors", MAX_ANCHORS);
        return -1;
    }
    char *s = strdup((const char *)name);
    if (!s) {
        fail(y, m, "out of memory");
        return -1;
    }
    y->anchors[y->nanchors++] = (anchor){.name = s, .value = json_incref(v)};
    return 0;
}

static json_t *alias(yp *y, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    for (size_t i = y->nanchors; i-- > 0;)
        if (strcmp(y->anchors[i].name, name) == 0)
            return json_incref(y->anchors[i].value);
    fail(y, &ev->start_mark, "alias *%s names no anchor before it", name);
    return NULL;
}

static bool all_digits(const char *s, int base)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= '0' && c <= '9' && (base != 8 || c <= '7')) ||
                  (base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
        if (!ok)
            return false;
    }
    return true;
}

/* The core schema's resolution of a plain scalar (YAML 1.2.2, 10.3.2). */
static json_t *plain(const char *s)
{
    if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    const char *d = s + (*s == '-' || *s == '+');
    int base = 10;
    if (d == s && d[0] == '0' && (d[1] == 'x' || d[1] == 'o')) {
        base = d[1] == 'x' ? 16 : 8;
        d += 2;
    }
    if (all_digits(d, base)) {
        errno = 0;
        long long v = strtoll(base == 10 ? s : d, NULL, base);
        if (errno == 0)
            return json_integer(v);
        return json_string(s);  /* too big for an integer: keep the text */
    }
    if (strcmp(d, ".inf") == 0 || strcmp(d, ".Inf") == 0 || strcmp(d, ".INF") == 0)
        return json_string(s);  /* JSON has no infinity; the text is kept */
    char *end;
    if (strpbrk(s, "0123456789") && strspn(s, "0123456789+-.eE") == strlen(s)) {
        double v = strtod(s, &end);
        if (*end == '\0' && isfinite(v))
            return json_real(v);
    }
    return json_string(s);
}

static json_t *node(yp *y, yaml_event_t *ev, int depth);

static json_t *scalar(yp *y, yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    json_t *v;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag)
        v = plain(s);
    else
        v = json_stringn(s, ev->data.scalar.length);
    if (!v)
        fail(y, &ev->start_mark, "a scalar that is not valid UTF-8");
    return v;
}

static json_t *sequence(yp *y, yaml_event_t *start, int depth)
{
    json_t *arr = json_array();
    if (!arr) {
        fail(y, &start->start_mark, "out of memory");
        return NULL;
    }
    for (;;) {
        yaml_event_t ev;
        if (!next(y, &ev))
            break;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return arr;
        }
        json_t *v = node(y, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!v || json_array_append_new(arr, v) < 0)
            break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *mapping(yp *y, yaml_event_t *start, int depth)
{
    json_t *obj = json_object();
    if (!obj) {
        fail(y, &start->start_mark, "out of memory");
        return NULL;
    }
    for (;;) {
        yaml_event_t kev;
        if (!next(y, &kev))
            break;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return obj;
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            fail(y, &kev.start_mark, "a mapping key that is not a scalar");
            yaml_event_delete(&kev);
            break;
        }
        char *key = strdup((const char *)kev.data.scalar.value);
        yaml_mark_t km = kev.start_mark;
        yaml_event_delete(&kev);
        if (!key) {
            fail(y, &km, "out of memory");
            break;
        }
        if (strcmp(key, "<<") == 0 || json_object_get(obj, key)) {
            fail(y, &km, strcmp(key, "<<") == 0 ? "merge keys (<<) are not supported"
                                                 : "duplicate key \"%s\"", key);
            free(key);
            break;
        }
        yaml_event_t vev;
        if (!next(y, &vev)) {
            free(key);
            break;
        }
        json_t *v = node(y, &vev, depth + 1);
        yaml_event_delete(&vev);
        int rc = v ? json_object_set_new(obj, key, v) : -1;
        if (v && rc < 0)
            fail(y, &km, "key \"%s\" is not valid UTF-8", key);
        free(key);
        if (rc < 0)
            break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *node(yp *y, yaml_event_t *ev, int depth)
{
    if (depth > TERN_CONFIG_MAX_DEPTH) {
        fail(y, &ev->start_mark, "nested deeper than %d", TERN_CONFIG_MAX_DEPTH);
        return NULL;
    }
    json_t *v = NULL;
    const yaml_char_t *anchor_name = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        v = scalar(y, ev);
        anchor_name = ev->data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
        v = sequence(y, ev, depth);
        anchor_name = ev->data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        v = mapping(y, ev, depth);
        anchor_name = ev->data.mapping_start.anchor;
        break;
    case YAML_ALIAS_EVENT:
        return alias(y, ev);
    default:
        fail(y, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
    if (v && remember(y, anchor_name, v, &ev->start_mark) < 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* STREAM-START DOCUMENT-START node DOCUMENT-END STREAM-END; an empty
 * stream is null. */
static json_t *document(yp *y)
{
    yaml_event_t ev;
    if (!next(y, &ev))
        return NULL;
    yaml_event_delete(&ev);                 /* STREAM-START */
    if (!next(y, &ev))
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return json_null();
    }
    yaml_event_delete(&ev);                 /* DOCUMENT-START */
    if (!next(y, &ev))
        return NULL;
    json_t *root = node(y, &ev, 1);
    yaml_event_delete(&ev);
    if (!root)
        return NULL;
    if (!next(y, &ev))                      /* DOCUMENT-END */
        goto bad;
    yaml_event_delete(&ev);
    if (!next(y, &ev))
        goto bad;
    bool one = ev.type == YAML_STREAM_END_EVENT;
    if (!one)
        fail(y, &ev.start_mark, "more than one document");
    yaml_event_delete(&ev);
    if (one)
        return root;
bad:
    json_decref(root);
    return NULL;
}

int tern_config_parse_yaml(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
    if (!out || (!text && len))
        return -EINVAL;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    yp *y = calloc(1, sizeof *y);
    if (!y)
        return -ENOMEM;
    y->err = err;
    y->errlen = errlen;
    if (!yaml_parser_initialize(&y->p)) {
        free(y);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&y->p, (const unsigned char *)(text ? text : ""), len);
    json_t *root = document(y);
    yaml_parser_delete(&y->p);
    for (size_t i = 0; i < y->nanchors; i++) {
        free(y->anchors[i].name);
        json_decref(y->anchors[i].value);
    }
    bool failed = y->failed;
    free(y);
    if (!root) {
        if (!failed && err && errlen)
            snprintf(err, errlen, "out of memory");
        return failed ? -EINVAL : -ENOMEM;
    }
    *out = root;
    return 0;
}
