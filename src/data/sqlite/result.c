/*
 * result.c - a statement's rows, copied out on the connection's thread,
 * and the typed accessors (the shape of tern_pg_result's).
 *
 * A cell keeps SQLite's type and value and, for every non-NULL cell, its
 * text (numbers as SQLite writes them), so that text works on any column
 * as it does on PostgreSQL's text results.  Text and blobs live in blocks
 * that only grow, so pointers handed out stay valid until the result is
 * freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data/sqlite/internal.h"

#define BLOCK_MIN 4096

struct sq_block {
    struct sq_block *next;
    size_t used, size;
    char data[];
};

tern_sqlite_result *tern__sq_result_new(int cols)
{
    tern_sqlite_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cols = cols;
    return r;
}

/* n bytes that live as long as r. */
static char *alloc(tern_sqlite_result *r, size_t n)
{
    struct sq_block *b = r->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = n > BLOCK_MIN ? n : BLOCK_MIN;
        b = malloc(sizeof *b + size);
        if (!b)
            return NULL;
        b->used = 0;
        b->size = size;
        b->next = r->blocks;
        r->blocks = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static char *copy(tern_sqlite_result *r, const void *src, size_t n)
{
    char *p = alloc(r, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, src, n);
    p[n] = '\0';
    return p;
}

int tern__sq_result_set_names(tern_sqlite_result *r, sqlite3_stmt *st)
{
    if (r->cols == 0)
        return 0;
    r->names = calloc((size_t)r->cols, sizeof *r->names);
    if (!r->names)
        return -ENOMEM;
    for (int i = 0; i < r->cols; i++) {
        const char *n = sqlite3_column_name(st, i);
        if (!n || !(r->names[i] = copy(r, n, strlen(n))))
            return -ENOMEM;
    }
    return 0;
}

int tern__sq_result_add_row(tern_sqlite_result *r, sqlite3_stmt *st)
{
    /* grow by doubling: rows is the count, the capacity the next power */
    int rows = r->rows;
    if ((rows & (rows - 1)) == 0 && r->cols > 0) {
        size_t cap = rows ? (size_t)rows * 2 : 1;
        sq_cell *c = realloc(r->cells, cap * (size_t)r->cols * sizeof *c);
        if (!c)
            return -ENOMEM;
        r->cells = c;
    }
    for (int i = 0; i < r->cols; i++) {
        sq_cell *c = &r->cells[(size_t)rows * (size_t)r->cols + (size_t)i];
        c->type = sqlite3_column_type(st, i);
        c->text = NULL;
        c->len = 0;
        c->v.i = 0;
        const void *p = NULL;
        switch (c->type) {
        case SQLITE_NULL:
            continue;
        case SQLITE_INTEGER:
            c->v.i = sqlite3_column_int64(st, i);
            p = sqlite3_column_text(st, i);
            break;
        case SQLITE_FLOAT:
            c->v.d = sqlite3_column_double(st, i);
            p = sqlite3_column_text(st, i);
            break;
        case SQLITE_TEXT:
            p = sqlite3_column_text(st, i);
            break;
        default:
            p = sqlite3_column_blob(st, i);
            break;
        }
        c->len = sqlite3_column_bytes(st, i);
        if (!(c->text = copy(r, p, (size_t)c->len)))
            return -ENOMEM;
    }
    r->rows++;
    return 0;
}

int tern_sqlite_result_rows(const tern_sqlite_result *r)
{
    TERN_CHECK_ARG(r);
    return r->rows;
}

int tern_sqlite_result_cols(const tern_sqlite_result *r)
{
    TERN_CHECK_ARG(r);
    return r->cols;
}

const char *tern_sqlite_result_col_name(const tern_sqlite_result *r, int col)
{
    TERN_CHECK_ARG(r);
    return col >= 0 && col < r->cols ? r->names[col] : "";
}

int tern_sqlite_result_col_index(const tern_sqlite_result *r, const char *name)
{
    TERN_CHECK_ARG(r);
    TERN_CHECK_ARG(name);
    for (int i = 0; i < r->cols; i++)
        if (strcmp(r->names[i], name) == 0)
            return i;
    return -ENOENT;
}

static const sq_cell *at(const tern_sqlite_result *r, int row, int col)
{
    if (row < 0 || col < 0 || row >= r->rows || col >= r->cols)
        return NULL;
    return &r->cells[(size_t)row * (size_t)r->cols + (size_t)col];
}

bool tern_sqlite_result_is_null(const tern_sqlite_result *r, int row, int col)
{
    TERN_CHECK_ARG(r);
    const sq_cell *c = at(r, row, col);
    return !c || c->type == SQLITE_NULL;
}

const char *tern_sqlite_result_text(const tern_sqlite_result *r, int row, int col)
{
    TERN_CHECK_ARG(r);
    const sq_cell *c = at(r, row, col);
    return c && c->text ? c->text : "";
}

/* The cell, or why there is no value. */
static int cell(const tern_sqlite_result *r, int row, int col, const sq_cell **out)
{
    TERN_CHECK_ARG(r);
    const sq_cell *c = at(r, row, col);
    if (!c)
        return -ERANGE;
    if (c->type == SQLITE_NULL)
        return -ENODATA;
    *out = c;
    return 0;
}

int tern_sqlite_result_int64(const tern_sqlite_result *r, int row, int col, int64_t *out)
{
    TERN_CHECK_ARG(out);
    const sq_cell *c;
    int rc = cell(r, row, col, &c);
    if (rc < 0)
        return rc;
    if (c->type == SQLITE_INTEGER) {
        *out = c->v.i;
        return 0;
    }
    if (c->type != SQLITE_TEXT)
        return -EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(c->text, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (end == c->text || *end)
        return -EINVAL;
    *out = x;
    return 0;
}

int tern_sqlite_result_double(const tern_sqlite_result *r, int row, int col, double *out)
{
    TERN_CHECK_ARG(out);
    const sq_cell *c;
    int rc = cell(r, row, col, &c);
    if (rc < 0)
        return rc;
    if (c->type == SQLITE_INTEGER) {
        *out = (double)c->v.i;
        return 0;
    }
    if (c->type == SQLITE_FLOAT) {
        *out = c->v.d;
        return 0;
    }
    if (c->type != SQLITE_TEXT)
        return -EINVAL;
    char *end;
    errno = 0;
    double x = strtod(c->text, &end);
    if (end == c->text || *end)
        return -EINVAL;
    if (errno == ERANGE && (x > 1 || x < -1))
        return -ERANGE;
    *out = x;
    return 0;
}

int tern_sqlite_result_bool(const tern_sqlite_result *r, int row, int col, bool *out)
{
    TERN_CHECK_ARG(out);
    const sq_cell *c;
    int rc = cell(r, row, col, &c);
    if (rc < 0)
        return rc;
    if (c->type == SQLITE_INTEGER && (c->v.i == 0 || c->v.i == 1)) {
        *out = c->v.i == 1;
        return 0;
    }
    if (c->type == SQLITE_TEXT && (strcmp(c->text, "t") == 0 || strcmp(c->text, "f") == 0)) {
        *out = c->text[0] == 't';
        return 0;
    }
    return -EINVAL;
}

int tern_sqlite_result_blob(const tern_sqlite_result *r, int row, int col, const uint8_t **data,
                            size_t *len)
{
    TERN_CHECK_ARG(data);
    TERN_CHECK_ARG(len);
    const sq_cell *c;
    int rc = cell(r, row, col, &c);
    if (rc < 0)
        return rc;
    if (c->type != SQLITE_BLOB && c->type != SQLITE_TEXT)
        return -EINVAL;
    *data = (const uint8_t *)c->text;
    *len = (size_t)c->len;
    return 0;
}

int64_t tern_sqlite_result_affected(const tern_sqlite_result *r)
{
    TERN_CHECK_ARG(r);
    return r->affected;
}

int64_t tern_sqlite_result_last_insert_id(const tern_sqlite_result *r)
{
    TERN_CHECK_ARG(r);
    return r->last_id;
}

void tern_sqlite_result_free(tern_sqlite_result *r)
{
    if (!r)
        return;
    while (r->blocks) {
        struct sq_block *b = r->blocks;
        r->blocks = b->next;
        free(b);
    }
    free(r->cells);
    free(r->names);
    free(r);
}
